"""CIFAR-10: 32x32 colour images from the official python pickles, 10 classes.

Everything about this dataset is in this module: where its archive comes from
(:data:`CIFAR10_SOURCE`), its format (:func:`read_cifar10_archive`,
:func:`write_cifar10_archive`), the config (:class:`CIFAR10`), what a plan
calls (:func:`prepare_cifar10`) and the writer of a small real-format copy for
offline tests (:func:`write_cifar10_dataset`).

**CIFAR-10 python**: ``cifar-10-python.tar.gz`` holds the folder
``cifar-10-batches-py`` with the pickled batches ``data_batch_1`` ..
``data_batch_5`` (train), ``test_batch`` (test) and ``batches.meta``. Each
batch is a dict with ``data`` (``N x 3072`` uint8, the red, green then blue
32x32 planes) and ``labels`` (a list of ints). Only numpy and the standard
library read it (no torchvision); pickles are read with an unpickler that
accepts nothing but numpy arrays and builtin containers, so a tampered archive
cannot run code.
"""

from __future__ import annotations

import gzip
import importlib
import io
import pickle
import tarfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np

from ..atomic import atomic_write
from .download import RemoteFile
from .files import FormatError
from .raw import RawImageDataset, decoded_split
from .sources import DatasetSource, fetch_source, local_source
from .splits import Splits, splits_of

# ------------------------------------------------------------------ source

CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"

CIFAR10_SOURCE = DatasetSource(
    folder="cifar10",
    files=(
        RemoteFile(
            CIFAR10_ARCHIVE,
            ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
            "c58f30108f718f92721af3b95e74349a",
        ),
    ),
)
"""CIFAR-10, python version (Krizhevsky), from the University of Toronto"""

# ------------------------------------------------------------------ format

CIFAR10_FOLDER = "cifar-10-batches-py"
"""Folder of the batches inside ``cifar-10-python.tar.gz``"""

