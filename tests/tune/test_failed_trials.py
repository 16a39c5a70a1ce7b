"""A trial whose Learn job fails is a FAIL trial; the study goes on past it."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import run_experiment
from tunehelpers import trials

pytestmark = pytest.mark.integration
PARAMS = Path(__file__).resolve().parent / "failing" / "params.yaml"


def test_a_failed_learn_is_a_fail_trial(tmp_path):
    from xpm_train.data import write_idx_dataset

    data, workdir = tmp_path / "mnist", tmp_path / "ws"
    data.mkdir()
    first = run_experiment(PARAMS, workdir, f"data_folder={data}")
    assert first.returncode != 0
    assert "no trial completed" in first.stderr + first.stdout, first.stderr[-3000:]
    rows = trials(workdir)
    assert [r["state"] for r in rows] == ["FAIL", "FAIL"]
    for row in rows:  # each trial names its job, and that job failed
        job = workdir / "jobs" / row["job"]
        assert (job / "learn.failed").exists() and not (job / "learn.done").exists()

    write_idx_dataset(data, n_train=200, n_test=50)
    second = run_experiment(PARAMS, workdir, f"data_folder={data}", "n_trials=3")
    assert second.returncode == 0, second.stderr[-3000:]
    assert [r["state"] for r in trials(workdir)] == ["FAIL", "FAIL", "COMPLETE"]
