"""Applying a reclaim plan (:mod:`xpm_train.reclaim.plan`): its files
removed, then the MLflow runs of the removed jobs marked deleted where their
store can be reached.

A job folder is renamed into the workspace's :data:`TRASH` (one rename: the
job vanishes at once, never seen half-deleted), then deleted; a job that
started since the plan was made is kept.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .plan import PREPARED, Plan, Removal, ended

TRASH = ".gc-trash"
"""Folder of the workspace where a job folder is moved (one rename: the job
vanishes at once) before it is deleted"""


@dataclass
class Applied:
    bytes: int = 0
    removed: int = 0
    notes: list[str] = field(default_factory=list)


def apply(reclaim: Plan) -> Applied:
    """Remove what ``reclaim`` lists (a job that started meanwhile is kept),
    then mark the removed jobs' MLflow runs deleted."""
    done = Applied()
    trash = reclaim.workspace / TRASH
    gone: list[Removal] = []
    for item in reclaim.removals:
        if not item.path.exists():
            continue
        if item.reason != PREPARED and not ended(item.path if item.job else job_of(item.path)):
            done.notes.append(f"{item.path}: its job started meanwhile: kept")
            continue
        if item.job:
            trash.mkdir(exist_ok=True)
            discard(item.path, trash / uuid.uuid4().hex)
        elif item.path.is_dir():  # beside it: a prepared root may be on another file system
            discard(item.path, item.path.with_name(f".gc-{uuid.uuid4().hex}"))
        else:
            item.path.unlink()
        done.bytes += item.bytes
        done.removed += 1
        gone.append(item)
    if trash.exists() and not any(trash.iterdir()):
        trash.rmdir()
    done.notes += delete_runs(reclaim.workspace, [r for r in gone if r.job])
    return done


def discard(folder: Path, target: Path) -> None:
    """Remove ``folder``: renamed to ``target`` first (one step: it is gone
    at once, never seen half-deleted), then deleted."""
    try:
        os.rename(folder, target)
    except OSError:  # another file system: deleted in place
        target = folder
    shutil.rmtree(target)


def job_of(path: Path) -> Path:
    """The job folder holding ``path`` (``WORKSPACE/jobs/TASK/HASH/...``)."""
    parts = path.parts
    index = len(parts) - 1 - parts[::-1].index("jobs")
    return Path(*parts[:index + 3])


def delete_runs(workspace: Path, removed: list[Removal]) -> list[str]:
    """Mark deleted the MLflow runs of the removed jobs, in each store they
    may be in (the one each job reported to, and the workspace's); a line per
    store that could not be reached."""
    if not removed:
        return []
    from ..tracking import store

    uris = {r.tracking_uri for r in removed if r.tracking_uri} | {store.workspace_uri(workspace)}
    notes = []
    for uri in sorted(uris):
        path = store.sqlite_path(uri)
        if path is not None and not path.exists():
            continue  # no such store: no run to mark
        try:
            count = delete_runs_in(store.client(uri), [r.job for r in removed])
        except Exception as error:  # noqa: BLE001 - any MLflow failure: say it, the files are gone anyway
            notes.append(f"MLflow at {uri} could not be reached ({str(error).splitlines()[0][:200]}): the runs "
                         "of the removed jobs are not marked deleted there")
            continue
        notes.append(f"MLflow at {uri}: {count} run(s) of removed jobs marked deleted")
    return notes


def delete_runs_in(client, jobs: list[str]) -> int:
    from ..tracking.identity import JOB_ID_TAG

    ids = [e.experiment_id for e in client.search_experiments()]
    count = 0
    for job in jobs:
        if not ids:
            break
        for run in client.search_runs(ids, filter_string=f"tags.`{JOB_ID_TAG}` = '{job}'"):
            client.delete_run(run.info.run_id)
            count += 1
    return count


__all__ = ["apply"]
