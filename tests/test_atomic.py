"""Atomic writes: the old file or the new one, never a part; nothing left behind."""

import errno
import json
import os

import pytest

from xpm_train import atomic


def test_json_text_and_bytes_replace_the_file_whole(tmp_path):
    path = tmp_path / "sub" / "final.json"
    atomic.atomic_write_json(path, {"score": 1})
    atomic.atomic_write_json(path, {"score": 2})
    assert json.loads(path.read_text()) == {"score": 2}
    atomic.atomic_write_text(tmp_path / "a.csv", "x,y\n")
    atomic.atomic_write_bytes(tmp_path / "b.bin", b"\0\1")
    assert (tmp_path / "a.csv").read_text() == "x,y\n" and (tmp_path / "b.bin").read_bytes() == b"\0\1"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.csv", "b.bin", "final.json"]
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # not mkstemp's 0600


def test_a_failing_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    atomic.atomic_write_json(path, {"old": True})
    with pytest.raises(RuntimeError, match="killed"):
        with atomic.atomic_write(path) as out:
            out.write(b'{"new": ')
            raise RuntimeError("killed mid-write")
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_full_disk_says_so_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "trials.json"
    atomic.atomic_write_json(path, [1])

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(atomic.DiskFullError, match=f"could not write {path}: No space left on device"):
        atomic.atomic_write_json(path, [1, 2])
    monkeypatch.undo()
    assert json.loads(path.read_text()) == [1] and [p.name for p in tmp_path.iterdir()] == ["trials.json"]


def test_previous_keeps_the_replaced_file(tmp_path):
    path, previous = tmp_path / "last.pt", tmp_path / "last.pt.prev"
    atomic.atomic_write_bytes(path, b"1", previous=previous)
    assert not previous.exists()
    atomic.atomic_write_bytes(path, b"2", previous=previous)
    assert path.read_bytes() == b"2" and previous.read_bytes() == b"1"


def test_stale_temporaries_are_what_a_killed_write_leaves(tmp_path):
    path = tmp_path / "last.pt"
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_write(path) as out:
            out.write(b"x")
            stale = [p.name for p in tmp_path.iterdir()]
            raise KeyboardInterrupt
    assert len(stale) == 1 and stale[0].startswith(".last.pt.tmp-")
    (tmp_path / stale[0]).write_bytes(b"x")  # as a SIGKILL would leave it
    assert [p.name for p in atomic.remove_stale_temporaries(tmp_path)] == stale
    assert list(tmp_path.iterdir()) == []


def test_atomic_folder_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "export"
    with pytest.raises(ValueError):
        with atomic.atomic_folder(target) as staging:
            (staging / "model.pt").write_bytes(b"w")
            raise ValueError("no network")
    assert list(tmp_path.iterdir()) == []
    with atomic.atomic_folder(target) as staging:
        (staging / "model.pt").write_bytes(b"w")
    assert [p.name for p in tmp_path.iterdir()] == ["export"] and (target / "model.pt").read_bytes() == b"w"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_file_written_in_place_is_renamed_whole(tmp_path):
    (tmp_path / "inputs.npy").write_bytes(b"old")
    (tmp_path / "inputs.npy.partial").write_bytes(b"records")
    atomic.atomic_rename(tmp_path / "inputs.npy.partial", tmp_path / "inputs.npy")
    assert (tmp_path / "inputs.npy").read_bytes() == b"records"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs.npy"]
