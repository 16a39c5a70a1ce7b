"""What cannot run on several ranks is refused in one line, before any job is written."""

from __future__ import annotations

import pytest

from ddphelpers import PLAN
from helpers import run_experiment

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("overrides, message", [
    (("spec=cpu(cores=2) & processes=2", "batch_size=25"),
     "Learn.batch_size=25 does not split into the 2 ranks of its launcher: make it a multiple of 2 (e.g. 26)"),
    (("spec=cpu(cores=1) & processes=3",), "needs 3 cores, offers 2"),
    (("spec=cuda(mem=1G)*1 & processes=2",), "each rank needs its own GPU"),
    (("spec=cuda(mem=1G)*2 & processes=2",), "needs 2 GPU(s), offers 0"),
    (("spec=cpu(cores=1) & nodes=2",), "is one machine (nodes=2 needs a Slurm launcher)"),
    (("spec=processes=0",), "processes must be a whole number >= 1"),
])
def test_refused_before_submission(tmp_path, local_launchers, overrides, message):
    workdir = tmp_path / "ws"
    result = run_experiment(PLAN, workdir, *overrides, timeout=120)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not list(workdir.glob("jobs/*/*"))
