"""Shared pieces of the distributed tests: the plan, its runs, reading a job folder."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLAN = HERE / "plan" / "params.yaml"

LOCAL = """\
launchers:
  - name: box
    type: local
    cpu: {cores: 2, memory: 8G}
    gpus: []
"""

TWO_RANKS = "duration=10m & cpu(cores=2) & processes=2"
RUN = ("batch_size=26", "log_interval=1")
"""Overrides of every run compared: 887 training samples, so the last global
batch (3) splits 2 + 1; every step logged (the fault tests watch the steps)"""


def learn_folder(workdir: Path) -> Path:
    (folder,) = list((workdir / "jobs" / "xpm_train.learn.learn").glob("*"))
    return folder


def events(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]


def weights(folder: Path) -> dict:
    from xpm_train import checkpoint

    return checkpoint.load(folder / "checkpoints" / "last.pt")["model"]


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


GPUS = """\
launchers:
  - name: gpus
    type: local
    cpu: {cores: 2, memory: 8G}
    gpus: auto
"""
"""A launchers file whose local launcher has every GPU of the host"""


def cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
