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
