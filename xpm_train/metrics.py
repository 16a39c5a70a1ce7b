"""The metrics logger every task uses: the job folder first, then sinks.

``metrics.jsonl`` holds one JSON object per logged point (``epoch``, ``step``,
``split``, metric values, ``elapsed`` seconds); ``events.jsonl`` one object per
event (``start``, ``checkpoint``, ``resume``, ``end``, ``error``, ...). Both are
appended and flushed at each write and fsynced at :meth:`MetricsLogger.sync`
(Learn calls it every epoch), so they are the source of truth: a sink (MLflow)
only mirrors them and can be rebuilt from them.

Every task opens its log with :func:`open_log` and writes the events that
frame its work with :func:`lifecycle`: ``start`` (or ``resume``), then ``end``,
or ``error`` when it fails.

Reading ``metrics.jsonl`` back goes through :func:`read_metrics`, the one
reader (``xpm-train mlflow sync``, the plots, Tune, ``load(...).history()``):
a job killed and resumed re-logs the points from its checkpoint's step on, so
the file can hold a value twice; the reader keeps the last write of each
``(split, epoch, step, metric)``, at the place of that last write, and drops
the points left with no value. (Only the live MLflow forwarder reads the file
incrementally, as it grows; it keeps the first value of a (key, step); and
``xpm-train watch`` (:mod:`xpm_train.watch.state`) parses only the appended
lines, with the same :func:`parse_record` and :func:`point_key` rules.)
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Protocol

if TYPE_CHECKING:
    from .distributed import Ranks


class Sink(Protocol):
    """Receives what the logger has already written to the job folder."""

    def metrics(self, points: list[dict[str, Any]]) -> None: ...

    def event(self, event: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All complete records of a jsonl file (a torn last line is skipped)."""
    if not path.exists():
        return []
    with path.open("rt") as fp:
        return [record for record in map(parse_record, fp) if record is not None]


def parse_record(line: str | bytes) -> dict[str, Any] | None:
    """One line of a jsonl file as its record; None for a torn or broken line
    (skipped by every reader)."""
    try:
        return json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


POINT_FIELDS = ("epoch", "step", "split", "elapsed")
"""The keys of a ``metrics.jsonl`` point that say where it is; the others are metric values"""


def metric_names(point: dict[str, Any]) -> list[str]:
    """The metric values of a point (its keys but :data:`POINT_FIELDS`)."""
    return [name for name in point if name not in POINT_FIELDS]


