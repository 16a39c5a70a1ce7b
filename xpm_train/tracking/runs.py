"""MLflow runs of jobs: find, create, log, complete (shared by the live sink
and ``xpm-train mlflow sync``).

A run is found by its ``xpm.job_id`` tag. A metric point of ``metrics.jsonl``
(``split``, ``step``, values) becomes one MLflow metric per value, keyed
``<split>_<name>`` (``train_loss``, ``val_accuracy``...) at its ``step``; the
pair (key, step) identifies a point, so pushing the same points twice adds
nothing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ..jobfolder import FINAL, RESULTS
from ..metrics import POINT_FIELDS
from .identity import JOB_ID_TAG, JobIdentity

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

BATCH = 1000
"""MLflow accepts at most 1000 metrics per ``log_batch``"""

ARTIFACT_FILES = (FINAL, RESULTS, "curves.png")
"""Job files uploaded as artifacts when present"""

STATUS_OF_EVENT = {"end": "FINISHED", "error": "FAILED", "preempted": "KILLED"}


def metric_key(split: str, name: str) -> str:
    return f"{split}_{name}" if split else name


def metric_records(points: Iterable[dict[str, Any]], start_time: float | None = None
                   ) -> list[tuple[str, float, int, int]]:
    """``(key, value, step, timestamp ms)`` for every numeric value of ``points``.

    The timestamp is ``start_time + elapsed`` when a start time is known,
    else now."""
    now = int(time.time() * 1000)
    records = []
    for point in points:
        step = int(point.get("step", 0))
        stamp = int((start_time + point["elapsed"]) * 1000) if start_time and "elapsed" in point else now
        for name, value in point.items():
            if name in POINT_FIELDS or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            records.append((metric_key(point.get("split", ""), name), float(value), step, stamp))
    return records


def find_run(client: "MlflowClient", job_id: str, experiment_ids: list[str]) -> "Run | None":
    """The active run of ``job_id`` in these experiments (oldest if several)."""
    if not experiment_ids:
        return None
    runs = client.search_runs(experiment_ids, filter_string=f"tags.`{JOB_ID_TAG}` = '{job_id}'",
                              order_by=["attributes.start_time ASC"], max_results=10)
    return runs[0] if runs else None


def create_run(client: "MlflowClient", experiment_id: str, identity: JobIdentity,
               params: dict[str, str], start_time: float | None = None) -> "Run":
    """A new run carrying the job's identity (tags) and configuration (params)."""
    from mlflow.entities import Param

    run = client.create_run(
        experiment_id,
        start_time=int(start_time * 1000) if start_time else None,
        tags=identity.run_tags(experiment_id),
        run_name=identity.run_name,
    )
    items = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run.info.run_id, params=items[i:i + 100], synchronous=True)
    return client.get_run(run.info.run_id)


def complete_params(client: "MlflowClient", run: "Run", params: dict[str, str]) -> int:
    """Log the params the run lacks (a value already set is kept); returns how many."""
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in params.items() if k not in run.data.params]
    for i in range(0, len(items), 100):
        client.log_batch(run.info.run_id, params=items[i:i + 100], synchronous=True)
    return len(items)


def log_records(client: "MlflowClient", run_id: str, records: list[tuple[str, float, int, int]]) -> None:
    from mlflow.entities import Metric

    metrics = [Metric(key, value, stamp, step) for key, value, step, stamp in records]
    for i in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[i:i + BATCH], synchronous=True)


def logged_points(client: "MlflowClient", run_id: str, keys: Iterable[str]) -> set[tuple[str, int]]:
    """The ``(key, step)`` pairs already in the run."""
    present = set()
    for key in sorted(set(keys)):
        present.update((key, m.step) for m in client.get_metric_history(run_id, key))
    return present


def upload_artifacts(client: "MlflowClient", run_id: str, folder: Path,
                     extra: Iterable[Path] = (), only_missing: bool = True) -> list[str]:
    """Upload the job's result files (and ``extra`` ones); returns their names."""
    files = [folder / name for name in ARTIFACT_FILES] + list(extra)
    files = [path for path in files if path.is_file()]
    if not files:
        return []
    present = {Path(info.path).name for info in client.list_artifacts(run_id)} if only_missing else set()
    uploaded = []
    for path in files:
        if path.name not in present:
            client.log_artifact(run_id, str(path))
            uploaded.append(path.name)
    return uploaded


def lifecycle_status(events: Iterable[dict[str, Any]]) -> str:
    """MLflow status from the job's last lifecycle event."""
    status = "RUNNING"
    for event in events:
        kind = event.get("event")
        if kind in STATUS_OF_EVENT:
            status = STATUS_OF_EVENT[kind]
        elif kind in ("start", "resume"):
            status = "RUNNING"
    return status
