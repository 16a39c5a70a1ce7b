"""Checkpoints: atomic, checksummed, with a fallback to the previous one."""

import errno
import os

import pytest
import torch

from xpm_train import checkpoint


def test_round_trip(tmp_path):
    path = tmp_path / "ckpt" / "last.pt"
    state = {"model": {"w": torch.arange(6.0)}, "epoch": 3}
    checkpoint.save(path, state)
    loaded = checkpoint.load(path)
    assert loaded["epoch"] == 3 and torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary left


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corruption_is_detected_and_previous_used(tmp_path, damage):
    path = tmp_path / "last.pt"
    checkpoint.save(path, {"epoch": 1})
    checkpoint.save(path, {"epoch": 2})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else data[:-5] + b"xxxxx")
    with pytest.raises(checkpoint.CorruptCheckpoint):
        checkpoint.load(path)
    skipped = []
    state = checkpoint.load_latest(path, on_corrupt=lambda p, e: skipped.append(p))
    assert state["epoch"] == 1 and skipped == [path]


def test_no_intact_checkpoint_means_fresh_start(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"garbage")
    assert checkpoint.load_latest(path) is None


def test_disk_full_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    checkpoint.save(path, {"epoch": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(checkpoint.DiskFullError, match="No space left on device. The previous file is intact"):
        checkpoint.save(path, {"epoch": 2})
    monkeypatch.undo()
    assert checkpoint.load(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
