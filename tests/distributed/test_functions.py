"""Training functions get their rank through the context; one not declared
DDP-aware is refused on several ranks before submission."""

from __future__ import annotations

import json

import pytest

from ddphelpers import HERE
from helpers import run_experiment

pytestmark = pytest.mark.integration
PARAMS = HERE / "functions" / "params.yaml"


def test_a_distributed_function_runs_on_every_rank_and_rank_0_writes(tmp_path, launchers_env):
    result = run_experiment(PARAMS, tmp_path, env=launchers_env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (job,) = tmp_path.glob("jobs/ddpfunctions.ranked/*")
    final = json.loads((job / "final.json").read_text())
    assert final["objective"] == 2.0 * (1 + 2) and final["final"] == {"world": 2.0}
    points = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
    assert [p["rank"] for p in points] == [0]  # rank 1 computed the same sum, and wrote nothing


def test_a_function_not_declared_distributed_is_refused(tmp_path, launchers_env):
    result = run_experiment(PARAMS, tmp_path, "aware=false", env=launchers_env, timeout=120)
    assert result.returncode != 0
    assert "@training_function ddpfunctions.plain is not DDP-aware" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not list(tmp_path.glob("jobs/*/*"))
