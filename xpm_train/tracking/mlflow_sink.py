"""MLflow as a sink of the metrics logger: each task is one MLflow run.

:class:`MLflowTracking` is the ``tracking`` hook given to tasks (all fields
``Meta``: it never changes a task ID). Build it in the plan with
:func:`xpm_train.tracking.setup`, which creates the store and the experiment
once and records the git state.

:class:`MLflowSink` runs in the task process and makes no MLflow call: it
records the job for the workspace's MLflow forwarder (:mod:`.forwarder`, one
process that imports mlflow once and serves every job), which reads the job
folder. The job folder is written first by the logger and is the source of
truth; a job is done when its results are there: neither ``import mlflow``
(2-3 s), nor opening the store, nor a slow or dead server ever sits on the
training step or the job's end. When MLflow fails (after a few retries), the
forwarder writes ONE ``warning`` event to ``events.jsonl``; the training goes
on. ``xpm-train mlflow sync`` later pushes what is missing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from experimaestro import Meta, field

from ..hooks import Tracking
from ..jobfolder import EVENTS, workspace_of
from ..metrics import append_event


class MLflowTracking(Tracking):
    """Mirror every task's metrics, identity and results to MLflow."""

    tracking_uri: Meta[str]
    """The MLflow store or server (``sqlite:///...``, ``http://host:port``)"""

    experiment_id: Meta[str]
    """MLflow experiment of the runs (created by the plan: tasks never create one)"""

    experiment_name: Meta[str] = field(default="", ignore_default=True)
    """experimaestro experiment (a tag of the runs)"""

    mlflow_experiment: Meta[str] = field(default="", ignore_default=True)
    """Name of the MLflow experiment (sync files runs there when MLflow was
    unreachable at plan time)"""

    git_commit: Meta[str] = field(default="", ignore_default=True)
    """Commit of the plan's checkout"""

    git_dirty: Meta[bool] = field(default=False, ignore_default=True)
    """Whether tracked files of the checkout had uncommitted changes"""

    plots: Meta[bool] = field(default=True, ignore_default=True)
    """Draw ``curves.png`` at the end of a task and upload it"""

    log_checkpoints: Meta[bool] = field(default=False, ignore_default=True)
    """Also upload ``checkpoints/best.pt`` (can be large)"""

    close_timeout: Meta[float] = field(default=60.0, ignore_default=True)
    """Unused since the forwarder (a task never waits for MLflow); kept so that
    the folders of older jobs still load"""

    def sinks(self, task) -> list["MLflowSink"]:
        folder = job_folder(task)
        return [MLflowSink(self, folder, Path(getattr(task, "events_path", folder / EVENTS)))]


def job_folder(task) -> Path:
    """The job folder of ``task`` in its process."""
    from experimaestro.taskglobals import Env

    taskpath = Env.instance().taskpath
    if taskpath is not None:
        return Path(taskpath)
    return Path(task.metrics_path).parent


class MLflowSink:
    """Mirrors one job to one MLflow run, through the workspace's forwarder.

    In the job's process it only records the job (a ``tracking`` event and an
    entry for :mod:`.forwarder`) and makes sure the forwarder runs: the points
    themselves are read from ``metrics.jsonl`` by the forwarder, and the job
    never waits for MLflow, not even at its end.
    """

    def __init__(self, settings: MLflowTracking, folder: Path, events_path: Path,
                 identity=None):
        from . import forwarder
        from .identity import JobIdentity, experiment_jobs_tags, host_name, launcher_name

        self.settings = settings
        self.folder = folder
        self.events_path = events_path
        self.workspace = workspace_of(folder)
        if identity is None:
            tags = experiment_jobs_tags(self.workspace, settings.experiment_name).get(folder.name, {}) \
                if settings.experiment_name else {}
            identity = JobIdentity(folder=folder, tags=tags, experiment=settings.experiment_name,
                                   git_commit=settings.git_commit, git_dirty=settings.git_dirty,
                                   host=host_name(), launcher=launcher_name())
        self.identity = identity
        append_event(events_path, {"event": "tracking", "time": time.time(),
                                   "uri": settings.tracking_uri, "experiment_id": settings.experiment_id,
                                   "host": identity.host, "launcher": identity.launcher})
        self.entry = {
            "settings": {name: getattr(settings, name) for name in SETTINGS},
            "folder": str(folder), "events_path": str(events_path),
            "pid": os.getpid(), "pid_start": forwarder.process_start(os.getpid()),
            "identity": {"tags": identity.tags, "experiment": identity.experiment,
                         "git_commit": identity.git_commit, "git_dirty": identity.git_dirty,
                         "host": identity.host, "launcher": identity.launcher}}
        forwarder.write_entry(self.workspace, folder, self.entry)
        forwarder.ensure_running(self.workspace)

    # --- Sink protocol (the forwarder reads the job folder: nothing to do here)

    def metrics(self, points: list[dict[str, Any]]) -> None:
        pass

    def event(self, event: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        """Tell the forwarder that the job wrote everything (it then finishes the
        run, without waiting for the process to end), and make sure one runs."""
        from . import forwarder

        forwarder.write_entry(self.workspace, self.folder, {**self.entry, "closed": True})
        forwarder.ensure_running(self.workspace)


SETTINGS = ("tracking_uri", "experiment_id", "experiment_name", "plots", "log_checkpoints")
"""Fields of MLflowTracking the forwarder needs"""

