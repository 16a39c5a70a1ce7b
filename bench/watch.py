"""Benchmark: what one refresh of ``xpm-train watch`` costs on a large sweep.

Generates a workspace of ``count`` fake but realistic job folders (10,000;
1,000 with ``--quick``): ``params.json``, ``events.jsonl``, a
``metrics.jsonl`` of about 50 lines, experimaestro's markers and, for ended
jobs, ``final.json``; 5 % of them run (a ``.pid`` marker). It times the first
full read of every folder, then refreshes, each after appending one epoch's
lines to every running job (repeats: median and spread). The target: a
refresh of 10,000 job folders in at most 1 s.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

from .common import load

TASK = "xpm_train.learn.learn"
EPOCHS = 10
STEPS_PER_EPOCH = 40


def params(job_hash: str, epochs: int = EPOCHS) -> dict[str, Any]:
    return {"objects": [{"id": 0, "identifier": job_hash, "typename": TASK, "fields": {"epochs": epochs}}]}


def epoch_lines(epoch: int, accuracy: float, log_interval: int = 10) -> str:
    """One epoch of a Learn's ``metrics.jsonl``: train_step points, then train and val."""
    step = (epoch + 1) * STEPS_PER_EPOCH
    lines = [{"epoch": epoch, "step": epoch * STEPS_PER_EPOCH + s, "split": "train_step", "loss": 1.0 / (s + 1),
              "lr": 0.001, "elapsed": epoch * 2.0 + s * 0.05} for s in range(log_interval, STEPS_PER_EPOCH + 1,
                                                                                log_interval)]
    lines.append({"epoch": epoch, "step": step, "split": "train", "loss": 0.5, "accuracy": accuracy - 0.01,
                  "elapsed": epoch * 2.0 + 2.0})
    lines.append({"epoch": epoch, "step": step, "split": "val", "loss": 0.6, "accuracy": accuracy,
                  "elapsed": epoch * 2.0 + 2.0})
    return "".join(json.dumps(line) + "\n" for line in lines)


def make_job(workspace: Path, index: int, state: str = "done", epochs_done: int = EPOCHS,
             start: float | None = None) -> Path:
    """A fake Learn job folder (``state``: done, failed, running or waiting)."""
    job_hash = hashlib.sha256(str(index).encode()).hexdigest()
    folder = workspace / "jobs" / TASK / job_hash
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.json").write_text(json.dumps(params(job_hash)))
    if state == "waiting":
        return folder
    start = time.time() - 60 if start is None else start
    events = [{"event": "start", "time": start, "device": "cpu", "train_samples": 1280, "val_samples": 256,
               "steps": EPOCHS * STEPS_PER_EPOCH}]
    (folder / "metrics.jsonl").write_text("".join(epoch_lines(e, 0.5 + 0.04 * e + index % 7 * 0.001)
                                                  for e in range(epochs_done)))
    if state in ("done", "failed"):
        events.append({"event": "end" if state == "done" else "error", "time": start + 2.0 * epochs_done})
    (folder / "events.jsonl").write_text("".join(json.dumps(event) + "\n" for event in events))
    if state == "done":
        best = 0.5 + 0.04 * (epochs_done - 1) + index % 7 * 0.001
        (folder / "final.json").write_text(json.dumps({
            "score": best, "score_metric": "val_accuracy", "direction": "maximize",
            "final": {"val_accuracy": best}, "epochs": epochs_done, "wall_time": 2.0 * epochs_done,
            "samples_per_s": 640.0}))
    marker = {"done": "learn.done", "failed": "learn.failed", "running": "learn.pid"}[state]
    (folder / marker).write_text("1234\n" if state == "running" else "")
    return folder


def make_workspace(workspace: Path, count: int, running_every: int = 20) -> list[Path]:
    """``count`` jobs, one in ``running_every`` running (at epoch 3); returns the running ones."""
    running = []
    for index in range(count):
        if index % running_every == 0:
            running.append(make_job(workspace, index, "running", epochs_done=3))
        else:
            make_job(workspace, index, "failed" if index % 50 == 1 else "done")
    return running


def run(tmp: Path, quick: bool, repeats: int = 5) -> list[dict[str, Any]]:
    from xpm_train.watch.sweep import Sweep

    count = 1_000 if quick else 10_000
    workspace = tmp / "watch"
    running = make_workspace(workspace, count)
    load_before = load()
    sweep = Sweep(workspace)
    started = time.perf_counter()
    shown = sweep.refresh()
    first = time.perf_counter() - started
    if len(shown) != count:
        raise RuntimeError(f"watch showed {len(shown)} jobs of {count}")
    refreshes = []
    for repeat in range(repeats):
        for folder in running:  # each running job logs one more epoch between refreshes
            with (folder / "metrics.jsonl").open("a") as fp:
                fp.write(epoch_lines(3 + repeat, 0.7))
        started = time.perf_counter()
        sweep.refresh()
        refreshes.append(time.perf_counter() - started)
    epochs = {job.epoch for job in sweep.jobs.values() if job.state == "running"}
    if epochs != {3 + repeats}:
        raise RuntimeError(f"the running jobs' epochs after the refreshes are {epochs}, expected {3 + repeats}")
    median = statistics.median(refreshes)
    spread = (max(refreshes) - min(refreshes)) / 2
    notes = (f"{count:,} job folders, {len(running)} running (one epoch appended to each between refreshes); "
             f"median of {repeats}, spread +/-{spread:.3f} s; first full read {first:.2f} s; "
             f"target <= 1 s; load {load_before:.1f} before")
    return [
        {"benchmark": "watch", "case": f"refresh of {count:,} job folders", "unit": "s", "xpm_train": median,
         "baseline": None, "spread_s": spread, "refreshes_s": refreshes, "first_read_s": first, "jobs": count,
         "running": len(running), "load_before": load_before, "notes": notes},
        {"benchmark": "watch", "case": f"first read of {count:,} job folders", "unit": "s", "xpm_train": first,
         "baseline": None, "jobs": count, "notes": "every folder's files parsed once (the start of watch)"},
    ]
