"""What ``xpm-train gc`` reclaims, and why: :func:`plan` lists the removals
(path, bytes, reason) and the jobs kept without touching anything
(:mod:`xpm_train.reclaim.apply` removes them). The reasons:

``orphan``
    a job that no run of any experiment references, as experimaestro itself
    detects it (``experimaestro orphans``): its whole folder;
``pruned/failed``
    the ``checkpoints/`` (and a LightningFit's ``user-checkpoints/``) of a pruned trial (done, ``"pruned": true``: nothing
    loads its weights) or of a failed job (a resubmission starts over);
``resume``
    the files of a done job's ``checkpoints/`` only read to resume it
    (:data:`xpm_train.jobfolder.RESUME`): ``best.pt``, which ``load``,
    export and :class:`~xpm_train.models.LoadWeights` read, stays; so does
    the ``last.pt`` of a Learn stopped short of its horizon, which a longer
    budget continues from (:mod:`xpm_train.budget`);
``not-best``
    with ``keep_best=k``, the whole folders of the trials of each study
    (Learn and Evaluate jobs) outside its best ``k`` complete trials, in the
    study's direction (a job among the best k of any study stays);
``prepared``
    a prepared folder of streamed records (:mod:`xpm_train.data.prepared`)
    that no remaining job of the workspace streams from (jobs record it in
    their events, :data:`xpm_train.data.stream.PREPARED_KEY`).

A job folder goes whole or keeps its state true: a removed job disappears
from ``results`` and runs again when submitted again; a job losing only
files keeps its state and summary. Never touched: a job that has not ended
or whose lock is held, the jobs of an experiment whose plan is running (its
``lock``), and, unless ``include_latest``, the jobs of each experiment's
latest run (orphans aside: no run references them).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from .. import jobfolder
from ..locks import held

ORPHAN, TRIAL, RESUME, NOT_BEST, PREPARED = "orphan", "pruned/failed", "resume", "not-best", "prepared"
REASONS = (ORPHAN, NOT_BEST, TRIAL, RESUME, PREPARED)
"""The reasons, in the order the table shows them"""

RUNNING, RUNNING_PLAN, LATEST = "not ended", "plan running", "latest run"
"""Why a job that a reason names is kept"""


@dataclass(frozen=True)
class Removal:
    path: Path
    bytes: int
    reason: str
    job: Optional[str] = None
    """``TASK/HASH`` when the whole job folder goes (its MLflow run is marked deleted)"""
    tracking_uri: Optional[str] = None
    """The MLflow store the job reported to (its ``tracking`` config)"""


@dataclass
class Plan:
    workspace: Path
    removals: list[Removal] = field(default_factory=list)
    kept: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """Why kept -> the jobs a reason named but that stay"""
    notes: list[str] = field(default_factory=list)

    def by_reason(self) -> dict[str, tuple[int, int]]:
        """``{reason: (count, bytes)}`` in :data:`REASONS` order."""
        table = {}
        for reason in REASONS:
            items = [r for r in self.removals if r.reason == reason]
            if items:
                table[reason] = (len(items), sum(r.bytes for r in items))
        return table

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.removals)


def size_of(path: Path) -> int:
    """Bytes of the regular files under ``path`` (links not followed)."""
    if path.is_symlink():
        return 0
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            file = Path(root) / name
            if not file.is_symlink() and file.is_file():
                total += file.stat().st_size
    return total


def plan(workspace: Path | str, keep_best: Optional[int] = None, include_latest: bool = False,
         jobs: Iterable[str] = ()) -> Plan:
    """What :func:`apply` would remove from ``workspace``, and why (nothing is
    touched). ``jobs`` (IDs, hash prefixes or folders): only these jobs'
    files (and no prepared data)."""
    from ..analysis import check_workspace, resolve
    from ..errors import InvalidArgument

    workspace = check_workspace(workspace).resolve()
    if keep_best is not None and keep_best < 1:
        raise InvalidArgument(f"--keep-best {keep_best}: keep at least the best trial (k >= 1)")
    only = {resolve(job, workspace).path.resolve() for job in jobs} or None
    result = Plan(workspace)
    running_plans = running_experiments(workspace)
    busy = jobs_of_runs(workspace, running_plans)
    latest = set() if include_latest else latest_jobs(workspace)
    for name in running_plans:
        result.notes.append(f"experiment '{name}' is running (its plan holds its lock): its jobs are skipped")
    if running_plans:
        result.notes.append("orphans are not reclaimed while a plan runs (a job it submits is referenced "
                            "only once recorded)")
    removed: set[Path] = set()

    def take(folder: Path, reason: str, orphan: bool = False) -> bool:
        """Whether ``folder``'s job may lose files for ``reason`` (else it is
        recorded as kept, and why)."""
        if only is not None and folder not in only:
            return False
        why = (RUNNING if not ended(folder) else RUNNING_PLAN if folder.name in busy
               else LATEST if folder.name in latest and not orphan else None)
        if why:
            result.kept[why].append(f"{jobfolder.id_of(folder)} ({reason})")
        return why is None

    def remove_job(folder: Path, reason: str) -> None:
        removed.add(folder)
        result.removals.append(Removal(folder, size_of(folder), reason, jobfolder.id_of(folder),
                                       tracking_uri(folder)))

    if not running_plans:
        for folder in orphans(workspace):
            if take(folder, ORPHAN, orphan=True):
                remove_job(folder, ORPHAN)
    if keep_best is not None:
        for folder in outside_best(workspace, keep_best):
            if folder not in removed and take(folder, NOT_BEST):
                remove_job(folder, NOT_BEST)
    for folder in jobfolder.all_jobs(workspace):
        folder = folder.resolve()
        if folder in removed:
            continue
        paths, reason = heavy_files(folder)
        if paths and take(folder, reason):
            result.removals += [Removal(path, size_of(path), reason) for path in paths]
    if only is None:
        kept_jobs = [f.resolve() for f in jobfolder.all_jobs(workspace) if f.resolve() not in removed]
        for folder in unused_prepared(jobfolder.all_jobs(workspace), kept_jobs):
            result.removals.append(Removal(folder, size_of(folder), PREPARED))
    return result


def ended(folder: Path) -> bool:
    """Whether the job has ended (done or failed) and no process holds its lock."""
    return jobfolder.finished_state(folder) is not None and not held(jobfolder.marker(folder, "lock"))


def running_experiments(workspace: Path) -> list[str]:
    """Experiments whose plan is running: experimaestro holds ``experiments/NAME/lock`` while it runs."""
    return sorted(p.parent.name for p in (workspace / "experiments").glob("*/lock") if held(p))


def jobs_of_runs(workspace: Path, experiments: list[str]) -> set[str]:
    """Hashes of the jobs any run of these experiments submitted."""
    from ..tags import run_tags, runs

    return {job for name in experiments for run in runs(workspace, name) for job in run_tags(run)}


def latest_jobs(workspace: Path) -> set[str]:
    """Hashes of the jobs of every experiment's latest (current) run."""
    from ..analysis import experiment_jobs

    return {job for p in (workspace / "experiments").glob("*") if p.is_dir()
            for job in experiment_jobs(workspace, p.name)}


