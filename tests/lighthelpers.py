"""Shared helpers of the Lightning tests (tests/lightning, tests/distributed):
the example plan, its job folder and events, waiting for its first checkpoint."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from helpers import REPO

EXAMPLE = REPO / "experiments" / "lightning"
PLAN = EXAMPLE / "params.yaml"
TASK = "xpm_train.lightning.fit.lightningfit"


def job_folder(workdir: Path) -> Path:
    """The only LightningFit job folder of ``workdir``."""
    folders = list((workdir / "jobs" / TASK).glob("*"))
    assert len(folders) == 1, folders
    return folders[0]


def events(folder: Path) -> list[dict]:
    path = folder / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for_checkpoint(workdir: Path, plan: subprocess.Popen, timeout: float = 300) -> Path:
    """The job folder, once the job checkpointed its first epoch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        folders = list((workdir / "jobs").glob(f"{TASK}/*"))
        if folders and any(e["event"] == "checkpoint" for e in events(folders[0])):
            return folders[0]
        assert plan.poll() is None, "the plan ended before the job checkpointed"
        time.sleep(0.02)
    pytest.fail("the job did not checkpoint in time")
