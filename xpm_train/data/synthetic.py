"""Synthetic, learnable image data: in memory (:class:`Synthetic`) or as real-format files.

Every class has a fixed random pattern; an image is ``SIGNAL`` times its
class pattern plus ``1 - SIGNAL`` times uniform noise, so a tiny (even
linear) model learns it in a few steps while the task is not trivially
constant. Everything is a pure function of the seed.

:func:`write_idx_dataset` and :func:`write_cifar10_dataset` write small
files in the *real* formats and layouts (gzip'ed IDX pairs,
``cifar-10-python.tar.gz``) and return a :class:`DatasetSource` pointing to
them, with their true md5s, so the whole prepare/download/decode path can be
exercised offline::

    source = write_idx_dataset(tmp / "mirror", n_train=600, n_test=100)
    mnist = prepare_mnist(root=tmp / "data", source=source)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from experimaestro import Param, field

from .arrays import channel_stats, check_split, to_image_arrays
from .base import ImageDataset
from .download import RemoteFile
from ..atomic import atomic_write_text
from .files import file_digest
from .formats import write_cifar10_archive, write_idx
from .sources import CIFAR10_ARCHIVE, MD5SUMS, MNIST_FILE_NAMES, DatasetSource

if TYPE_CHECKING:
    from .base import ImageArrays

SIGNAL = 0.6
"""Weight of the class pattern in each image (the rest is noise)"""

_SPLIT_STREAM = {"train": 1, "test": 2}


def synthetic_arrays(
    split: str, n: int, shape: tuple[int, int, int], num_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images of ``shape`` (C, H, W) and balanced int64 labels.

    The class patterns depend on ``seed`` only; the samples on ``seed`` and
    ``split``, so train and test share patterns but not samples.
    """
    check_split("synthetic_arrays", split)
    patterns = np.random.default_rng([seed, 0]).random((num_classes, *shape))
    rng = np.random.default_rng([seed, _SPLIT_STREAM[split]])
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    mixed = SIGNAL * patterns[labels] + (1 - SIGNAL) * rng.random((n, *shape))
    return np.rint(mixed * 255).astype(np.uint8), labels


class Synthetic(ImageDataset):
    """Seeded synthetic images with class-dependent patterns (no files; for fast tests)."""

    split: Param[str]
    """Which split: "train" or "test" (same class patterns, different samples)"""

    num_samples: Param[int] = field(default=256)
    """Number of images in this split"""

    channels: Param[int] = field(default=1)
    """Channels of an image"""

    height: Param[int] = field(default=8)
    """Height of an image"""

    width: Param[int] = field(default=8)
    """Width of an image"""

    num_classes: Param[int] = field(default=4)
    """Number of classes"""

    seed: Param[int] = field(default=0)
    """Seed of the class patterns and samples"""

    def __post_init__(self):
        check_split("Synthetic", self.split)

    def schema(self):
        from .base import empty_arrays

        return empty_arrays((self.channels, self.height, self.width), self.num_classes)

    def arrays(self) -> "ImageArrays":
        shape = (self.channels, self.height, self.width)
        images, labels = synthetic_arrays(self.split, self.num_samples, shape, self.num_classes, self.seed)
        train = images if self.split == "train" else synthetic_arrays(
            "train", self.num_samples, shape, self.num_classes, self.seed
        )[0]
        mean, std = channel_stats(train)
        return to_image_arrays(images, labels, self.num_classes, mean, std)


def _source(folder: Path, name: str, files: list[str], base_url: str | None) -> DatasetSource:
    base = base_url.rstrip("/") if base_url else folder.resolve().as_uri()
    files_md5 = {file: file_digest(folder / file) for file in files}
    atomic_write_text(folder / MD5SUMS, "".join(f"{md5}  {file}\n" for file, md5 in files_md5.items()))
    return DatasetSource(
        folder=name,
        files=tuple(RemoteFile(file, (f"{base}/{file}",), md5) for file, md5 in files_md5.items()),
    )


def write_idx_dataset(
    folder: Path,
    n_train: int = 600,
    n_test: int = 100,
    *,
    seed: int = 0,
    name: str = "mnist",
    base_url: str | None = None,
) -> DatasetSource:
    """Write the four MNIST-layout ``.gz`` IDX files (28x28 grey, 10 classes) into ``folder``.

    Returns a source for them: ``file://`` URLs, or ``base_url/<file>`` when
    given (e.g. a local HTTP server serving ``folder``), and their md5s.
    """
    folder = Path(folder)
    written = []
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = synthetic_arrays(split, n, (1, 28, 28), 10, seed)
        images_name, labels_name = MNIST_FILE_NAMES[split]
        write_idx(folder / images_name, images[:, 0])
        write_idx(folder / labels_name, labels.astype(np.uint8))
        written += [images_name, labels_name]
    return _source(folder, name, written, base_url)


def write_cifar10_dataset(
    folder: Path,
    n_train: int = 500,
    n_test: int = 100,
    *,
    seed: int = 0,
    name: str = "cifar10",
    base_url: str | None = None,
) -> DatasetSource:
    """Write a ``cifar-10-python.tar.gz`` (3x32x32, 10 classes, official layout) into ``folder``."""
    folder = Path(folder)
    train = synthetic_arrays("train", n_train, (3, 32, 32), 10, seed)
    test = synthetic_arrays("test", n_test, (3, 32, 32), 10, seed)
    write_cifar10_archive(folder / CIFAR10_ARCHIVE, train, test)
    return _source(folder, name, [CIFAR10_ARCHIVE], base_url)
