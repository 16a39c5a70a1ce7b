"""Fixtures of the distributed tests: a local launcher of 2 cores for the plans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PLAN = HERE / "plan" / "params.yaml"

LOCAL = """\
launchers:
  - name: box
    type: local
    cpu: {cores: 2, memory: 8G}
    gpus: []
"""


@pytest.fixture
def local_launchers(tmp_path, monkeypatch) -> Path:
    """A local launcher of 2 cores, no GPU, in effect through $XPM_TRAIN_LAUNCHERS
    (inherited by the plans the test runs)."""
    path = tmp_path / "launchers.yaml"
    path.write_text(LOCAL)
    monkeypatch.setenv("XPM_TRAIN_LAUNCHERS", str(path))
    monkeypatch.setenv("XPM_TRAIN_DDP_TIMEOUT", "60")
    return path


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
