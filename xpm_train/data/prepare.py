"""Explicit entry points a plan calls to get dataset configs (files fetched and checked).

Each function makes sure the official raw files are in
``<root>/<dataset folder>`` with their published checksums (downloading only
what is missing or corrupted; nothing is fetched when everything is there)
and returns the train and test configs::

    mnist = prepare_mnist()
    Learn.C(data=mnist.train, ...)

``root`` defaults to datamaestro's data folder (see
:func:`xpm_train.data.sources.default_data_root`). ``source`` replaces the
official URLs/checksums, e.g. by a local mirror or synthetic files in tests.

datamaestro's own dataset definitions are not used for the download:
datamaestro-image's MNIST carries no checksum and stores decompressed copies,
and datamaestro 1.16 verifies a transformed download only after writing it
to its final place. The files still live in datamaestro's data folder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .download import ensure_files
from .sources import CIFAR10_SOURCE, FASHION_MNIST_SOURCE, MNIST_SOURCE, DatasetSource, default_data_root

if TYPE_CHECKING:
    from .base import ImageDataset
    from .raw import RawImageDataset

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Splits:
    """The train and test configs of one dataset."""

    train: "ImageDataset"
    """Config of the official train split"""

    test: "ImageDataset"
    """Config of the official test split"""


def fetch_source(source: DatasetSource, root: Path | None = None) -> Path:
    """Ensure every file of ``source`` is in ``<root>/<source.folder>``; returns that folder."""
    folder = (Path(root) if root is not None else default_data_root()) / source.folder
    downloaded = ensure_files(source.files, folder)
    logger.info("%s ready in %s (downloaded: %s)", source.folder, folder, ", ".join(downloaded) or "nothing")
    return folder


def _splits(config_type: type["RawImageDataset"], folder: Path) -> Splits:
    return Splits(
        train=config_type.C(split="train", folder=folder),
        test=config_type.C(split="test", folder=folder),
    )


def prepare_mnist(root: Path | None = None, *, source: DatasetSource = MNIST_SOURCE) -> Splits:
    """Fetch/check the MNIST files and return its :class:`~xpm_train.data.mnist.MNIST` splits."""
    from .mnist import MNIST

    return _splits(MNIST, fetch_source(source, root))


def prepare_fashion_mnist(root: Path | None = None, *, source: DatasetSource = FASHION_MNIST_SOURCE) -> Splits:
    """Fetch/check the Fashion-MNIST files and return its :class:`~xpm_train.data.mnist.FashionMNIST` splits."""
    from .mnist import FashionMNIST

    return _splits(FashionMNIST, fetch_source(source, root))


def prepare_cifar10(root: Path | None = None, *, source: DatasetSource = CIFAR10_SOURCE) -> Splits:
    """Fetch/check ``cifar-10-python.tar.gz`` and return its :class:`~xpm_train.data.cifar.CIFAR10` splits."""
    from .cifar import CIFAR10

    return _splits(CIFAR10, fetch_source(source, root))


def prepare_digits() -> Splits:
    """The :class:`~xpm_train.data.digits.Digits` splits (bundled with scikit-learn: nothing to fetch)."""
    from .digits import Digits

    return Splits(train=Digits.C(split="train"), test=Digits.C(split="test"))
