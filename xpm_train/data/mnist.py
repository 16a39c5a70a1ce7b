"""MNIST and Fashion-MNIST: 28x28 grey images in the IDX format, 10 classes.

Everything about these two datasets is in this module: where their files come
from (:data:`MNIST_SOURCE`, :data:`FASHION_MNIST_SOURCE`), the IDX format
(:func:`read_idx`, :func:`write_idx`), the configs (:class:`MNIST`,
:class:`FashionMNIST`), what a plan calls (:func:`prepare_mnist`,
:func:`prepare_fashion_mnist`) and the writer of small real-format copies for
offline tests (:func:`write_idx_dataset`).

**IDX**: a big-endian header -- two zero bytes, a type code, the number of
dimensions, one ``uint32`` per dimension -- then the raw values. Files may be
gzip'ed (detected from the content, not the name).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from .files import FormatError, read_maybe_gzip
from .raw import RawImageDataset, decoded_split
from .sources import DatasetSource, fetch_source, local_source, remote_files
from .splits import Splits, splits_of

# ------------------------------------------------------------------ sources

MNIST_FILE_NAMES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
"""(images, labels) IDX files of each split, shared by MNIST and Fashion-MNIST"""

MNIST_SOURCE = DatasetSource(
    folder="mnist",
    files=remote_files(
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
    files=remote_files(
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

# --------------------------------------------------------------------- IDX

_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dtype.newbyteorder("="): code for code, dtype in _IDX_TYPES.items()}


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into a native-endian numpy array (writable copy)."""
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_TYPES:
        raise FormatError(f"{source}: not an IDX file (bad magic number {data[:4].hex()})")
    dtype, ndim = _IDX_TYPES[data[2]], data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise FormatError(f"{source}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:offset])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - offset != expected:
        raise FormatError(
            f"{source}: IDX header announces {dims} ({expected} bytes of data) "
            f"but the file holds {len(data) - offset}; the file is truncated or corrupted"
        )
    array = np.frombuffer(data, dtype=dtype, offset=offset).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (plain or gzip'ed)."""
    return parse_idx(read_maybe_gzip(path), str(path))


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array in the IDX format."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _IDX_CODES:
        raise FormatError(f"IDX cannot store dtype {array.dtype}")
    code = _IDX_CODES[native]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=_IDX_TYPES[code]).tobytes()


def write_idx(path: Path, array: np.ndarray) -> None:
    """Atomically write ``array`` as IDX, gzip'ed when ``path`` ends in ``.gz``.

    Gzip output has a zero timestamp, so the same array gives the same bytes.
    """
    data = idx_bytes(array)
    with atomic_write(Path(path)) as out:
        if str(path).endswith(".gz"):
            with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
                gz.write(data)
        else:
            out.write(data)


def decode_idx_split(images_path: Path, labels_path: Path) -> dict[str, np.ndarray]:
    """Decode an (images, labels) pair of IDX files into ``N x 1 x H x W`` images, labels and stats."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"{images_path}: expected uint8 N x H x W images, got {images.dtype} {images.shape}")
    return decoded_split(images[:, None], labels.reshape(-1), str(images_path))

# ------------------------------------------------------------------ configs


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

# ---------------------------------------------------------------- prepare


def prepare_mnist(root: Path | None = None, *, source: DatasetSource = MNIST_SOURCE) -> Splits:
    """Fetch/check the MNIST files and return its :class:`MNIST` splits.

    ``root`` defaults to datamaestro's data folder (see
    :func:`xpm_train.data.sources.default_data_root`). ``source`` replaces the
    official URLs/checksums, e.g. by a local mirror or synthetic files in tests.
    """
    return splits_of(MNIST, folder=fetch_source(source, root))


def prepare_fashion_mnist(root: Path | None = None, *, source: DatasetSource = FASHION_MNIST_SOURCE) -> Splits:
    """Fetch/check the Fashion-MNIST files and return its :class:`FashionMNIST` splits."""
    return splits_of(FashionMNIST, folder=fetch_source(source, root))

# -------------------------------------------------------------- synthetic


def write_idx_dataset(
    folder: Path,
    n_train: int = 600,
    n_test: int = 100,
    *,
    seed: int = 0,
    name: str = "mnist",
    base_url: str | None = None,
) -> DatasetSource:
    """Write the four MNIST-layout ``.gz`` IDX files (28x28 grey, 10 classes,
    :func:`~xpm_train.data.synthetic.synthetic_arrays`) into ``folder``, so the
    whole prepare/download/decode path can be exercised offline::

        source = write_idx_dataset(tmp / "mirror", n_train=600, n_test=100)
        mnist = prepare_mnist(root=tmp / "data", source=source)

    Returns a source for them: ``file://`` URLs, or ``base_url/<file>`` when
    given (e.g. a local HTTP server serving ``folder``), and their md5s.
    """
    from .synthetic import synthetic_arrays

    folder = Path(folder)
    written = []
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = synthetic_arrays(split, n, (1, 28, 28), 10, seed)
        images_name, labels_name = MNIST_FILE_NAMES[split]
        write_idx(folder / images_name, images[:, 0])
        write_idx(folder / labels_name, labels.astype(np.uint8))
        written += [images_name, labels_name]
    return local_source(folder, name, written, base_url)
