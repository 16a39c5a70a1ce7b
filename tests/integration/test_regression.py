"""The regression plan, run for real: metrics checked against scikit-learn on
the saved predictions, Tune minimises, results sort best (lowest) first, a
re-run starts no job."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import REPO, run_experiment, what_ran, xpm_train

pytestmark = pytest.mark.integration
PARAMS = REPO / "experiments" / "regression" / "params.yaml"
QUICK = ("epochs=30", "hidden_dim=[32]", "lr=[0.01,0.03]", "n_trials=2")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("regression") / "ws"
    result = run_experiment(PARAMS, workdir, *QUICK)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir, result


def test_metrics_match_sklearn_on_the_saved_predictions(workspace):
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    workdir, _ = workspace
    evaluations = list((workdir / "jobs" / "xpm_train.evaluate.evaluate").iterdir())
    assert len(evaluations) >= 3  # 2 grid points + the study's best
    for folder in evaluations:
        results = json.loads((folder / "results.json").read_text())
        saved = np.load(folder / "predictions.npz")
        y, p = saved["targets"].reshape(len(saved["targets"]), -1), saved["outputs"]
        assert len(y) == results["samples"] == 88
        assert results["mse"] == pytest.approx(mean_squared_error(y, p), rel=1e-5)
        assert results["mae"] == pytest.approx(mean_absolute_error(y, p), rel=1e-5)
        assert results["r2"] == pytest.approx(r2_score(y, p), rel=1e-5)
        assert results["score"] == results["mse"] and results["direction"] == "minimize"
    best = max(json.loads((f / "results.json").read_text())["r2"] for f in evaluations)
    assert best > 0.3  # a real fit: the table's variance is explained in part


def test_best_checkpoint_and_study_minimise(workspace):
    workdir, result = workspace
    for final in (workdir / "jobs" / "xpm_train.learn.learn").glob("*/final.json"):
        summary = json.loads(final.read_text())
        curve = [json.loads(line) for line in (final.parent / "metrics.jsonl").read_text().splitlines()]
        val = [r["mse"] for r in curve if r["split"] == "val"]
        assert summary["score"] == pytest.approx(min(val)) and summary["score_metric"] == "val_mse"
    assert "minimize score" in result.stdout
    tune = next((workdir / "jobs" / "xpm_train.tune.task.tune").glob("*/results.json"))
    trials = json.loads(tune.read_text())
    assert trials["direction"] == "minimize" and trials["metric"] == "score"


def test_results_sort_puts_the_lowest_mse_first(workspace):
    workdir, _ = workspace
    listing = xpm_train("results", "--workdir", str(workdir), "--task", "evaluate", "--sort", "score",
                        "--format", "json")
    assert listing.returncode == 0, listing.stderr
    scores = [row["score"] for row in json.loads(listing.stdout)]
    assert scores == sorted(scores) and len(scores) >= 3


def test_second_run_starts_no_job(workspace):
    workdir, _ = workspace
    before = what_ran(workdir)
    result = run_experiment(PARAMS, workdir, *QUICK)
    assert result.returncode == 0, result.stderr[-3000:]
    assert what_ran(workdir) == before
