"""MLflow as a sink of the metrics logger: each task is one MLflow run.

:class:`MLflowTracking` is the ``tracking`` hook given to tasks (all fields
``Meta``: it never changes a task ID). Build it in the plan with
:func:`xpm_train.tracking.setup`, which creates the store and the experiment
once and records the git state.

:class:`MLflowSink` runs in the task process. Every MLflow call happens in a
worker process (``python -m xpm_train.tracking.mlflow_sink``, at a lower CPU
priority) fed through a queue and a pipe, so neither ``import mlflow``
(2-3 s), nor opening the store, nor a slow or dead server ever sits on the
training step, and the worker never holds the training's GIL. The job folder
is written first by the logger; when MLflow fails (after a few retries), the
worker writes ONE ``warning`` event to ``events.jsonl`` and ignores the rest
of the job's messages; the training goes on. ``xpm-train mlflow sync`` later
pushes what is missing.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable

from experimaestro import Meta, field

from ..hooks import Tracking

logger = logging.getLogger("xpm_train.tracking")

RETRY_DELAYS = (0.5, 2.0)
"""Seconds between the attempts of one MLflow call (network hiccups)"""
LOCKED_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
"""... when SQLite says ``database is locked`` (many jobs writing at once)"""
FLUSH_S = 2.0
"""The worker writes metrics to MLflow at most this often (and at the end):
one transaction per epoch of a short epoch costs the training a few ms of
disk contention (a quick-size Learn's 0.09 s epochs were 2.7% slower)"""


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
    """Seconds a finished task waits for MLflow before leaving the rest to sync"""

    def sinks(self, task) -> list["MLflowSink"]:
        folder = job_folder(task)
        return [MLflowSink(self, folder, Path(getattr(task, "events_path", folder / "events.jsonl")))]


def job_folder(task) -> Path:
    """The job folder of ``task`` in its process."""
    from experimaestro.taskglobals import Env

    taskpath = Env.instance().taskpath
    if taskpath is not None:
        return Path(taskpath)
    return Path(task.metrics_path).parent


class MLflowSink:
    """Mirrors one job to one MLflow run, through a worker process.

    The training thread only puts batches in a queue; a small writer thread
    pipes them to ``python -m xpm_train.tracking.mlflow_sink``, which does
    every MLflow call (no GIL shared with the training, lower CPU priority).
    """

    def __init__(self, settings: MLflowTracking, folder: Path, events_path: Path,
                 identity=None):
        import subprocess
        import sys

        from .identity import JobIdentity, experiment_jobs_tags, host_name, launcher_name

        self.settings = settings
        self.folder = folder
        self.events_path = events_path
        self.failed: str | None = None
        """Why MLflow was given up (None while it works; known after close)"""
        self.run_id: str | None = None
        self._started = time.time()
        if identity is None:
            workspace = folder.parent.parent.parent
            tags = experiment_jobs_tags(workspace, settings.experiment_name).get(folder.name, {}) \
                if settings.experiment_name else {}
            identity = JobIdentity(folder=folder, tags=tags, experiment=settings.experiment_name,
                                   git_commit=settings.git_commit, git_dirty=settings.git_dirty,
                                   host=host_name(), launcher=launcher_name())
        self.identity = identity
        append_event(events_path, {"event": "tracking", "time": self._started,
                                   "uri": settings.tracking_uri, "experiment_id": settings.experiment_id,
                                   "host": identity.host, "launcher": identity.launcher})
        self._queue: queue.Queue = queue.Queue()
        self._queue.put({"settings": {name: getattr(settings, name) for name in SETTINGS},
                         "folder": str(folder), "events_path": str(events_path),
                         "identity": {"tags": identity.tags, "experiment": identity.experiment,
                                      "git_commit": identity.git_commit, "git_dirty": identity.git_dirty,
                                      "host": identity.host, "launcher": identity.launcher}})
        self._worker = subprocess.Popen(
            [sys.executable, "-m", "xpm_train.tracking.mlflow_sink"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env={**os.environ, "MLFLOW_TRACKING_URI": settings.tracking_uri})
        self._writer = threading.Thread(target=self._write, name="mlflow-sink", daemon=True)
        self._writer.start()

    # --- Sink protocol (called on the training thread: never blocks)

    def metrics(self, points: list[dict[str, Any]]) -> None:
        self._queue.put({"kind": "metrics", "item": list(points)})

    def event(self, event: dict[str, Any]) -> None:
        self._queue.put({"kind": "event", "item": event})

    def close(self) -> None:
        """Wait (at most ``close_timeout``) for MLflow to have everything."""
        import subprocess

        self._queue.put({"kind": "close"})
        self._queue.put(None)
        deadline = time.monotonic() + self.settings.close_timeout
        self._writer.join(self.settings.close_timeout)
        self._worker.stdin = None  # closed by the writer thread
        try:
            out, _ = self._worker.communicate(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            self._worker.kill()
            self._worker.wait()
            self.failed = f"did not answer within {self.settings.close_timeout:g} s"
            if not self._warned():
                give_up_event(self.events_path, self.settings.tracking_uri, self.folder, self.failed)
            return
        lines = out.decode(errors="replace").strip().splitlines() if out else []
        try:
            state = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            state = {"failed": f"the MLflow worker exited with code {self._worker.returncode}"}
        self.failed, self.run_id = state.get("failed"), state.get("run_id")
        if self.failed and not self._warned():
            give_up_event(self.events_path, self.settings.tracking_uri, self.folder, self.failed)

    def _write(self) -> None:
        """Writer thread: queue -> worker's stdin (blocking writes off the training thread)."""
        stdin = self._worker.stdin
        try:
            while (message := self._queue.get()) is not None:
                stdin.write((json.dumps(message) + "\n").encode())
                stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the worker died: close() reports it
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def _warned(self) -> bool:
        """Whether the worker already wrote its warning for this process."""
        from ..metrics import read_jsonl

        return any(e.get("event") == "warning" and e.get("source") == "mlflow"
                   and e.get("time", 0) >= self._started for e in read_jsonl(self.events_path))


SETTINGS = ("tracking_uri", "experiment_id", "experiment_name", "plots", "log_checkpoints")
"""Fields of MLflowTracking the worker needs"""


def append_event(events_path: Path, event: dict[str, Any]) -> None:
    """One atomic append to ``events.jsonl`` (the logger writes whole lines too)."""
    events_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(event) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def give_up_event(events_path: Path, uri: str, folder: Path, reason: str) -> None:
    """The one warning of a job whose MLflow mirror stopped."""
    message = (f"MLflow ({uri}) {reason}. Training goes on; metrics are complete in "
               f"{folder / 'metrics.jsonl'}. Push them later with "
               f"`xpm-train mlflow sync --workdir {folder.parent.parent.parent}`")
    logger.warning(message)
    append_event(events_path, {"event": "warning", "time": time.time(), "source": "mlflow",
                               "message": message})


class Mirror:
    """The worker side: applies the sink's messages to MLflow, in order.

    Each MLflow call is retried; on final failure the mirror writes the one
    warning and ignores the rest (the job folder has it all)."""

    def __init__(self, settings: dict[str, Any], folder: Path, events_path: Path, identity):
        self.settings = settings
        self.folder = folder
        self.events_path = events_path
        self.identity = identity
        self.failed: str | None = None
        self.run_id: str | None = None
        self.client = None
        self._status = "RUNNING"
        self._records: list = []
        """Metric records not written yet (see :data:`FLUSH_S`)"""
        self._flushed = 0.0

    def handle(self, message: dict[str, Any]) -> bool:
        """Apply one message; False after ``close``."""
        kind = message["kind"]
        if self.failed is not None:
            return kind != "close"
        if self.client is None:
            self.client = self._attempt("connect", self._connect)
            if self.client is None:  # given up
                return kind != "close"
            if self.settings["plots"]:  # while the task trains, not at its end
                import matplotlib.backends.backend_agg  # noqa: F401
                import matplotlib.figure  # noqa: F401
        if kind == "close":
            if self._flush() is not None:
                self._attempt("finish the run", self._finish)
            return False
        if kind == "metrics":
            from .runs import metric_records

            self._records += metric_records(message["item"])
            if time.monotonic() - self._flushed >= FLUSH_S:
                self._flush()
        elif kind == "event":
            self._on_event(message["item"])
        return True

    def _flush(self):
        """Write the pending metric records (None when MLflow was given up)."""
        from .runs import log_records

        records, self._records = self._records, []
        self._flushed = time.monotonic()
        if not records:
            return True
        return self._attempt("log metrics", lambda: log_records(self.client, self.run_id, records))

    def _connect(self):
        """Open the store and find or create this job's run."""
        from . import store
        from .identity import flat_params
        from .runs import complete_params, create_run, find_run

        experiment_id = self.settings["experiment_id"]
        if not experiment_id:
            raise RuntimeError("no MLflow experiment: MLflow was unreachable when the plan started")
        client = store.client(self.settings["tracking_uri"])
        run = find_run(client, self.identity.job_id, [experiment_id])
        if run is None:
            run = create_run(client, experiment_id, self.identity, flat_params(self.folder))
        else:  # a resumed job (or a retried connection): complete, reopen
            complete_params(client, run, flat_params(self.folder))
            if run.info.status != "RUNNING":
                client.update_run(run.info.run_id, status="RUNNING")
        self.run_id = run.info.run_id
        return client

    def _on_event(self, event: dict[str, Any]) -> None:
        from .runs import STATUS_OF_EVENT

        kind = event.get("event")
        if kind in STATUS_OF_EVENT:
            self._status = STATUS_OF_EVENT[kind]
        elif kind == "resume":
            self._status = "RUNNING"

    def _finish(self) -> bool:
        """Curves, artifacts, final status."""
        from .runs import upload_artifacts

        extra = []
        if self.settings["plots"]:
            from .plots import job_curves

            job_curves(self.folder)
        if self.settings["log_checkpoints"]:
            extra.append(self.folder / "checkpoints" / "best.pt")
        upload_artifacts(self.client, self.run_id, self.folder, extra)
        if self._status != "RUNNING":
            self.client.set_terminated(self.run_id, status=self._status)
        return True

    def _attempt(self, what: str, action: Callable[[], Any]) -> Any:
        """``action()`` with retries; on final failure, give MLflow up (once)."""
        error: BaseException | None = None
        attempt = 0
        while True:
            try:
                result = action()
                return result if result is not None else True
            except Exception as exc:  # noqa: BLE001  (any MLflow failure)
                error = exc
                logger.debug("MLflow: could not %s: %s", what, exc)
            delays = LOCKED_RETRY_DELAYS if "database is locked" in str(error) else RETRY_DELAYS
            if attempt >= len(delays):
                break
            time.sleep(delays[attempt])
            attempt += 1
        self.failed = f"could not {what}: {type(error).__name__}: {first_line(error)}"
        give_up_event(self.events_path, self.settings["tracking_uri"], self.folder, self.failed)
        return None


def worker_main() -> None:
    """``python -m xpm_train.tracking.mlflow_sink``: JSON lines on stdin (a
    setup line, then messages), the final state as one JSON line on stdout."""
    import sys

    from .identity import JobIdentity

    try:
        os.nice(10)  # MLflow takes the CPU the training leaves
    except OSError:
        pass
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s [%(name)s] %(message)s")
    setup = json.loads(sys.stdin.readline())
    folder = Path(setup["folder"])
    mirror = Mirror(setup["settings"], folder, Path(setup["events_path"]),
                    JobIdentity(folder=folder, **setup["identity"]))
    for line in sys.stdin:
        if not mirror.handle(json.loads(line)):
            break
    else:  # stdin closed without close (the task died): finish what we have
        if mirror.failed is None and mirror.client is not None:
            mirror.handle({"kind": "close"})
    print(json.dumps({"failed": mirror.failed, "run_id": mirror.run_id}), flush=True)


def first_line(error: BaseException | None) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else ""


if __name__ == "__main__":
    worker_main()
