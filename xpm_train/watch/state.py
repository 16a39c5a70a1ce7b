"""What ``xpm-train watch`` shows of one job, read incrementally from its folder.

A job folder is the source of truth (:mod:`xpm_train.jobfolder`): its state
comes from experimaestro's markers, its progress from ``events.jsonl`` (the
``start`` event's ``steps``, ``gpus`` and ``host``) and ``metrics.jsonl``,
its totals from ``params.json`` (``epochs``), its final score from its summary
(:mod:`xpm_train.summary`). A :class:`JobWatch` keeps, per file, the offset
read so far and parses only the bytes appended since (lines through
:func:`xpm_train.metrics.parse_record`, a value logged again under the same
:func:`xpm_train.metrics.point_key` replacing the earlier one, as
:func:`xpm_train.metrics.read_metrics` does); a file that shrank or was
replaced is read again from its start. A job that has ended is read one last
time, then only its marker is checked.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..jobfolder import EVENTS, METRICS, PARAMS, marker
from ..metrics import metric_names, parse_record, point_key

ENDED = ("done", "failed")


class Tail:
    """The complete lines appended to a file since the last :meth:`read`."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.identity: tuple[int, int] | None = None
        self.bytes_read = 0
        """Bytes read from the file in all (tests check that a refresh reads only what was appended)"""

    def read(self) -> tuple[bool, list[dict[str, Any]]]:
        """``(restarted, records)``: the records of the lines completed since
        the last call; ``restarted`` when the file was truncated or replaced
        (the records are then all of its records)."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            restarted = self.offset > 0
            self.offset, self.identity = 0, None
            return restarted, []
        identity = (stat.st_dev, stat.st_ino)
        restarted = self.identity is not None and (identity != self.identity or stat.st_size < self.offset)
        if restarted:
            self.offset = 0
        self.identity = identity
        if stat.st_size == self.offset:
            return restarted, []
        with open(self.path, "rb") as fp:
            fp.seek(self.offset)
            data = fp.read(stat.st_size - self.offset)
        self.bytes_read += len(data)
        complete = data.rfind(b"\n") + 1  # a torn last line is read again when it is complete
        self.offset += complete
        records = (parse_record(line) for line in data[:complete].splitlines())
        return restarted, [record for record in records if isinstance(record, dict)]


def task_fields(folder: Path) -> dict[str, Any]:
    """The fields of the job's own config in ``params.json`` ({} when unreadable)."""
    try:
        objects = json.loads((folder / PARAMS).read_text())["objects"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    task = next((o for o in objects if o.get("identifier") == folder.name), None)
    return (task or {}).get("fields", {}) or {}


def job_state(folder: Path) -> str:
    """:func:`xpm_train.jobfolder.state`, with one stat per marker."""
    for kind in ("done", "failed", "pid"):
        if os.path.exists(marker(folder, kind)):
            return "running" if kind == "pid" else kind
    return "waiting"


@dataclass
class JobWatch:
    """One job as ``watch`` shows it, updated by :meth:`refresh`."""

    folder: Path
    tags: dict[str, Any] = field(default_factory=dict)
    state: str = "waiting"
    epoch: Optional[int] = None
    """Epochs finished (the last logged point's epoch + 1)"""
    epochs: Optional[int] = None
    step: Optional[int] = None
    steps: Optional[int] = None
    started: Optional[float] = None
    """Time of the last ``start``/``resume`` event"""
    ended_at: Optional[float] = None
    elapsed: Optional[float] = None
    """Training seconds of the last logged point (previous runs included)"""
    train_samples: Optional[int] = None
    samples_per_s: Optional[float] = None
    gpus: Optional[str] = None
    host: Optional[str] = None
    device: Optional[str] = None
    metric: Optional[str] = None
    """The score's metric: the summary's ``score_metric``, else the first validation metric of known direction"""
    direction: Optional[str] = None
    latest: Optional[float] = None
    best: Optional[float] = None
    error: Optional[str] = None
    trial: Optional[int] = None

    def __post_init__(self):
        self.metrics = Tail(self.folder / METRICS)
        self.events = Tail(self.folder / EVENTS)
        self.values: dict[tuple, float] = {}
        """The score metric's values by :func:`point_key` (a value logged again replaces the earlier one)"""
        self.final = False
        """Ended and read for the last time: only its marker is checked"""

    @property
    def id(self) -> str:
        return f"{self.folder.parent.name}/{self.folder.name}"

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    def refresh(self) -> None:
        if self.final:
            if os.path.exists(marker(self.folder, self.state)):
                return
            self.final = False  # submitted again: a new run of the job
        state = job_state(self.folder)
        if self.epochs is None:
            epochs = task_fields(self.folder).get("epochs")
            self.epochs = epochs if isinstance(epochs, int) else None
        self.state = state
        if state == "done" and self.metrics.offset == 0 and self.read_summary():
            self.final = True  # first seen done: its summary says it all, its logs are not parsed
            return
        self.read_events()
        self.read_metrics()
        if state in ENDED:
            self.read_summary()
            self.final = True

    def read_events(self) -> None:
        restarted, events = self.events.read()
        for event in events:
            kind = event.get("event")
            if kind in ("start", "resume"):
                self.started, self.ended_at, self.error = event.get("time"), None, None
                self.steps = event.get("steps", self.steps)
                self.train_samples = event.get("train_samples", self.train_samples)
                self.gpus, self.host = event.get("gpus"), event.get("host")
                self.device = event.get("device", self.device)
            elif kind in ("end", "error"):
                self.ended_at = event.get("time")
                if kind == "error":
                    self.error = event.get("error")

    def read_metrics(self) -> None:
        restarted, points = self.metrics.read()
        if restarted:
            self.values.clear()
        for point in points:
            if isinstance(point.get("epoch"), int):
                self.epoch = point["epoch"] + 1
            if isinstance(point.get("step"), int):
                self.step = point["step"]
            if isinstance(point.get("elapsed"), (int, float)):
                self.elapsed = point["elapsed"]
            if self.metric is None:
                self.metric = score_metric(point)
            for name in metric_names(point):
                if qualified(point, name) == self.metric and is_number(point[name]):
                    self.values[point_key(point, name)] = point[name]
                    self.latest = point[name]
        if points or restarted:
            self.update_best()
        if self.train_samples and self.epoch and self.elapsed:
            self.samples_per_s = self.train_samples * self.epoch / self.elapsed

    def update_best(self) -> None:
        from ..summary import known_direction

        if self.metric is not None and self.direction is None:
            self.direction = known_direction(self.metric)
        if self.values:
            pick = min if self.direction == "minimize" else max
            self.best = pick(self.values.values())

    def read_summary(self) -> bool:
        """Take the score, its direction and the totals from the job's summary; False when it has none."""
        from ..summary import read

        try:
            summary = read(self.folder)
        except (OSError, ValueError):
            return False
        if not isinstance(summary, dict) or not summary:
            return False
        if isinstance(summary.get("epochs"), int) and self.epoch is None:
            self.epoch = summary["epochs"]
        if isinstance(summary.get("steps"), int):  # all of them done
            self.step, self.steps = self.step or summary["steps"], self.steps or summary["steps"]
        named = summary.get("score_metric")
        if isinstance(named, str) and named != self.metric:
            self.metric, self.latest = named, None
        self.direction = summary.direction("score") or self.direction
        if is_number(summary.get("score")):
            self.best = summary["score"]
        final = summary.get("final")
        if self.latest is None and isinstance(final, dict) and is_number(final.get(self.metric)):
            self.latest = final[self.metric]
        if is_number(summary.get("samples_per_s")):
            self.samples_per_s = summary["samples_per_s"]
        if is_number(summary.get("wall_time")):
            self.elapsed = summary["wall_time"]
        return True

    def seconds(self, now: Optional[float] = None) -> Optional[float]:
        """Seconds the job has run: live while it runs."""
        if self.state == "running" and self.started is not None and self.ended_at is None:
            live = (now or time.time()) - self.started
            return max(live, self.elapsed or 0.0)
        return self.elapsed

    def eta(self, now: Optional[float] = None) -> Optional[float]:
        """Seconds left, from the steps (else epochs) done so far at this pace."""
        if self.state != "running":
            return None
        seconds = self.seconds(now)
        for done, total in ((self.step, self.steps), (self.epoch, self.epochs)):
            if done and total and seconds:
                return max(seconds * (total - done) / done, 0.0)
        return None


def is_number(value: Any) -> bool:
    from ..summary import is_result

    return is_result(value)


def qualified(point: dict[str, Any], name: str) -> str:
    """``val_accuracy`` for metric ``accuracy`` of split ``val`` (a summary's name for it)."""
    from ..summary import key

    return key(point.get("split") or "", name)


def score_metric(point: dict[str, Any]) -> Optional[str]:
    """The score a running job is watched by, before its summary names it:
    a validation (else evaluation, else unsplit) point's ``objective``, or
    its first metric of known direction other than the loss, or its loss."""
    from ..summary import known_direction

    if point.get("split") not in ("val", "eval", "", None):
        return None
    names = metric_names(point)
    known = [name for name in names if name == "objective" or known_direction(qualified(point, name)) is not None]
    for name in sorted(known, key=lambda name: (name != "objective", name == "loss")):
        return qualified(point, name)
    return None

