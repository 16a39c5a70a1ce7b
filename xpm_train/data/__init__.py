"""Datasets of xpm-train: typed experimaestro configs and their raw files.

A plan gets configs from explicit functions (no string registry)::

    from xpm_train.data import prepare_mnist, prepare_digits
    mnist = prepare_mnist()            # downloads/checks the official files
    Learn.C(data=mnist.train, ...)     # mnist.test for evaluation

Importing this package does not import torch (only ``arrays()`` does).
"""

from .base import Arrays, DataInfo, Dataset, ImageArrays, ImageDataset
from .download import ChecksumError, DownloadError, RemoteFile
from .files import FormatError
from .heldout import HeldOut
from .sources import DatasetSource, default_data_root, mirror_source
from .splits import Splits
from .synthetic import Synthetic

# One module per built-in dataset: its source, reader, configs, prepare_*
# function and synthetic writer (docs/extending.md, "A built-in dataset")
from .cifar import (
    CIFAR10,
    CIFAR10_SOURCE,
    prepare_cifar10,
    read_cifar10_archive,
    write_cifar10_archive,
    write_cifar10_dataset,
)
from .digits import Digits, prepare_digits
from .imagefolder import ImageFolder, ImageFolderError, prepare_image_folder
from .mnist import (
    FASHION_MNIST_SOURCE,
    MNIST,
    MNIST_SOURCE,
    FashionMNIST,
    prepare_fashion_mnist,
    prepare_mnist,
    read_idx,
    write_idx,
    write_idx_dataset,
)
from .tabular import Diabetes

__all__ = [
    "Arrays",
    "DataInfo",
    "Dataset",
    "Diabetes",
    "ImageFolder",
    "ImageFolderError",
    "prepare_image_folder",
    "CIFAR10",
    "CIFAR10_SOURCE",
    "ChecksumError",
    "DatasetSource",
    "Digits",
    "DownloadError",
    "FASHION_MNIST_SOURCE",
    "FashionMNIST",
    "FormatError",
    "HeldOut",
    "ImageArrays",
    "ImageDataset",
    "MNIST",
    "MNIST_SOURCE",
    "RemoteFile",
    "Splits",
    "Synthetic",
    "default_data_root",
    "mirror_source",
    "prepare_cifar10",
    "prepare_digits",
    "prepare_fashion_mnist",
    "prepare_mnist",
    "read_cifar10_archive",
    "read_idx",
    "write_cifar10_archive",
    "write_cifar10_dataset",
    "write_idx",
    "write_idx_dataset",
]
