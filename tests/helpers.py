"""Shared helpers of the integration tests: run the real commands, and record
what ran in a workspace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_experiment(params: Path | str, workdir: Path, *overrides: str, timeout: float = 600,
                   env: dict | None = None) -> subprocess.CompletedProcess:
    """``experimaestro run-experiment --workdir W PARAMS -c k=v...`` from the repo root."""
    command = [sys.executable, "-m", "experimaestro", "run-experiment", "--workdir", str(workdir)]
    for item in overrides:
        command += ["-c", item]
    command.append(str(params))
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def xpm_train(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The ``xpm-train`` CLI, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "xpm_train.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def what_ran(workdir: Path) -> dict[str, tuple]:
    """Evidence of every job execution in ``workdir``: per job folder, the
    modification time of its ``.done`` marker and its start/resume events.
    Two equal snapshots mean that nothing ran in between."""
    evidence = {}
    for folder in sorted((workdir / "jobs").glob("*/*")):
        done = sorted(folder.glob("*.done"))
        events = folder / "events.jsonl"
        starts = events.read_text().count('"start"') + events.read_text().count('"resume"') if events.exists() else 0
        evidence[f"{folder.parent.name}/{folder.name}"] = (
            done[0].stat().st_mtime_ns if done else None,
            starts,
            sorted(p.name for p in folder.iterdir()),
        )
    return evidence


def log_redone_run(folder: Path) -> None:
    """A ``metrics.jsonl`` as a Learn killed and resumed writes it (4 steps an
    epoch, a point every 2): the first run logs epochs 0 and 1, its last
    checkpoint is at the end of epoch 0 (step 4) and it is killed after logging
    epoch 1; the resumed run logs epoch 1 again, with other values, then epoch
    2. Read without the redone points: train_step at steps 2, 4, ... 12 and
    val accuracies 0.5, 0.9, 0.95 at steps 4, 8, 12."""
    from xpm_train.metrics import MetricsLogger

    def epoch(log, number, accuracy, loss):
        for step in (4 * number + 2, 4 * number + 4):
            log.log(epoch=number, step=step, split="train_step", loss=loss / step)
        log.log(epoch=number, step=4 * number + 4, split="train", loss=loss, accuracy=accuracy)
        log.log(epoch=number, step=4 * number + 4, split="val", loss=loss, accuracy=accuracy)

    with MetricsLogger(folder / "metrics.jsonl", folder / "events.jsonl") as log:  # killed
        log.event("start")
        epoch(log, 0, 0.5, 1.0)
        epoch(log, 1, 0.1, 9.0)
    with MetricsLogger(folder / "metrics.jsonl", folder / "events.jsonl") as log:  # resumed at step 4
        log.event("resume", epoch=1, batch=0, step=4)
        epoch(log, 1, 0.9, 0.5)
        epoch(log, 2, 0.95, 0.25)
        log.event("end")


def reset_scheduler() -> None:
    """Drop the scheduler's in-memory jobs and experiments (not the running loop)."""
    from experimaestro.scheduler.base import Scheduler

    scheduler = Scheduler._instance
    if scheduler is None:
        return
    for job in scheduler.jobs.values():
        job.experiments.clear()
    scheduler.jobs.clear()
    scheduler.waitingjobs.clear()
    scheduler.experiments.clear()
