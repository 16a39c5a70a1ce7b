"""experiments/tune for real, shortened (3 trials, 2 epochs): the study runs,
Tune -> Evaluate scores the best model on the test split, the plan ends with
the trials table."""

from __future__ import annotations

import pytest

from helpers import REPO, run_experiment

pytestmark = pytest.mark.integration


def test_the_demo_runs_and_prints_the_table(tmp_path):
    result = run_experiment(REPO / "experiments" / "tune" / "params.yaml", tmp_path / "ws",
                            "n_trials=3", "epochs=2", "startup_trials=2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("trial  state"))
    assert all(lines[header + 1 + k].startswith(str(k)) for k in range(3))
    assert any(line.startswith("study digits-mlp-") for line in lines)
    accuracy = float(next(line for line in lines if line.startswith("test accuracy")).split()[-1])
    assert 0 < accuracy <= 1
