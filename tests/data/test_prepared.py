"""The prepared format: content-addressed, decoded once, resumable, parallel,
and never trusted half-written (faults injected)."""

import json

import numpy as np
import pytest
import torch

from xpm_train.data import ImageFolderError, Synthetic, prepare_image_folder
from xpm_train.data.imagefolder import FolderRecords
from xpm_train.data.preparation import prepare
from xpm_train.data.prepared import PreparedDataError, open_prepared, verify

from test_imagefolder import write_folder


def folder_source(tmp_path, per_class=40, split="train"):
    splits = prepare_image_folder(write_folder(tmp_path / "pets", per_class=per_class, size=8))
    return getattr(splits, split).instance().records()


def test_prepared_once_and_shared_by_key(tmp_path):
    """Caching rule: the key is the source's identity + options; a second
    preparation (here of the other split of the same folder) decodes nothing."""
    train = folder_source(tmp_path)
    prepared, report = prepare(train, root=tmp_path / "prepared", workers=2, chunk_records=16)
    assert report["decoded"] == list(range(5)) and not report["reused"]  # 80 images, 5 chunks
    assert prepared.folder.name == report["key"] and (prepared.folder / "header.json").exists()
    assert sorted(p.name for p in prepared.folder.iterdir()) == [".lock", "header.json", "inputs.npy", "targets.npy"]
    header = json.loads((prepared.folder / "header.json").read_text())
    assert header["count"] == 80 and header["shape"] == [3, 8, 8] and header["classes"] == ["cat", "dog"]
    assert header["source"]["fingerprint"] == train.fingerprint

    test = prepare_image_folder(tmp_path / "pets").test.instance().records()
    again, report = prepare(test, root=tmp_path / "prepared", chunk_records=16)
    assert report["reused"] and report["decoded"] == [] and again.folder == prepared.folder
    _, other = prepare(train, root=tmp_path / "prepared", options={"resize": "other"})
    assert other["key"] != report["key"] and other["decoded"]  # other options: another folder


def test_records_are_the_in_memory_decode(tmp_path):
    """Every record is the image ImageFolder.arrays() decodes, split and statistics alike."""
    config = prepare_image_folder(write_folder(tmp_path / "pets", per_class=30, size=8)).train.instance()
    source = config.records()
    prepared, _ = prepare(source, root=tmp_path / "prepared", workers=2, chunk_records=7)
    indices, mean, std = source.view(prepared)
    arrays = config.arrays()
    assert torch.equal(torch.from_numpy(np.array(prepared.inputs()[indices])), arrays.inputs)
    assert torch.equal(torch.from_numpy(prepared.targets()[indices]), arrays.targets)
    assert (mean, std) == (arrays.mean, arrays.std)  # exactly: the same histogram
    verify(prepared)


def test_killed_preparation_resumes_skipping_committed_chunks(tmp_path, monkeypatch):
    source = Synthetic.C(split="train", num_samples=300).instance().records()
    decode = type(source).decode
    calls = []

    def dies_at_third(self, start, stop):
        calls.append(start)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a kill would: in the middle of the preparation
        return decode(self, start, stop)

    monkeypatch.setattr(type(source), "decode", dies_at_third)
    with pytest.raises(KeyboardInterrupt):
        prepare(source, root=tmp_path, chunk_records=64)
    (folder,) = tmp_path.iterdir()
    assert not (folder / "header.json").exists()  # never trusted
    with pytest.raises(PreparedDataError, match="header.json: no such file"):
        open_prepared(folder)

    # A torn chunk: committed, but its bytes differ (the disk lost the write): decoded again
    partial = np.load(folder / "inputs.npy.partial", mmap_mode="r+")
    partial[70] = 255 - partial[70]
    partial.flush()
    monkeypatch.setattr(type(source), "decode", decode)
    prepared, report = prepare(source, root=tmp_path, chunk_records=64)
    assert report["skipped"] == [0] and report["decoded"] == [1, 2, 3, 4]
    expected = source.arrays
    assert np.array_equal(prepared.inputs(), expected.inputs.numpy())
    assert np.array_equal(prepared.targets(), expected.targets.numpy())
    assert not (folder / "chunks").exists() and not list(folder.glob("*.partial"))


def test_truncated_prepared_file_is_refused_naming_it(tmp_path):
    source = Synthetic.C(split="train", num_samples=100).instance().records()
    prepared, _ = prepare(source, root=tmp_path)
    path = prepared.folder / "inputs.npy"
    with open(path, "r+b") as stream:
        stream.truncate(path.stat().st_size - 10)
    with pytest.raises(PreparedDataError, match=rf"{path}: \d+ bytes instead of \d+.*delete .* prepare it again"):
        prepare(source, root=tmp_path)


def test_corrupt_image_is_named_and_nothing_is_committed(tmp_path):
    source = folder_source(tmp_path, per_class=10)
    bad = source.samples[13]
    with open(bad, "wb") as stream:
        stream.write(b"not a png")
    with pytest.raises(ImageFolderError, match=rf"cannot decode {bad} .*remove or replace that file"):
        prepare(source, root=tmp_path / "prepared", workers=2, chunk_records=4)
    assert not list((tmp_path / "prepared").glob("*/header.json"))


def test_folder_changed_during_preparation_is_named(tmp_path, monkeypatch):
    source = folder_source(tmp_path, per_class=10)
    decode = FolderRecords.decode
    victim = source.samples[2]  # in the first chunk, changed after it was decoded

    def then_change(self, start, stop):
        chunk = decode(self, start, stop)
        if start == 8:
            with open(victim, "ab") as stream:
                stream.write(b"\0")
        return chunk

    monkeypatch.setattr(FolderRecords, "decode", then_change)
    with pytest.raises(ImageFolderError, match=rf"1 file\(s\) changed while the folder was being prepared \({victim}\)"):
        prepare(source, root=tmp_path / "prepared", workers=1, chunk_records=8)
    assert not list((tmp_path / "prepared").glob("*/header.json"))

    # Files changed since the plan: the fingerprint disagrees, nothing is committed
    monkeypatch.setattr(FolderRecords, "decode", decode)
    with pytest.raises(ImageFolderError, match="its files changed since the plan was made"):
        prepare(source, root=tmp_path / "prepared", workers=1, chunk_records=8)
    assert not list((tmp_path / "prepared").glob("*/header.json"))


def test_full_disk_fails_up_front_naming_the_file(tmp_path, monkeypatch):
    import errno
    import os

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("xpm_train.data.preparation.os.posix_fallocate", no_space)
    source = Synthetic.C(split="train", num_samples=100).instance().records()
    with pytest.raises(PreparedDataError, match=r"inputs.npy.partial: cannot reserve \d+ bytes \(No space left"):
        prepare(source, root=tmp_path)
    (folder,) = tmp_path.iterdir()
    assert not (folder / "header.json").exists() and not (folder / "inputs.npy.partial").exists()
