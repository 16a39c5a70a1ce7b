"""The jobs ``xpm-train watch`` shows: all of a workspace, or those of an
experiment's current run (:func:`xpm_train.analysis.experiment_jobs`), or the
trials of a study (the ``job`` of each trial in its journal, as ``xpm-train
tune show`` reads them); ``--where tag=value`` keeps those whose tag
(:mod:`xpm_train.tags`) or state has the value. Each :meth:`Sweep.refresh`
lists the job folders (new ones are picked up) and refreshes every shown
job incrementally (:class:`xpm_train.watch.state.JobWatch`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from ..errors import NotFound
from .state import JobWatch


def job_folders(workspace: Path) -> list[Path]:
    """Every ``jobs/TASK/HASH`` folder (:func:`xpm_train.jobfolder.all_jobs`, with scandir: one call per task)."""
    folders = []
    with os.scandir(Path(workspace) / "jobs") as tasks:
        for task in tasks:
            if task.is_dir():
                with os.scandir(task.path) as jobs:
                    folders += [Path(job.path) for job in jobs if job.is_dir()]
    return folders


class Changed:
    """Whether a file changed since the last call (its size and mtime)."""

    def __init__(self, path: Path):
        self.path, self.seen = path, None

    def __call__(self) -> bool:
        try:
            stat = os.stat(self.path)
            now = (stat.st_size, stat.st_mtime_ns)
        except OSError:
            now = None
        changed, self.seen = now != self.seen, now
        return changed


class Sweep:
    """The watched jobs of ``workspace`` (see the module documentation)."""

    def __init__(self, workspace: Path, experiment: Optional[str] = None, where=None, study: Optional[str] = None):
        from ..analysis import check_workspace, parse_where

        self.workspace = check_workspace(workspace)
        self.where = parse_where(where)
        self.experiment, self.study = experiment, None
        self.jobs: dict[str, JobWatch] = {}
        self.members: Optional[set[str]] = None
        self.trials: dict[str, dict[str, Any]] = {}
        self.study_running = False
        self.direction: Optional[str] = None
        if experiment is not None:
            from ..tags import RUNS

            folder = self.workspace / "experiments" / experiment
            if not folder.is_dir():
                known = sorted(p.name for p in (self.workspace / "experiments").glob("*") if p.is_dir())
                raise NotFound(f"no experiment '{experiment}' in {self.workspace} "
                               f"(known: {', '.join(known) or 'none'})")
            self.runs_changed = Changed(folder / "current" / RUNS)
        if study is not None:
            from ..tune.storage import journal_path, read_description, resolve_study

            self.study = resolve_study(self.workspace, study)
            self.direction = read_description(self.workspace, self.study).get("direction")
            self.journal_changed = Changed(journal_path(self.workspace, self.study))

    def refresh(self) -> list[JobWatch]:
        """The shown jobs, each refreshed."""
        self.update_members()
        shown = []
        for folder in job_folders(self.workspace):
            if self.members is not None and folder.name not in self.members:
                continue
            job = self.jobs.get(folder.name)
            if job is None:
                job = self.jobs[folder.name] = JobWatch(folder, tags=self.tags_of(folder))
            job.refresh()
            trial = self.trials.get(folder.name)
            if trial is not None:
                job.trial = trial["number"]
                if self.direction and job.direction is None:
                    job.direction = self.direction
            if all(str(job.tags.get(k, job.state if k == "state" else None)) == v for k, v in self.where.items()):
                shown.append(job)
        return shown

    def tags_of(self, folder: Path) -> dict[str, Any]:
        if not self.where:
            return {}
        from ..tags import merged, recorded

        return merged(recorded(folder)) or self.run_tags().get(folder.name, {})

    def run_tags(self) -> dict[str, dict[str, Any]]:
        """Tags of the jobs in the runs on disk, read once (a job's ``tags.json`` has them once it started)."""
        if not hasattr(self, "_run_tags"):
            from ..tags import run_tags, runs

            self._run_tags: dict[str, dict[str, Any]] = {}
            for run in runs(self.workspace, self.experiment):
                for job_hash, tags in run_tags(run).items():
                    self._run_tags.setdefault(job_hash, {}).update(tags)
        return self._run_tags

    def update_members(self) -> None:
        if self.experiment is not None and self.runs_changed():
            from ..analysis import experiment_jobs

            self.members = experiment_jobs(self.workspace, self.experiment)
            self.__dict__.pop("_run_tags", None)
        if self.study is not None and self.journal_changed():
            self.trials, self.study_running = study_trials(self.workspace, self.study)
            hashes = set(self.trials)
            self.members = hashes if self.experiment is None else (self.members or set()) & hashes

    def finished(self, shown: list[JobWatch]) -> bool:
        """Whether everything shown has ended (and the study has no trial running)."""
        return bool(shown) and all(job.ended for job in shown) and not self.study_running


def study_trials(workspace: Path, study: str) -> tuple[dict[str, dict[str, Any]], bool]:
    """``({job hash: trial row}, whether a trial is running)`` of ``study``."""
    from ..tune.report import load_trials
    from ..tune.storage import journal_path

    try:
        rows = load_trials(journal_path(workspace, study), study)
    except NotFound:  # not started yet
        return {}, True
    trials = {row["job"].rsplit("/", 1)[-1]: row for row in rows if row.get("job")}
    return trials, any(row["state"] in ("RUNNING", "WAITING") for row in rows)
