"""MNIST and Fashion-MNIST: 28x28 grey images in the IDX format, 10 classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .formats import read_idx
from .raw import RawImageDataset, decoded_split
from .sources import MNIST_FILE_NAMES


def decode_idx_split(images_path: Path, labels_path: Path) -> dict[str, np.ndarray]:
    """Decode an (images, labels) pair of IDX files into ``N x 1 x H x W`` images, labels and stats."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"{images_path}: expected uint8 N x H x W images, got {images.dtype} {images.shape}")
    return decoded_split(images[:, None], labels.reshape(-1), str(images_path))


class IDXImageDataset(RawImageDataset):
    """A split stored as the MNIST-style pair of gzip'ed IDX files."""

    def source_files(self, split: str) -> list[Path]:
        return [Path(self.folder) / name for name in MNIST_FILE_NAMES[split]]

    def decode(self, split: str) -> dict[str, np.ndarray]:
        return decode_idx_split(*self.source_files(split))


class MNIST(IDXImageDataset):
    """MNIST handwritten digits: 60000 train / 10000 test 28x28 grey images, 10 classes.

    Obtain it with :func:`xpm_train.data.prepare_mnist` (downloads and checks
    the four official files).
    """

    DATASET = "MNIST"
    PREPARE = "prepare_mnist"
    SHAPE = (1, 28, 28)


class FashionMNIST(IDXImageDataset):
    """Fashion-MNIST (Zalando): 60000 train / 10000 test 28x28 grey images, 10 classes.

    Obtain it with :func:`xpm_train.data.prepare_fashion_mnist`.
    """

    DATASET = "FashionMNIST"
    PREPARE = "prepare_fashion_mnist"
    SHAPE = (1, 28, 28)
