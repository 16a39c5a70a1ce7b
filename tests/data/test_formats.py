"""IDX and CIFAR-10 readers/writers: round trips and clear errors on bad files."""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile

import numpy as np
import pytest

from xpm_train.data.cifar import CIFAR10_FOLDER, read_cifar10_archive, read_cifar_batch, write_cifar10_archive
from xpm_train.data.files import FormatError
from xpm_train.data.mnist import idx_bytes, parse_idx, read_idx, write_idx


@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("name", ["data.idx", "data.idx.gz"])
def test_idx_round_trip(tmp_path, dtype, name):
    array = (np.arange(2 * 3 * 5) % 100).astype(dtype).reshape(2, 3, 5)
    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name)
    assert back.dtype == np.dtype(dtype).newbyteorder("=") and back.shape == (2, 3, 5)
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable


def test_idx_header_is_the_mnist_one():
    labels = np.zeros(7, dtype=np.uint8)
    assert idx_bytes(labels)[:8] == bytes([0, 0, 0x08, 1, 0, 0, 0, 7])  # magic 2049, 7 items


def test_gzip_is_detected_from_content(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    (tmp_path / "no-suffix").write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(tmp_path / "no-suffix"), array)


def test_gzip_output_is_deterministic(tmp_path):
    array = np.arange(100, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_idx_bad_magic_and_truncation():
    with pytest.raises(FormatError, match="not an IDX file"):
        parse_idx(b"PK\x03\x04 definitely a zip")
    with pytest.raises(FormatError, match="truncated or corrupted"):
        parse_idx(idx_bytes(np.zeros((4, 4), dtype=np.uint8))[:-3])


def _cifar_split(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n)


def test_cifar_archive_round_trip(tmp_path):
    train, test = _cifar_split(23, 0), _cifar_split(4, 1)
    path = tmp_path / "cifar-10-python.tar.gz"
    write_cifar10_archive(path, train, test)
    with tarfile.open(path) as tar:
        names = sorted(tar.getnames())
    assert names == sorted(
        [f"{CIFAR10_FOLDER}/{n}" for n in ("batches.meta", "test_batch")]
        + [f"{CIFAR10_FOLDER}/data_batch_{i}" for i in range(1, 6)]
    )
    for split, (images, labels) in {"train": train, "test": test}.items():
        got_images, got_labels = read_cifar10_archive(path, split)
        np.testing.assert_array_equal(got_images, images)
        np.testing.assert_array_equal(got_labels, labels)
        assert got_images.dtype == np.uint8 and got_labels.dtype == np.int64


def test_cifar_batch_with_bytes_keys_and_python2_layout():
    images, labels = _cifar_split(3, 2)
    batch = {b"data": images.reshape(3, -1), b"labels": labels.tolist(), b"batch_label": b"x"}
    got_images, got_labels = read_cifar_batch(io.BytesIO(pickle.dumps(batch, protocol=2)))
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_cifar_reader_refuses_code_in_pickles():
    with pytest.raises(FormatError, match="refusing to unpickle"):
        read_cifar_batch(io.BytesIO(pickle.dumps({"data": _Evil(), "labels": []})))


def test_cifar_archive_missing_batch(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(f"{CIFAR10_FOLDER}/readme.html")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(FormatError, match="missing .*test_batch"):
        read_cifar10_archive(path, "test")
