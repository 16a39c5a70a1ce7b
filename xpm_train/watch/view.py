"""The terminal view of ``xpm-train watch``: a text frame redrawn at each refresh.

:func:`frame` is pure (jobs, width, height, sort, filter -> lines): columns
that do not fit the width are dropped, least useful first, never a
traceback. :func:`loop` redraws it until every shown job has ended, reading
keys from the terminal in cbreak mode: ``q`` quits, ``s`` cycles the sort,
``/`` or ``f`` types a filter (Enter applies, Escape clears).
"""

from __future__ import annotations

import os
import select
import sys
import time
from typing import Callable, Optional

from . import gpus as gpu_table
from .state import JobWatch

SORTS = ("state", "best", "progress", "elapsed", "job")
"""Sort keys, in the order ``s`` cycles through them"""

STATE_ORDER = {"running": 0, "waiting": 1, "failed": 2, "done": 3}

COLUMNS = ("job", "state", "trial", "epoch", "step", "metric", "latest", "best", "samples/s", "elapsed", "eta",
           "gpu mem", "gpu util")
DROP_ORDER = ("gpu util", "samples/s", "metric", "eta", "step", "gpu mem", "latest", "elapsed", "trial", "epoch",
              "best")
"""Columns dropped one by one, in this order, until the table fits the terminal (job and state stay)"""


def duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def number(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4f}"


def fraction(done: Optional[int], total: Optional[int]) -> str:
    if done is None:
        return "-"
    return f"{done}/{total}" if total else str(done)


def cells(job: JobWatch, gpus: dict, now: float) -> dict[str, str]:
    use = gpu_table.usage(gpu_table.job_gpus(job.gpus, job.host, job.device), gpus) if job.state == "running" else None
    return {
        "job": f"{job.folder.parent.name.rsplit('.', 1)[-1]}/{job.folder.name[:10]}",
        "state": job.state, "trial": "-" if job.trial is None else str(job.trial),
        "epoch": fraction(job.epoch, job.epochs), "step": fraction(job.step, job.steps),
        "metric": job.metric or "-", "latest": number(job.latest), "best": number(job.best),
        "samples/s": "-" if job.samples_per_s is None else f"{job.samples_per_s:,.0f}",
        "elapsed": duration(job.seconds(now)), "eta": duration(job.eta(now)),
        "gpu mem": "-" if use is None else f"{use[0] / 1024:.1f}/{use[1] / 1024:.0f}G",
        "gpu util": "-" if use is None else f"{use[2]:.0f}%",
    }


def sort_key(name: str, now: float) -> Callable[[JobWatch], tuple]:
    def best(job):  # best first in the job's direction; jobs without a value last
        if job.best is None:
            return (1, 0.0)
        return (0, job.best if job.direction == "minimize" else -job.best)

    keys = {
        "state": lambda job: (STATE_ORDER.get(job.state, 4), job.id),
        "best": lambda job: (*best(job), job.id),
        "progress": lambda job: (-(job.step or 0) / (job.steps or 1) if job.steps else 0.0, -(job.epoch or 0), job.id),
        "elapsed": lambda job: (-(job.seconds(now) or 0.0), job.id),
        "job": lambda job: job.id,
    }
    return keys[name]


def matches(job: JobWatch, text: str) -> bool:
    """``/`` filter: ``tag=value`` (a tag or the state), else a part of the job ID, state or a tag value."""
    text = text.strip()
    if not text:
        return True
    key, sep, value = text.partition("=")
    if sep:
        found = job.state if key == "state" else job.tags.get(key)
        return str(found) == value
    words = [job.id, job.state, *(f"{k}={v}" for k, v in job.tags.items())]
    return any(text in word for word in words)


def fit(names: list[str], rows: list[dict[str, str]], width: int) -> tuple[list[str], dict[str, int]]:
    """The columns kept to fit ``width`` (least useful dropped first), and their widths."""
    widths = {name: max([len(name), *(len(row[name]) for row in rows)]) for name in names}
    kept = list(names)
    for name in DROP_ORDER:
        if sum(widths[n] for n in kept) + 2 * (len(kept) - 1) <= width:
            break
        if name in kept:
            kept.remove(name)
    return kept, widths