CIFAR10_BATCHES: dict[str, tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
"""Batch files of each split, in order"""

CIFAR10_LABEL_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

_PICKLE_ALLOWED = {
    ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler restricted to numpy arrays and builtin containers."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_ALLOWED:
            raise FormatError(f"refusing to unpickle {module}.{name}: not a CIFAR batch")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module[len("numpy.core.") :]
        return getattr(importlib.import_module(module), name)


def _field(batch: dict, key: str):
    """``batch[key]``, whether the pickle stored str or bytes keys."""
    for candidate in (key, key.encode()):
        if candidate in batch:
            return batch[candidate]
    raise FormatError(f"CIFAR batch has no '{key}' entry (keys: {sorted(map(str, batch))})")


def read_cifar_batch(stream: BinaryIO, source: str = "<stream>") -> tuple[np.ndarray, np.ndarray]:
    """Decode one pickled CIFAR-10 batch into ``N x 3 x 32 x 32`` uint8 images and int64 labels."""
    try:
        batch = _ArrayUnpickler(stream, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise FormatError(f"{source}: not a CIFAR-10 batch ({exc})") from exc
    if not isinstance(batch, dict):
        raise FormatError(f"{source}: a CIFAR-10 batch is a dict, got {type(batch).__name__}")
    data = np.asarray(_field(batch, "data"), dtype=np.uint8)
    labels = np.asarray(_field(batch, "labels"), dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise FormatError(f"{source}: data of shape {data.shape} for {labels.shape[0]} labels")
    return data.reshape(-1, 3, 32, 32).copy(), labels


def read_cifar10_archive(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read the batches of ``split`` ("train" or "test") from ``cifar-10-python.tar.gz``."""
    wanted = CIFAR10_BATCHES[split]
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                member_path = PurePosixPath(member.name)
                if member.isfile() and member_path.parent.name == CIFAR10_FOLDER and member_path.name in wanted:
                    stream = tar.extractfile(member)
                    found[member_path.name] = read_cifar_batch(stream, f"{path}:{member.name}")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise FormatError(f"{path}: unreadable tar archive ({exc}); delete it and prepare again") from exc
    missing = [name for name in wanted if name not in found]
    if missing:
        raise FormatError(f"{path}: missing {CIFAR10_FOLDER}/{', '.join(missing)} in the archive")
    images = np.concatenate([found[name][0] for name in wanted])
    labels = np.concatenate([found[name][1] for name in wanted])
    return images, labels


def cifar_batch_bytes(images: np.ndarray, labels: np.ndarray, batch_label: str) -> bytes:
    """Pickle a batch the way the official files are laid out."""
    images = np.asarray(images, dtype=np.uint8)
    if images.ndim != 4 or images.shape[1:] != (3, 32, 32):
        raise FormatError(f"CIFAR-10 images are N x 3 x 32 x 32, got {images.shape}")
    batch = {
        "batch_label": batch_label,
        "labels": [int(label) for label in labels],
        "data": images.reshape(len(images), -1),
        "filenames": [f"image_{i:05d}.png" for i in range(len(images))],
    }
    return pickle.dumps(batch, protocol=2)


def _add_tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def write_cifar10_archive(
    path: Path,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
) -> None:
    """Atomically write a ``cifar-10-python.tar.gz`` with the official layout.

    ``train`` and ``test`` are ``(images N x 3 x 32 x 32 uint8, labels)``;
    the train split is cut into the five ``data_batch_*`` files. The output
    is deterministic (zero timestamps).
    """
    batches = CIFAR10_BATCHES["train"]
    chunks = np.array_split(np.arange(len(train[0])), len(batches))
    meta = {"label_names": list(CIFAR10_LABEL_NAMES), "num_cases_per_batch": len(chunks[0]), "num_vis": 3072}
    with atomic_write(Path(path)) as out:
        with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
            for number, (name, chunk) in enumerate(zip(batches, chunks), start=1):
                data = cifar_batch_bytes(train[0][chunk], train[1][chunk], f"training batch {number} of 5")
                _add_tar_member(tar, f"{CIFAR10_FOLDER}/{name}", data)
            data = cifar_batch_bytes(test[0], test[1], "testing batch 1 of 1")
            _add_tar_member(tar, f"{CIFAR10_FOLDER}/test_batch", data)
            _add_tar_member(tar, f"{CIFAR10_FOLDER}/batches.meta", pickle.dumps(meta, protocol=2))

# ------------------------------------------------------------------ config


class CIFAR10(RawImageDataset):
    """CIFAR-10: 50000 train / 10000 test 3x32x32 colour images, 10 classes.

    Read straight from ``cifar-10-python.tar.gz`` (no extraction). Obtain it
    with :func:`xpm_train.data.prepare_cifar10`.
    """

    DATASET = "CIFAR10"
    PREPARE = "prepare_cifar10"
    SHAPE = (3, 32, 32)

    def source_files(self, split: str) -> list[Path]:
        return [Path(self.folder) / CIFAR10_ARCHIVE]

    def decode(self, split: str) -> dict[str, np.ndarray]:
        archive = self.source_files(split)[0]
        images, labels = read_cifar10_archive(archive, split)
        return decoded_split(images, labels, str(archive))

# ----------------------------------------------------------------- prepare


def prepare_cifar10(root: Path | None = None, *, source: DatasetSource = CIFAR10_SOURCE) -> Splits:
    """Fetch/check ``cifar-10-python.tar.gz`` and return its :class:`CIFAR10` splits
    (``root``, ``source``: as :func:`~xpm_train.data.mnist.prepare_mnist`)."""
    return splits_of(CIFAR10, folder=fetch_source(source, root))

# --------------------------------------------------------------- synthetic


def write_cifar10_dataset(
    folder: Path,
    n_train: int = 500,
    n_test: int = 100,
    *,
    seed: int = 0,
    name: str = "cifar10",
    base_url: str | None = None,
) -> DatasetSource:
    """Write a ``cifar-10-python.tar.gz`` (3x32x32, 10 classes, official layout,
    :func:`~xpm_train.data.synthetic.synthetic_arrays`) into ``folder``; returns
    a source for it (as :func:`~xpm_train.data.mnist.write_idx_dataset`)."""
    from .synthetic import synthetic_arrays

    folder = Path(folder)
    train = synthetic_arrays("train", n_train, (3, 32, 32), 10, seed)
    test = synthetic_arrays("test", n_test, (3, 32, 32), 10, seed)
    write_cifar10_archive(folder / CIFAR10_ARCHIVE, train, test)
    return local_source(folder, name, [CIFAR10_ARCHIVE], base_url)
