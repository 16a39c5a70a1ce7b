"""Tiny experimaestro tasks for testing launchers (importable by job processes).

They live in the installed package, not in ``tests/``, so that a job
started by Slurm or locally imports them like any real task.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from experimaestro import Meta, Param, PathGenerator, Task, field


class RecordDevices(Task):
    """Writes when it ran and which GPUs it saw, holding them ``hold`` seconds."""

    index: Param[int]
    """Distinguishes otherwise identical jobs"""

    hold: Param[float]
    """Seconds to keep running"""

    record: Meta[Path] = field(default_factory=PathGenerator("record.json"))

    def execute(self):
        start = time.time()
        pidfile = self.record.with_name("pid")
        pidfile.write_text(str(os.getpid()))
        time.sleep(self.hold)
        self.record.write_text(json.dumps({
            "index": self.index,
            "pid": os.getpid(),
            "start": start,
            "end": time.time(),
            "devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "gpu_share": os.environ.get("XPM_TRAIN_GPU_MEMORY_FRACTION"),
            "slurm_job": os.environ.get("SLURM_JOB_ID"),
            "cpus": len(os.sched_getaffinity(0)),
            "threads": os.environ.get("OMP_NUM_THREADS"),
        }))


class Square(Task):
    """Writes ``x * x`` to ``result.json`` (a trivial task for Slurm round trips)."""

    x: Param[int]
    result: Meta[Path] = field(default_factory=PathGenerator("result.json"))

    def execute(self):
        self.result.write_text(json.dumps({"x": self.x, "square": self.x * self.x,
                                           "slurm_job": os.environ.get("SLURM_JOB_ID")}))


def read_record(task: RecordDevices) -> dict:
    """The record written by a finished ``RecordDevices`` job."""
    return json.loads(Path(task.record).read_text())
