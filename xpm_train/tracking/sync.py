"""Rebuild MLflow from the job folders (``xpm-train mlflow sync``).

The job folders are the source of truth. For every finished job (done or
failed) of the workspace, sync finds its run by the ``xpm.job_id`` tag (or
creates it) and adds what the run lacks: tags, params, metric points (by
``(key, step)``), artifacts (``final.json``, ``results.json``,
``curves.png``) and the final status. Running again adds nothing. A job
left out is counted with the reason: unfinished (a later sync takes it), or
finished without any metric or summary (e.g. a plain experimaestro Task that
does not call :func:`xpm_train.report`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..jobfolder import EVENTS, FINAL, METRICS, PARAMS, RESULTS, all_jobs, finished_state, id_of
from ..metrics import read_jsonl, read_metrics
from ..tags import record as record_tags
from . import store
from .identity import (JobIdentity, experiment_jobs_tags, flat_params, recorded_runtime,
                       tracking_settings)
from .runs import (complete_params, create_run, find_run, lifecycle_status, log_records, logged_points,
                   metric_records, upload_artifacts)

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger("xpm_train.tracking.sync")

RESULT_FILES = (METRICS, FINAL, RESULTS)
FALLBACK_EXPERIMENT = "xpm-train"
"""MLflow experiment of jobs that belong to no experimaestro experiment"""


@dataclass
class SyncReport:
    """What a sync added, and which jobs it left out and why."""

    runs_created: int = 0
    points_added: int = 0
    artifacts_added: int = 0
    runs_updated: int = 0
    """Runs whose tags, params or status changed"""
    jobs: int = 0
    skipped: list[str] = field(default_factory=list)
    """Jobs not finished yet (left for a later sync)"""
    silent: dict[str, list[str]] = field(default_factory=dict)
    """Finished jobs that wrote no metric and no summary, by reason (:func:`silence_reason`)"""

    @property
    def changes(self) -> int:
        return self.runs_created + self.points_added + self.artifacts_added + self.runs_updated

    def summary(self) -> str:
        """``N job(s) synced (...), M skipped: <count> <reason>; ...``"""
        text = (f"{self.jobs} job(s) synced ({self.runs_created} run(s) created, {self.points_added} "
                f"metric point(s) and {self.artifacts_added} artifact(s) added, "
                f"{self.runs_updated} run(s) updated)")
        reasons = [f"{len(jobs)} {reason}" for reason, jobs in sorted(self.silent.items())]
        if self.skipped:
            reasons.append(f"{len(self.skipped)} unfinished (left for a later sync)")
        skipped = len(self.skipped) + sum(map(len, self.silent.values()))
        return f"{text}, {skipped} skipped" + (": " + "; ".join(reasons) if reasons else "")


def has_results(folder: Path) -> bool:
    """Whether the job in ``folder`` produced metrics or a summary."""
    return any((folder / name).exists() for name in RESULT_FILES)


def silence_reason(folder: Path, state: str) -> str:
    """Why a finished job without metrics is not synced, and what to do about it."""
    if state == "failed":
        return "failed before writing any metric"
    return (f"done without reporting anything ({folder.parent.name}: a plain Task writes its metrics with "
            "xpm_train.report(...) in execute(), see docs/extending.md)")


def job_experiments(workspace: Path, experiment: str | None) -> dict[str, tuple[str, dict[str, Any]]]:
    """``{job hash: (experimaestro experiment, tags)}`` (first experiment by name
    when a job belongs to several)."""
    from ..analysis import experiment_tags

    names = [experiment] if experiment else sorted(
        p.name for p in (workspace / "experiments").glob("*") if p.is_dir())
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for name in names:
        try:
            tags_map = experiment_tags(workspace, name)
        except Exception:  # noqa: BLE001  (unreadable state: read jobs.jsonl below)
            tags_map = {}
        for job_hash, tags in (tags_map or experiment_jobs_tags(workspace, name)).items():
            found.setdefault(job_hash, (name, tags))
    return found


def sync_workspace(workspace: Path | str, uri: str | None = None,
                   experiment: str | None = None) -> SyncReport:
    """Push to MLflow whatever the finished jobs of ``workspace`` (of one
    experimaestro ``experiment`` if given) have and MLflow lacks."""
    from ..analysis import check_workspace

    workspace = check_workspace(workspace).resolve()
    uri = store.resolve_uri(workspace, uri)
    membership = job_experiments(workspace, experiment)
    all_tags = record_tags(workspace)  # every run's tags, also of jobs no current run submitted
    report = SyncReport()
    client = store.client(uri)
    experiment_ids: dict[str, str] = {}
    all_ids = [e.experiment_id for e in client.search_experiments()]
    for folder in all_jobs(workspace):
        if not (folder / PARAMS).exists() or experiment and folder.name not in membership:
            continue
        state = finished_state(folder)
        if state is None:
            report.skipped.append(f"{folder.parent.name}/{folder.name[:12]}")
            continue
        if not has_results(folder):
            report.silent.setdefault(silence_reason(folder, state), []).append(id_of(folder))
            continue
        report.jobs += 1
        xp_name, _ = membership.get(folder.name, (FALLBACK_EXPERIMENT, {}))
        tags = all_tags.get(folder.name, {})
        settings = tracking_settings(folder)
        name = experiment or settings.get("mlflow_experiment") or xp_name
        identity = JobIdentity(folder=folder, tags=tags, experiment=xp_name,
                               git_commit=settings.get("git_commit", ""),
                               git_dirty=bool(settings.get("git_dirty", False)),
                               **recorded_runtime(folder))
        run = find_run(client, identity.job_id, all_ids)
        if run is None:
            if name not in experiment_ids:
                experiment_ids[name] = store.ensure_experiment(uri, name)
                all_ids = sorted({*all_ids, experiment_ids[name]})
            sync_job(client, folder, identity, experiment_ids[name], None, state, report)
        else:
            sync_job(client, folder, identity, run.info.experiment_id, run, state, report)
    return report


def sync_job(client: "MlflowClient", folder: Path, identity: JobIdentity, experiment_id: str,
             run, state: str, report: SyncReport) -> None:
    """Add to ``run`` (None: a new run) what job ``folder`` has and it lacks."""
    from .plots import job_curves

    events = read_jsonl(folder / EVENTS)
    start = next((e["time"] for e in events if e.get("event") == "start"), None)
    params = flat_params(folder)
    updated, created = False, run is None
    if created:
        run = create_run(client, experiment_id, identity, params, start_time=start)
        report.runs_created += 1
    else:
        updated |= complete_tags_and_params(client, run, identity, experiment_id, params)
    run_id = run.info.run_id

    records = metric_records(read_metrics(folder / METRICS), start_time=start)
    present = logged_points(client, run_id, {r[0] for r in records})
    missing, seen = [], set(present)
    for record in records:
        if (record[0], record[2]) not in seen:
            seen.add((record[0], record[2]))
            missing.append(record)
    log_records(client, run_id, missing)
    report.points_added += len(missing)

    if not (folder / "curves.png").exists():
        job_curves(folder)
    report.artifacts_added += len(upload_artifacts(client, run_id, folder))

    status = {"done": "FINISHED", "failed": "FAILED"}[state]
    if lifecycle_status(events) == "KILLED" and state == "failed":
        status = "KILLED"
    current = client.get_run(run_id).info.status
    if current != status:
        client.set_terminated(run_id, status=status)
        updated = True
    report.runs_updated += int(updated and not created)


def complete_tags_and_params(client: "MlflowClient", run, identity: JobIdentity,
                             experiment_id: str, params: dict[str, str]) -> bool:
    """Set the tags and params the run lacks; True when anything changed.
    Tags already set (e.g. host, by the live sink) are kept."""
    from mlflow.entities import RunTag

    tags = [RunTag(k, v) for k, v in identity.run_tags(experiment_id).items()
            if k not in run.data.tags]
    for i in range(0, len(tags), 100):
        client.log_batch(run.info.run_id, tags=tags[i:i + 100], synchronous=True)
    return bool(tags) | bool(complete_params(client, run, params))


def describe(report: SyncReport) -> str:
    return json.dumps({"runs_created": report.runs_created, "points_added": report.points_added,
                       "artifacts_added": report.artifacts_added, "runs_updated": report.runs_updated,
                       "jobs": report.jobs, "skipped": report.skipped, "silent": report.silent})
