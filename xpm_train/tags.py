"""A job's tags: those of every experiment run that submitted it.

experimaestro 2.7 keeps tags per run, in ``experiments/XP/RUN/jobs.jsonl``
(one record per submitted job: ``job_id``, ``task_id``, ``tags``); the job's
own folder holds none. So a job that only an earlier run submitted has no
tags in the latest run, and when experimaestro removes a run (``Removing
failed run (experiment succeeded)``, or past its history's ``max_done``) the
tags it gave go with it.

xpm-train keeps a copy in the job folder: ``tags.json`` maps each run that
submitted the job (``XP/RUN``) to the tags it gave. :func:`record` adds the
runs on disk to it; it is called by every reader (``results``, ``show``,
``load``, ``mlflow sync``), by the job of an xpm-train task when it starts
(:func:`xpm_train.metrics.open_log`, :func:`xpm_train.report`) and by
:func:`xpm_train.finish` at the end of a plan, so a run's tags are in the
folders of its jobs before experimaestro can remove it. A job's tags are then
the union over its runs, oldest first: a later run's value of a tag wins.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterable, Optional

from .jobfolder import TAGS, all_jobs

logger = logging.getLogger("xpm_train.tags")

RUNS = "jobs.jsonl"
"""The file of an experiment run listing the jobs it submitted, with their tags"""


def run_key(run: Path) -> tuple[str, int, str]:
    """Chronological order of run folders (``20261207_112517``, then its
    ``.1`` modifier), as experimaestro sorts them; then the experiment."""
    stamp, _, modifier = run.name.partition(".")
    return stamp, int(modifier) if modifier.isdigit() else 0, run.parent.name


def runs(workspace: Path, experiment: Optional[str] = None) -> list[Path]:
    """The run folders on disk (of ``experiment``, or of all), oldest first."""
    experiments = Path(workspace) / "experiments"
    pattern = f"{experiment}/*" if experiment else "*/*"
    return sorted((p for p in experiments.glob(pattern) if p.is_dir() and not p.is_symlink()
                   and (p / RUNS).exists()), key=run_key)


def run_tags(run: Path, only: Optional[set[str]] = None) -> dict[str, dict[str, Any]]:
    """``{job hash: tags}`` of the jobs run folder ``run`` submitted (tagged or
    not; a torn last line, being written, is skipped); ``only``: of these job
    hashes only (a few: the other lines are not parsed)."""
    tags: dict[str, dict[str, Any]] = {}
    try:
        lines = (run / RUNS).read_text().splitlines()
    except OSError:
        return tags
    if only is not None and len(only) <= FEW:
        lines = [line for line in lines if any(job_hash in line for job_hash in only)]
    for line in lines:
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict) and item.get("job_id"):
            tags.setdefault(item["job_id"], {}).update(item.get("tags") or {})
    return tags


FEW = 8
"""Up to this many jobs, :func:`run_tags` parses only the lines naming them (a job's own start)"""


def recorded(folder: Path) -> dict[str, dict[str, Any]]:
    """``{XP/RUN: tags}`` kept in the job folder (empty when none)."""
    try:
        value = json.loads((Path(folder) / TAGS).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def merged(by_run: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The tags of a job from ``{XP/RUN: tags}``: oldest run first, later values win."""
    tags: dict[str, Any] = {}
    for name in sorted(by_run, key=lambda name: run_key(Path(name))):
        tags.update(by_run[name])
    return tags


def record(workspace: Path, jobs: Optional[Iterable[Path]] = None) -> dict[str, dict[str, Any]]:
    """Add the runs on disk to the ``tags.json`` of ``jobs`` (default: every
    job of ``workspace``); returns ``{job hash: tags}`` of those jobs. A job
    folder that cannot be written (read-only workspace) keeps its file: its
    tags are still returned."""
    from .atomic import atomic_write_json

    folders = {folder.name: folder for folder in (all_jobs(workspace) if jobs is None else jobs)}
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for run in runs(workspace):
        name = f"{run.parent.name}/{run.name}"
        for job_hash, tags in run_tags(run, set(folders)).items():
            if job_hash in folders:
                found.setdefault(job_hash, {})[name] = tags
    result = {}
    for job_hash, folder in folders.items():
        kept = recorded(folder)
        by_run = {**kept, **found.get(job_hash, {})}
        if by_run != kept and any(by_run.values()):
            try:
                atomic_write_json(folder / TAGS, by_run, sort_keys=True)
            except OSError as error:
                logger.debug("could not record the tags of %s: %s", folder, error)
        result[job_hash] = merged(by_run)
    return result


def record_job(folder: Path) -> dict[str, Any]:
    """:func:`record` for one job folder (in the job's own process); never raises."""
    from .jobfolder import workspace_of

    try:
        return record(workspace_of(folder), [Path(folder)]).get(Path(folder).name, {})
    except Exception as error:  # noqa: BLE001 - tags never fail a job
        logger.warning("could not record the tags of %s: %s", folder, error)
        return {}
