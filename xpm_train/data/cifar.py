"""CIFAR-10: 32x32 colour images from the official python pickles, 10 classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .formats import read_cifar10_archive
from .raw import RawImageDataset, decoded_split
from .sources import CIFAR10_ARCHIVE


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
