"""The MLflow forwarder: one process per workspace mirrors every tracked job's
folder to MLflow, so that no job waits for MLflow.

A tracked job (:class:`~.mlflow_sink.MLflowSink`) only writes its folder
(``metrics.jsonl``, ``events.jsonl``, results) and one **entry**,
``<workspace>/mlflow/forward/<task>@<hash>.json`` (what to forward, where to,
the job's pid), and makes sure the forwarder runs. The job is done when its
results are in its folder: it never waits for MLflow.

The forwarder (``python -m xpm_train.tracking.forwarder WORKSPACE``, started
on demand, at a lower CPU priority) imports mlflow once and, every
:data:`POLL_S`, reads what each entry's job appended (whole lines only) and
logs it, at most every :data:`FLUSH_S` per job. Once the job's process is
gone, it logs the rest, draws the curves, uploads the artifacts, sets the
final status and removes the entry. A (key, step) already in the run is
never logged again, so a forwarder that starts on a job another one left
half done (killed, crashed) completes it without duplicates.

Lifetime: the forwarder holds ``forward/forwarder.lock`` while it runs and
exits after :data:`IDLE_S` seconds without entries. Nothing is lost when it
dies: the entries stay, and the next forwarder (started by the next tracked
job or plan of the workspace) or ``xpm-train mlflow sync`` forwards them.
When MLflow fails for a job (after retries), the forwarder writes ONE
``warning`` event in that job's ``events.jsonl`` and drops its entry; sync
pushes the rest later.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

logger = logging.getLogger("xpm_train.tracking.forwarder")

POLL_S = 0.5
"""Seconds between two reads of the job folders"""
FLUSH_S = 2.0
"""Metrics of one job are written to MLflow at most this often (and at its
end): one transaction per short epoch would cost the training disk time"""
IDLE_S = float(os.environ.get("XPM_TRAIN_FORWARDER_IDLE_S") or 60.0)
"""The forwarder exits after this many seconds without entries"""
RETRY_DELAYS = (0.5, 2.0)
"""Seconds between the attempts of one MLflow call (network hiccups)"""
LOCKED_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
"""... when SQLite says ``database is locked`` (many jobs writing at once)"""


# --- Shared by the job (writes an entry) and the forwarder


ENTRY = ".json"
"""The suffix of a spool entry (``TASK@HASH.json``); the spool is no job folder"""


def spool(workspace: Path) -> Path:
    """The folder of the entries of a workspace."""
    return Path(workspace) / "mlflow" / "forward"


def entry_path(workspace: Path, folder: Path) -> Path:
    return spool(workspace) / f"{folder.parent.name}@{folder.name}{ENTRY}"


def write_entry(workspace: Path, folder: Path, entry: dict[str, Any]) -> Path:
    """Record (atomically) that ``folder`` is to be forwarded."""
    from ..atomic import atomic_write_json

    path = entry_path(workspace, folder)
    atomic_write_json(path, entry, indent=None)
    return path


def running(workspace: Path) -> bool:
    """True while a forwarder of ``workspace`` holds its lock."""
    from ..locks import held

    return held(spool(workspace) / "forwarder.lock")


def ensure_running(workspace: Path) -> None:
    """Start the forwarder of ``workspace`` unless one runs (a second one
    started at the same time finds the lock taken and exits)."""
    if running(workspace):
        return
    folder = spool(workspace)
    folder.mkdir(parents=True, exist_ok=True)
    from ..daemon import start

    start("xpm_train.tracking.forwarder", [str(workspace)], folder / "forwarder.log")


def pending(workspace: Path) -> list[Path]:
    """Entries not forwarded yet."""
    folder = spool(workspace)
    return sorted(folder.glob(f"*@*{ENTRY}")) if folder.is_dir() else []


def wait_forwarded(workspace: Path, job_ids: list[str] | None = None, timeout: float = 120.0) -> bool:
    """Wait until the forwarder has finished these jobs (``task/hash``; all
    when None); False on timeout. Starts a forwarder when entries wait."""
    deadline = time.monotonic() + timeout
    names = None if job_ids is None else {f"{j.replace('/', '@')}{ENTRY}" for j in job_ids}
    while True:
        left = [p for p in pending(workspace) if names is None or p.name in names]
        if not left:
            return True
        if time.monotonic() > deadline:
            return False
        ensure_running(workspace)
        time.sleep(0.2)


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (None when it is gone): tells a job's
    process from a later one that got its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return fields[19]


# --- The forwarder


def give_up_event(events_path: Path, uri: str, folder: Path, reason: str) -> None:
    """The one warning of a job whose MLflow mirror stopped."""
    from ..jobfolder import METRICS, workspace_of
    from ..metrics import append_event

    message = (f"MLflow ({uri}) {reason}. Training goes on; metrics are complete in "
               f"{folder / METRICS}. Push them later with "
               f"`xpm-train mlflow sync --workdir {workspace_of(folder)}`")
    logger.warning(message)
    append_event(events_path, {"event": "warning", "time": time.time(), "source": "mlflow",
                               "message": message})


def first_line(error: BaseException | None) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else ""


class Job:
    """One entry: its run, what was forwarded, what is pending."""

    def __init__(self, path: Path, entry: dict[str, Any]):
        from .identity import JobIdentity

        self.path = path
        self.stamp = path.stat().st_mtime_ns
        self.entry = entry
        self.settings = entry["settings"]
        self.folder = Path(entry["folder"])
        self.events_path = Path(entry["events_path"])
        self.identity = JobIdentity(folder=self.folder, **entry["identity"])
        self.client = None
        self.run_id: str | None = None
        self.failed: str | None = None
        self.offset = 0
        """Bytes of ``metrics.jsonl`` read"""
        self.seen: set[tuple[str, int]] = set()
        """(key, step) pairs in the run"""
        self.records: list = []
        self.flushed = 0.0
        self.start_time: float | None = None
        """The job's first ``start`` event (metric timestamps are relative to it)"""

    def same_process(self, entry: dict[str, Any]) -> bool:
        return (entry.get("pid"), entry.get("pid_start")) == (self.entry["pid"], self.entry.get("pid_start"))

    def finished(self) -> bool:
        """The job closed its logger, or its process is gone."""
        return bool(self.entry.get("closed")) or \
            process_start(self.entry["pid"]) != self.entry.get("pid_start")

    def step(self, clients: dict) -> bool:
        """Forward what is new; True once the job is finished and forwarded."""
        finished = self.finished()  # known before reading the files: nothing can follow
        if self.failed is not None:  # given up: drop the entry once the job is over
            return finished
        if self.client is None:
            self.client = self._attempt("connect", lambda: self._connect(clients))
            if self.client is None:
                return finished
        self._read()
        if finished:
            if self._flush() is not None:
                self._attempt("finish the run", self._finish)
            return True
        if time.monotonic() - self.flushed >= FLUSH_S:
            self._flush()
        return False

    def _connect(self, clients: dict):
        """Open the store (once per URI) and find or create this job's run."""
        from . import store
        from .identity import flat_params
        from .runs import complete_params, create_run, find_run, logged_points

        experiment_id = self.settings["experiment_id"]
        if not experiment_id:
            raise RuntimeError("no MLflow experiment: MLflow was unreachable when the plan started")
        uri = self.settings["tracking_uri"]
        if uri not in clients:
            clients[uri] = store.client(uri)
        client = clients[uri]
        run = find_run(client, self.identity.job_id, [experiment_id])
        if run is None:
            run = create_run(client, experiment_id, self.identity, flat_params(self.folder))
        else:  # a resumed job, or one another forwarder left half done
            complete_params(client, run, flat_params(self.folder))
            if run.info.status != "RUNNING":
                client.update_run(run.info.run_id, status="RUNNING")
            self.seen = logged_points(client, run.info.run_id, run.data.metrics.keys())
        self.run_id = run.info.run_id
        if self.settings.get("plots"):  # while the job trains, not at its end
            import matplotlib.backends.backend_agg  # noqa: F401
            import matplotlib.figure  # noqa: F401
        return client

    def _read(self) -> None:
        """The whole lines appended to ``metrics.jsonl`` since the last read."""
        from ..jobfolder import METRICS
        from ..metrics import read_jsonl
        from .runs import metric_records

        if self.start_time is None:
            self.start_time = next((e["time"] for e in read_jsonl(self.events_path)
                                    if e.get("event") == "start"), None)
        path = self.folder / METRICS
        try:
            with open(path, "rb") as fp:
                fp.seek(self.offset)
                data = fp.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        self.offset += end
        points = []
        for line in data[:end].splitlines():
            try:
                points.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        for record in metric_records(points, start_time=self.start_time):
            if (record[0], record[2]) not in self.seen:
                self.seen.add((record[0], record[2]))
                self.records.append(record)

    def _flush(self):
        """Write the pending records (None when MLflow was given up)."""
        from .runs import log_records

        records, self.records = self.records, []
        self.flushed = time.monotonic()
        if not records:
            return True
        return self._attempt("log metrics", lambda: log_records(self.client, self.run_id, records))

    def _finish(self) -> bool:
        """Curves, artifacts, final status."""
        from ..metrics import read_jsonl
        from .runs import lifecycle_status, upload_artifacts
        from ..jobfolder import BEST, CHECKPOINTS, finished_state

        extra = []
        if self.settings.get("plots"):
            from .plots import job_curves

            job_curves(self.folder)
        if self.settings.get("log_checkpoints"):
            extra.append(self.folder / CHECKPOINTS / BEST)
        upload_artifacts(self.client, self.run_id, self.folder, extra)
        status = lifecycle_status(read_jsonl(self.events_path))
        if status == "RUNNING" and finished_state(self.folder) == "failed":
            status = "FAILED"  # killed before its end event
        if status != "RUNNING":
            self.client.set_terminated(self.run_id, status=status)
        return True

    def _attempt(self, what: str, action: Callable[[], Any]) -> Any:
        """``action()`` with retries; on final failure, give MLflow up for this job."""
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