def point_key(point: dict[str, Any], name: str) -> tuple:
    """``(split, epoch, step, metric)``: a value logged again under the same
    key (a resumed job re-logging) replaces the earlier one."""
    return point.get("split"), point.get("epoch"), point.get("step"), name


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The points of a ``metrics.jsonl``, those superseded by a resume dropped
    (see the module documentation): each ``(split, epoch, step, metric)``
    once, with its last value, in the order of the last writes."""
    points = read_jsonl(Path(path))
    last = {point_key(point, name): index for index, point in enumerate(points) for name in metric_names(point)}
    kept = []
    for index, point in enumerate(points):
        names = [name for name in metric_names(point) if last[point_key(point, name)] == index]
        if names:
            kept.append({k: v for k, v in point.items() if k in POINT_FIELDS or k in names})
    return kept


class MetricsLogger:
    """Append metrics and events to jsonl files, then forward them to sinks.

    Points are buffered for the sinks and sent by batches at :meth:`sync`, so
    that a slow or unreachable sink never sits on the training step.
    """

    def __init__(self, metrics_path: Path, events_path: Path, sinks: list[Sink] = ()):
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
        self._metrics = metrics_path.open("at")
        self._events = events_path.open("at")
        self.sinks = list(sinks)
        self._pending: list[dict[str, Any]] = []
        self._start = time.monotonic()
        self.elapsed_offset = 0.0
        """Seconds spent in previous runs (set on resume)"""

    def elapsed(self) -> float:
        return self.elapsed_offset + time.monotonic() - self._start

    def log(self, *, epoch: int, step: int, split: str, **values: float) -> dict[str, Any]:
        point = {"epoch": epoch, "step": step, "split": split, **values}
        point["elapsed"] = round(self.elapsed(), 3)
        self._metrics.write(json.dumps(point) + "\n")
        self._metrics.flush()
        self._pending.append(point)
        return point

    def event(self, kind: str, **details: Any) -> None:
        event = {"event": kind, "time": time.time(), **details}
        self._events.write(json.dumps(event) + "\n")
        self._events.flush()
        for sink in self.sinks:
            sink.event(event)

    def sync(self) -> None:
        """Make the jsonl files durable and send buffered points to the sinks."""
        for fp in (self._metrics, self._events):
            fp.flush()
            os.fsync(fp.fileno())
        pending, self._pending = self._pending, []
        if pending:
            for sink in self.sinks:
                sink.metrics(pending)

    def close(self) -> None:
        if self._events.closed:
            return
        self.sync()
        for sink in self.sinks:
            sink.close()
        self._metrics.close()
        self._events.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SilentLogger:
    """What ranks other than 0 log to: nothing (same interface as ``MetricsLogger``)."""

    def __init__(self):
        self._start = time.monotonic()
        self.elapsed_offset = 0.0
        self.sinks: list = []

    def elapsed(self) -> float:
        return self.elapsed_offset + time.monotonic() - self._start

    def log(self, **point: Any) -> dict[str, Any]:
        return point

    def event(self, kind: str, **details: Any) -> None:
        pass

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def append_event(events_path: Path, event: dict[str, Any]) -> None:
    """One event appended to ``events.jsonl`` by a writer other than the
    job's logger (the MLflow sink): one ``O_APPEND`` write of a whole line,
    fsynced, so that it never interleaves with the logger's lines."""
    events_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(event) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def open_log(task, ranks: "Ranks | None" = None) -> "MetricsLogger":
    """The log of ``task``'s job: its ``metrics_path`` and ``events_path``,
    mirrored to the sinks of its ``tracking``; a silent one on the ranks other
    than 0 (rank 0 writes for the job)."""
    if ranks is not None and not ranks.is_main:
        return SilentLogger()
    from .provenance import record_start
    from .tags import record_job

    folder = Path(task.metrics_path).parent
    record_job(folder)  # the run's tags, before experimaestro may remove the run
    record_start(folder, task)  # which code and environment made the result
    sinks = task.tracking.sinks(task) if task.tracking is not None else []
    return MetricsLogger(task.metrics_path, task.events_path, sinks)


class Lifecycle:
    """What :func:`lifecycle` yields: call :meth:`end` once the job's result is written."""

    def __init__(self, log: MetricsLogger):
        self.log = log
        self.ended = False

    def end(self, **details: Any) -> None:
        """The ``end`` event (with e.g. ``wall_time``): the job succeeded."""
        self.log.event("end", **details)
        self.ended = True


def gpus_of_process() -> dict[str, str]:
    """``gpus`` (``CUDA_VISIBLE_DEVICES``) and ``host`` of this process when
    it was given GPUs: the start event records them so that ``xpm-train
    watch`` shows the memory and use of the job's own GPUs; nothing otherwise."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if not visible:
        return {}
    import socket

    return {"gpus": visible, "host": socket.gethostname()}


@contextlib.contextmanager
def lifecycle(log: MetricsLogger, ranks: "Ranks | None" = None, kind: str = "start", /,
              **details: Any) -> Iterator[Lifecycle]:
    """The events around a task's work, the same for every task.

    Writes ``kind`` (``start``, or ``resume`` for a job resumed from a
    checkpoint) with ``details`` (and the process's GPUs: :func:`gpus_of_process`); when the block raises, an ``error`` event
    (type and message) and the ranks closed as failed (the other ranks
    stop), except for a preemption (``GracefulTimeout``: the scheduler runs
    the job again, it is no error); ``end`` when the block ended without
    :meth:`Lifecycle.end`. The log is closed either way.
    """
    from experimaestro import GracefulTimeout

    log.event(kind, **gpus_of_process(), **details)
    job = Lifecycle(log)
    try:
        yield job
    except BaseException as error:
        if not isinstance(error, GracefulTimeout):
            log.event("error", error=f"{type(error).__name__}: {error}")
        log.close()
        if ranks is not None:
            ranks.close(failed=True)
        raise
    if not job.ended:
        job.end()
    log.close()
