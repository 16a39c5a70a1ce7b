"""Where the official raw files come from, with their published md5 checksums.

The md5 values are those published with the datasets (and listed by
torchvision's dataset definitions). The files are stored unchanged (still
compressed) in ``<data root>/<folder>``; the default data root is
datamaestro's data folder (``$DATAMAESTRO_DIR/data``, by default
``~/datamaestro/data``) under ``xpm-train/``.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

from .download import TIMEOUT, DownloadError, RemoteFile


@dataclass(frozen=True)
class DatasetSource:
    """The official files of one dataset and the folder they are kept in."""

    folder: str
    """Sub-folder of the data root holding the files"""

    files: tuple[RemoteFile, ...]
    """The raw files, as published"""

    def file(self, name: str) -> RemoteFile:
        """The file called ``name`` (KeyError naming the known files otherwise)."""
        for remote in self.files:
            if remote.name == name:
                return remote
        raise KeyError(f"{self.folder} has no file {name!r} (files: {[f.name for f in self.files]})")


MNIST_FILE_NAMES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
"""(images, labels) IDX files of each split, shared by MNIST and Fashion-MNIST"""


def _idx_files(mirrors: tuple[str, ...], md5s: dict[str, str]) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(name, tuple(m + name for m in mirrors), md5) for name, md5 in md5s.items())


MNIST_SOURCE = DatasetSource(
    folder="mnist",
    files=_idx_files(
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
)
"""MNIST (LeCun, Cortes, Burges), from the PyTorch S3 mirror then the original site"""

FASHION_MNIST_SOURCE = DatasetSource(
    folder="fashion-mnist",
    files=_idx_files(
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
)
"""Fashion-MNIST (Zalando Research), from its official S3 bucket"""

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


def default_data_root() -> Path:
    """``<datamaestro data folder>/xpm-train``, read from ``DATAMAESTRO_DIR`` at call time.

    Same rule as datamaestro's ``Context`` (``$DATAMAESTRO_DIR`` or
    ``~/datamaestro``, then ``data``), evaluated when called rather than at
    import so that tests and plans may set the variable late.
    """
    base = Path(os.environ.get("DATAMAESTRO_DIR", "~/datamaestro")).expanduser()
    return base / "data" / "xpm-train"


MD5SUMS = "MD5SUMS"
"""Checksum file of a mirror, in ``md5sum`` output format (``<md5>  <name>``)"""


def mirror_source(source: DatasetSource, mirror: str) -> DatasetSource:
    """``source`` fetched from ``mirror`` (a folder or a URL) instead of the official sites.

    The mirror holds the files under their official names. When it also has
    an ``MD5SUMS`` file (``md5sum *.gz > MD5SUMS``), its checksums replace the
    published ones, e.g. for a reduced copy used in smoke tests; otherwise
    the files must be the published ones.
    """
    base = mirror.rstrip("/")
    if "://" not in base:
        folder = Path(base).expanduser()
        if not folder.is_dir():
            raise DownloadError(f"mirror {mirror!r}: no such folder. Give a folder or a URL holding "
                                f"the files {[f.name for f in source.files]}")
        base = folder.resolve().as_uri()
    md5s = read_md5sums(f"{base}/{MD5SUMS}")
    files = tuple(
        replace(remote, urls=(f"{base}/{remote.name}",), md5=md5s.get(remote.name, remote.md5))
        for remote in source.files
    )
    return replace(source, files=files)


def read_md5sums(url: str) -> dict[str, str]:
    """``{name: md5}`` from an ``md5sum``-format file at ``url`` ({} when there is none)."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError):
        return {}
    sums = {}
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            md5, _, name = line.strip().partition(" ")
            name = name.strip().lstrip("*")
            if len(md5) != 32 or not name:
                raise DownloadError(f"{url}, line {number}: expected '<md5>  <file name>', got {line!r}")
            sums[name] = md5.lower()
    return sums