def orphans(workspace: Path) -> list[Path]:
    """Job folders no run of any experiment references: experimaestro's own
    detection (``experimaestro orphans``, the TUI's Orphans tab)."""
    from experimaestro.scheduler.workspace_state_provider import WorkspaceStateProvider

    provider = WorkspaceStateProvider.get_instance(workspace, no_cleanup=True)
    try:
        return sorted(Path(job.path).resolve() for job in provider.get_orphan_jobs(refresh=True) if job.path)
    finally:
        provider.close()


def heavy_files(folder: Path) -> tuple[list[Path], str]:
    """The checkpoint files a finished job can lose, and why."""
    from ..budget import continuable
    from ..summary import read

    checkpoints, state = folder / jobfolder.CHECKPOINTS, jobfolder.finished_state(folder)
    if state == "failed" or (state == "done" and read(folder).get("pruned") is True):
        folders = (checkpoints, folder / jobfolder.USER_CHECKPOINTS)  # a LightningFit's own ModelCheckpoint's too
        return [f for f in folders if f.is_dir()], TRIAL
    if not checkpoints.is_dir():
        return [], ""
    if state == "done" and not continuable(read(folder)):  # (a Learn short of its horizon keeps them)
        from ..checkpoint import previous_path

        names = [name for last in jobfolder.RESUME for name in (last, previous_path(Path(last)).name)]
        return [checkpoints / n for n in names if (checkpoints / n).is_file()], RESUME
    return [], ""