def forward(workspace: Path) -> None:
    """The forwarder's loop (returns after :data:`IDLE_S` without entries)."""
    jobs: dict[Path, Job] = {}
    clients: dict[str, Any] = {}
    idle_since = time.monotonic()
    while True:
        entries = pending(workspace)
        if entries:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > IDLE_S:
            return
        for path in entries:
            try:
                stamp = path.stat().st_mtime_ns
                if path not in jobs or jobs[path].stamp != stamp:
                    entry = json.loads(path.read_text())
                    if path in jobs and jobs[path].same_process(entry):  # closed by the job
                        jobs[path].entry, jobs[path].stamp = entry, stamp
                    else:  # new, or the job started again
                        jobs[path] = Job(path, entry)
            except (OSError, ValueError, KeyError, TypeError) as error:
                logger.warning("unreadable entry %s (%s): dropped", path.name, error)
                path.unlink(missing_ok=True)
                continue
            job = jobs[path]
            if job.step(clients):
                if path.exists() and path.stat().st_mtime_ns == job.stamp:
                    path.unlink(missing_ok=True)
                jobs.pop(path, None)
                logger.info("%s forwarded%s", path.stem, f" (gave up: {job.failed})" if job.failed else "")
        for gone in set(jobs) - set(entries):
            jobs.pop(gone)
        time.sleep(POLL_S)


def main(argv: list[str]) -> None:
    from ..daemon import claim
    from . import store

    workspace = Path(argv[0])
    folder = spool(workspace)
    folder.mkdir(parents=True, exist_ok=True)
    if claim(folder / "forwarder.lock", 0o644, pid_file=folder / "forwarder.pid") is None:
        return  # another forwarder serves this workspace (the lock is held until exit)
    try:
        os.nice(10)  # MLflow takes the CPU the trainings leave
    except OSError:
        pass
    for key, value in store.HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s forwarder[{os.getpid()}] %(message)s")
    logger.info("forwarding %s", workspace)
    forward(workspace)
    logger.info("idle for %g s: exiting", IDLE_S)


if __name__ == "__main__":
    main(sys.argv[1:])
