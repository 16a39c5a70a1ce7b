"""Decoded arrays are cached beside their sources and rebuilt when a source changes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from xpm_train.data import MNIST, write_idx_dataset
from xpm_train.data.cache import cache_path, cached_arrays
from xpm_train.data.mnist import read_idx


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "raw.bin"
    path.write_bytes(b"version 1")
    return path


def _decoder(calls, value=1):
    def decode():
        calls.append(1)
        return {"x": np.full((3, 2), value, dtype=np.uint8), "y": np.arange(3)}

    return decode


def test_decoded_once_then_read_from_the_cache(source):
    calls = []
    first = cached_arrays([source], "train", _decoder(calls))
    second = cached_arrays([source], "train", _decoder(calls))
    assert len(calls) == 1
    assert cache_path(source, "train").is_file()
    assert second.keys() == first.keys()
    for name in first:
        np.testing.assert_array_equal(second[name], first[name])
        assert second[name].dtype == first[name].dtype
    assert cached_arrays([source], "train", _decoder(calls), names=("y",)).keys() == {"y"}
    assert sorted(p.name for p in source.parent.iterdir()) == ["raw.bin", "raw.bin.train.xpm-cache.npz"]


def test_tags_are_separate_caches(source):
    calls = []
    cached_arrays([source], "train", _decoder(calls, 1))
    test = cached_arrays([source], "test", _decoder(calls, 2))
    assert len(calls) == 2 and test["x"][0, 0] == 2


def test_changed_source_invalidates_the_cache(source):
    calls = []
    cached_arrays([source], "train", _decoder(calls, 1))
    source.write_bytes(b"version 2, longer")
    assert cached_arrays([source], "train", _decoder(calls, 2))["x"][0, 0] == 2
    stat = source.stat()  # same size, only the modification time changes
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert cached_arrays([source], "train", _decoder(calls, 3))["x"][0, 0] == 3
    assert cached_arrays([source], "train", _decoder(calls, 4))["x"][0, 0] == 3
    assert len(calls) == 3


def test_corrupted_cache_is_rebuilt(source):
    calls = []
    cached_arrays([source], "train", _decoder(calls))
    cache_path(source, "train").write_bytes(b"not a zip")
    assert cached_arrays([source], "train", _decoder(calls))["x"].shape == (3, 2)
    assert len(calls) == 2
    assert cached_arrays([source], "train", _decoder(calls))["x"].shape == (3, 2)
    assert len(calls) == 2


def test_unwritable_folder_still_decodes(source, monkeypatch, caplog):
    import xpm_train.data.cache as cache

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cache, "atomic_write", refuse)
    calls = []
    assert cached_arrays([source], "train", _decoder(calls))["x"].shape == (3, 2)
    assert cached_arrays([source], "train", _decoder(calls))["x"].shape == (3, 2)
    assert len(calls) == 2 and not cache_path(source, "train").exists()
    assert "Could not write the cache" in caplog.text


def test_mnist_from_the_cache_matches_the_raw_files(tmp_path):
    write_idx_dataset(tmp_path, 120, 30)
    dataset = MNIST.C(split="train", folder=tmp_path).instance()
    decoded = dataset.arrays()
    cache = cache_path(tmp_path / "train-images-idx3-ubyte.gz", "train")
    assert cache.is_file()
    stamp = cache.stat().st_mtime_ns
    cached = dataset.arrays()
    assert cache.stat().st_mtime_ns == stamp, "the cache must be read, not rewritten"
    raw_images = read_idx(tmp_path / "train-images-idx3-ubyte.gz")
    raw_labels = read_idx(tmp_path / "train-labels-idx1-ubyte.gz")
    for arrays in (decoded, cached):
        np.testing.assert_array_equal(arrays.images[:, 0].numpy(), raw_images)
        np.testing.assert_array_equal(arrays.labels.numpy(), raw_labels)
    assert cached.mean == decoded.mean and cached.std == decoded.std
