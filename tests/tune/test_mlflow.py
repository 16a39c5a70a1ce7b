"""With MLflow tracking on, the study is a parent run and every trial's Learn
run its child (tagged with the trial number)."""

from __future__ import annotations

import json

import pytest
from tunehelpers import write_params

from helpers import run_experiment

pytestmark = pytest.mark.integration


def test_study_is_a_parent_run_of_its_trials(tmp_path):
    from mlflow import MlflowClient

    workdir = tmp_path / "ws"
    result = run_experiment(write_params(tmp_path, n_trials=3, n_parallel=2, epochs=1, tracking_uri=""), workdir,
                            env={"MLFLOW_TRACKING_URI": ""})  # the workspace store, whatever the caller has
    assert result.returncode == 0, result.stderr[-3000:]
    (tune,) = list((workdir / "jobs" / "xpm_train.tune.task.tune").glob("*/results.json"))
    summary = json.loads(tune.read_text())
    assert summary["mlflow"]["children"] == 3 and summary["mlflow"]["missing"] == [], summary

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow' / 'mlflow.db'}")
    parent = client.get_run(summary["mlflow"]["parent_run"])
    assert parent.data.tags["xpm.tune.study"] == summary["study"]
    assert parent.data.metrics["best_value"] == pytest.approx(summary["best_value"])
    experiment = parent.info.experiment_id
    children = client.search_runs([experiment], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(int(run.data.tags["xpm.tune.trial"]) for run in children) == [0, 1, 2]
    assert all(run.data.tags["xpm.job_id"].startswith("xpm_train.learn.learn/") for run in children)