def frame(jobs: list[JobWatch], width: int, height: int = 10_000, sort: str = "state", text: str = "",
          gpus: Optional[dict] = None, now: Optional[float] = None, title: str = "", study: bool = False,
          typing: Optional[str] = None) -> list[str]:
    """The lines of one frame (see the module documentation), each at most ``width`` characters."""
    now = time.time() if now is None else now
    width = max(width, 1)
    counts = {}
    for job in jobs:
        counts[job.state] = counts.get(job.state, 0) + 1
    summary = ", ".join(f"{counts[s]} {s}" for s in STATE_ORDER if s in counts) or "no job yet"
    shown = sorted((job for job in jobs if matches(job, text)), key=sort_key(sort, now))
    prompt = f"filter: {typing}_" if typing is not None else f"sort: {sort}" + (f"  filter: {text}" if text else "")
    lines = [f"{len(jobs)} jobs: {summary}  {title}".strip(), f"{prompt}   (q quit, s sort, / filter)"]
    names = [n for n in COLUMNS if study or n != "trial"]
    rows = [cells(job, gpus or {}, now) for job in shown[:max(height - 4, 1)]]
    kept, widths = fit(names, rows, width)
    lines.append("  ".join(name.ljust(widths[name]) for name in kept).rstrip())
    lines += ["  ".join(row[name].ljust(widths[name]) for name in kept).rstrip() for row in rows]
    if len(shown) > len(rows):
        lines.append(f"... {len(shown) - len(rows)} more (narrow with / or --where)")
    return [line[:width] for line in lines]


class Keys:
    """Keys typed in the terminal, without Enter (cbreak mode) while in use; none when stdin is no terminal."""

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stdin
        self.tty = self.stream.isatty()
        self.saved = None

    def __enter__(self):
        if self.tty:
            import termios
            import tty

            self.saved = termios.tcgetattr(self.stream.fileno())
            tty.setcbreak(self.stream.fileno())
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self.saved)

    def read(self, timeout: float) -> str:
        """The keys typed within ``timeout`` seconds ('' when none; sleeps without a terminal)."""
        if not self.tty:
            time.sleep(timeout)
            return ""
        ready, _, _ = select.select([self.stream], [], [], timeout)
        return os.read(self.stream.fileno(), 64).decode(errors="replace") if ready else ""


def refreshed(sweep, sort: Optional[str] = None, text: str = "", typing: Optional[str] = None,
              height: Optional[int] = None) -> tuple[list[JobWatch], list[str]]:
    """Refresh ``sweep``; its shown jobs and their frame at the terminal's width
    (and height, unless given), with one ``nvidia-smi`` call when a running job has a GPU."""
    import shutil

    shown = sweep.refresh()
    on_gpu = any(job.state == "running" and (job.gpus or (job.device or "").startswith("cuda")) for job in shown)
    size = shutil.get_terminal_size()
    title = f"xpm-train watch {sweep.workspace}" + (f"  study {sweep.study}" if sweep.study else "")
    lines = frame(shown, size.columns, height or size.lines, sort or default_sort(sweep), text,
                  gpu_table.query() if on_gpu else {}, title=title, study=bool(sweep.study), typing=typing)
    return shown, lines


def default_sort(sweep) -> str:
    """A study's trials best first, other jobs by state (running first)."""
    return "best" if sweep.study else "state"


def loop(sweep, interval: float = 2.0, sort: Optional[str] = None, out=None, keys: Optional[Keys] = None) -> None:
    """Redraw until every shown job has ended, or ``q`` / Ctrl-C."""
    out = out or sys.stdout
    keys = keys or Keys()
    sort = sort or default_sort(sweep)
    text, typing = "", None
    with keys:
        while True:
            shown, lines = refreshed(sweep, sort, text, typing)
            out.write("\x1b[H\x1b[J" + "\n".join(lines) + "\n")
            out.flush()
            if sweep.finished(shown):
                out.write("every job shown has ended\n")
                return
            for key in keys.read(interval):
                if typing is not None:
                    if key in "\r\n":
                        text, typing = typing, None
                    elif key == "\x1b":
                        text, typing = "", None
                    elif key in "\x7f\b":
                        typing = typing[:-1]
                    else:
                        typing += key
                elif key == "q":
                    return
                elif key == "s":
                    sort = SORTS[(SORTS.index(sort) + 1) % len(SORTS)]
                elif key in "/f":
                    typing = ""