def outside_best(workspace: Path, k: int) -> list[Path]:
    """The trial job folders (Learn and Evaluate) of every study outside its
    best ``k`` complete trials; a job among the best k of any study stays."""
    from ..errors import NotFound
    from ..summary import Direction
    from ..tune.report import load_trials
    from ..tune.storage import journal_path, list_studies, read_description

    best, rest = set(), set()
    for name in list_studies(workspace):
        try:
            rows = load_trials(journal_path(workspace, name), name)
        except NotFound:  # not started: none of its jobs is a trial yet
            continue
        direction = Direction.of(read_description(workspace, name)["direction"])
        complete = direction.ranked((r for r in rows if r["state"] == "COMPLETE"), lambda r: r["value"])
        kept_numbers = {r["number"] for r in complete[:k]}
        for row in rows:
            target = best if row["number"] in kept_numbers else rest
            target.update(job for job in (row["job"], row["evaluation"]) if job)
    folders = [jobfolder.job_path(workspace, job) for job in sorted(rest - best)]
    return [f.resolve() for f in folders if f.is_dir()]


def tracking_uri(folder: Path) -> Optional[str]:
    """The MLflow store the job reported to (None: no tracking)."""
    from ..tracking.identity import tracking_settings

    try:
        return tracking_settings(folder).get("tracking_uri") or None
    except (OSError, ValueError, KeyError):
        return None


def recorded_prepared(folder: Path) -> set[Path]:
    """The prepared folders the job streamed from, from its events (also the
    ``records in FOLDER (...)`` reason of the Learns made before the key)."""
    from ..data.stream import PREPARED_KEY
    from ..metrics import read_jsonl

    found = set()
    for event in read_jsonl(folder / jobfolder.EVENTS):
        if event.get(PREPARED_KEY):
            found.add(Path(event[PREPARED_KEY]))
        elif event.get("data") == "stream":
            match = re.search(r"records in (.+) \((?:prepared before|\d+ chunk)", event.get("data_reason", ""))
            if match:
                found.add(Path(match.group(1)))
    return found


def unused_prepared(all_folders: list[Path], kept: list[Path]) -> list[Path]:
    """Complete prepared folders, under the prepared root and the roots the
    jobs streamed from, that no kept job streamed from and no preparer holds."""
    from ..data.prepared import HEADER, prepared_root

    recorded = {f: recorded_prepared(f) for f in all_folders}
    used = {p.resolve() for f in kept for p in recorded.get(f, recorded_prepared(f))}
    roots = {p.parent for paths in recorded.values() for p in paths}
    try:
        roots.add(prepared_root())
    except Exception:  # noqa: BLE001 - no datamaestro data folder: only the recorded roots
        pass
    candidates = {p.resolve() for root in roots if root.is_dir() for p in root.iterdir()
                  if p.is_dir() and (p / HEADER).is_file()}
    return sorted(p for p in candidates - used if not held(p / ".lock"))


__all__ = ["Plan", "Removal", "plan"]
