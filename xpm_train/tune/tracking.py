"""The study in MLflow: a parent run for the study, each trial's Learn run its child.

Run by the :class:`~xpm_train.tune.task.Tune` task once the study is over
(every trial's Learn has then logged its own run, tagged with its job ID).
A Learn job answering trials of several studies is the child of the last
study recorded (an MLflow run has one parent). MLflow being down never fails
the task: a warning is logged and ``xpm-train mlflow sync`` plus a new run of
the Tune task (delete its job folder) links them later.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..tracking.mlflow_sink import MLflowTracking

logger = logging.getLogger("xpm_train.tune")

STUDY_TAG = "xpm.tune.study"
TRIAL_TAG = "xpm.tune.trial"
PARENT_TAG = "mlflow.parentRunId"


def record_study_runs(tracking: "MLflowTracking", job_id: str, summary: dict[str, Any],
                      rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Create (or find) the study's run, log its summary, and make every trial's
    Learn run a child of it. Returns ``{"parent_run": ID, "children": N, "missing": [...]}``."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    from ..tracking.runs import JOB_ID_TAG, find_run

    client = MlflowClient(tracking_uri=tracking.tracking_uri)
    experiments = [tracking.experiment_id]
    study = summary["study"]
    parent = find_run(client, job_id, experiments) or client.create_run(
        tracking.experiment_id, run_name=f"study-{study}",
        tags={JOB_ID_TAG: job_id, STUDY_TAG: study, "xpm.task": "tune"})
    run_id = parent.info.run_id
    params = [Param(f"best.{key}", str(value)) for key, value in summary["best_params"].items()]
    params += [Param(key, str(summary[key])) for key in ("study", "metric", "direction", "best_job")]
    metrics = [Metric(key, float(summary[key]), 0, 0) for key in
               ("best_value", "trials", "complete", "pruned", "fail") if summary.get(key) is not None]
    logged = set(parent.data.params)  # a re-run: params are immutable in MLflow
    client.log_batch(run_id, metrics=metrics, params=[p for p in params if p.key not in logged])

    children, missing = 0, []
    for row in rows:
        if not row.get("job"):
            continue
        child = find_run(client, row["job"], experiments)
        if child is None:
            missing.append(row["job"])
            continue
        client.set_tag(child.info.run_id, PARENT_TAG, run_id)
        client.set_tag(child.info.run_id, STUDY_TAG, study)
        client.set_tag(child.info.run_id, TRIAL_TAG, str(row["number"]))
        children += 1
    client.set_terminated(run_id, "FINISHED")
    return {"parent_run": run_id, "children": children, "missing": missing}
