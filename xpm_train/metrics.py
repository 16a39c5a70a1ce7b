"""The metrics logger every task uses: the job folder first, then sinks.

``metrics.jsonl`` holds one JSON object per logged point (``epoch``, ``step``,
``split``, metric values, ``elapsed`` seconds); ``events.jsonl`` one object per
event (``start``, ``checkpoint``, ``resume``, ``end``, ``error``, ...). Both are
appended and flushed at each write and fsynced at :meth:`MetricsLogger.sync`
(Learn calls it every epoch), so they are the source of truth: a sink (MLflow)
only mirrors them and can be rebuilt from them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Protocol


class Sink(Protocol):
    """Receives what the logger has already written to the job folder."""

    def metrics(self, points: list[dict[str, Any]]) -> None: ...

    def event(self, event: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All complete records of a jsonl file (a torn last line is skipped)."""
    if not path.exists():
        return []
    records = []
    with path.open("rt") as fp:
        for line in fp:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


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
        self.sync()
        for sink in self.sinks:
            sink.close()
        self._metrics.close()
        self._events.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
