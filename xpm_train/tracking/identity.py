"""Who a run is: the experimaestro identity of a job, as MLflow tags and params.

Everything here reads the job folder (``params.json``, ``events.jsonl``) and
the workspace, so the live sink and ``xpm-train mlflow sync`` describe a job
the same way. No MLflow import here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..jobfolder import EVENTS, PARAMS

JOB_ID_TAG = "xpm.job_id"
"""The tag that links an MLflow run to its job (searched by the sink and sync)"""

SKIPPED_FIELDS = ("tracking", "trial")
"""Fields of a task that say where results are mirrored, not what is computed"""

MAX_PARAM_LENGTH = 6000
"""MLflow refuses longer param values"""


@dataclass
class JobIdentity:
    """The experimaestro identity of one job."""

    folder: Path
    tags: dict[str, Any] = field(default_factory=dict)
    """experimaestro tags (``hidden_dim``, ``lr``...)"""

    experiment: str = ""
    """experimaestro experiment name"""

    git_commit: str = ""
    git_dirty: bool = False
    host: str = ""
    launcher: str = ""

    @property
    def task(self) -> str:
        return self.folder.parent.name

    @property
    def hash(self) -> str:
        return self.folder.name

    @property
    def job_id(self) -> str:
        from ..jobfolder import id_of

        return id_of(self.folder)

    @property
    def run_name(self) -> str:
        """Task name + short hash, e.g. ``learn-7b70ab4b``."""
        return f"{self.task.rsplit('.', 1)[-1]}-{self.hash[:8]}"

    def run_tags(self, experiment_id: str) -> dict[str, str]:
        """MLflow tags of the run (``mlflow.source.git.commit`` is shown by the UI;
        ``xpm.env.*``: the job's recorded provenance, :mod:`xpm_train.provenance`)."""
        tags = {
            JOB_ID_TAG: self.job_id,
            "xpm.job_folder": str(self.folder),
            "xpm.task": self.task,
            "xpm.experiment": self.experiment,
            "xpm.mlflow_experiment_id": str(experiment_id),
            "xpm.git_dirty": str(self.git_dirty).lower(),
            "mlflow.runName": self.run_name,
        }
        if self.git_commit:
            tags["mlflow.source.git.commit"] = self.git_commit
        if self.host:
            tags["xpm.host"] = self.host
        if self.launcher:
            tags["xpm.launcher"] = self.launcher
        from ..provenance import mlflow_tags

        tags.update(mlflow_tags(self.folder))  # xpm.env.*: which code and environment made the result
        for key, value in self.tags.items():
            tags[str(key)] = str(value)
        return {k: v for k, v in tags.items() if v != ""}


def git_state(path: Path) -> tuple[str, bool]:
    """``(commit, dirty)`` of the git checkout holding ``path`` (``("", False)``
    outside git). Untracked files do not count as dirty."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return "", False
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=path, capture_output=True, text=True, timeout=30)
        return commit.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return "", False


def launcher_name() -> str:
    """How this task process was launched (``slurm:<job id>``, or ``local``):
    the label of the first launcher type whose job side claims it."""
    from ..launchers.kinds import job_sides

    return next(label for side in job_sides() if (label := side.label(os.environ)))


def host_name() -> str:
    return socket.gethostname()


def task_object(params: dict[str, Any], job_hash: str) -> dict[str, Any]:
    """The serialized task of a job's ``params.json``."""
    objects = params["objects"]
    for obj in objects:
        if obj.get("identifier") == job_hash:
            return obj
    return next(obj for obj in reversed(objects) if "task" in obj)


def flat_params(folder: Path) -> dict[str, str]:
    """The task's configuration flattened to ``model.hidden_dims: [32]``...

    Nested configs give ``model: MLP`` plus their fields; paths and the
    tracking/trial hooks are left out.
    """
    params = json.loads((folder / PARAMS).read_text())
    objects = {obj["id"]: obj for obj in params["objects"]}
    flat: dict[str, str] = {}

    def walk(obj: dict[str, Any], prefix: str) -> None:
        for key, value in obj.get("fields", {}).items():
            if not prefix and key in SKIPPED_FIELDS:
                continue
            name = f"{prefix}{key}"
            if isinstance(value, dict) and value.get("type") == "python":
                child = objects.get(value["value"], {})
                flat[name] = child.get("type", "?")
                walk(child, f"{name}.")
            elif isinstance(value, dict) and value.get("type") == "path":
                continue
            else:
                flat[name] = value if isinstance(value, str) else json.dumps(value)

    walk(task_object(params, folder.name), "")
    return {k: v[:MAX_PARAM_LENGTH] for k, v in flat.items()}


def tracking_settings(folder: Path) -> dict[str, Any]:
    """The fields of the job's ``tracking`` config (``{}`` when it had none)."""
    params = json.loads((folder / PARAMS).read_text())
    objects = {obj["id"]: obj for obj in params["objects"]}
    ref = task_object(params, folder.name).get("fields", {}).get("tracking")
    if not isinstance(ref, dict) or ref.get("type") != "python":
        return {}
    return dict(objects.get(ref["value"], {}).get("fields", {}))


def experiment_jobs_tags(workspace: Path, experiment: str) -> dict[str, dict[str, Any]]:
    """``{job hash: tags}`` of the current run of ``experiment``, read from its
    ``jobs.jsonl`` (cheap: usable in every task process)."""
    from ..tags import run_tags

    return run_tags(workspace / "experiments" / experiment / "current")


def recorded_runtime(folder: Path) -> dict[str, str]:
    """Host and launcher written by the sink in ``events.jsonl`` (last run)."""
    from ..metrics import read_jsonl

    found: dict[str, str] = {}
    for event in read_jsonl(folder / EVENTS):
        if event.get("event") == "tracking":
            found = {"host": event.get("host", ""), "launcher": event.get("launcher", "")}
    return found
