"""The raw files of the datasets: checksums, gzip, scikit-learn's bundled tables.

Every file the data module produces (downloads, caches, synthetic data) is
written atomically with :func:`xpm_train.atomic.atomic_write`. The readers and
writers of one dataset's format live in that dataset's module
(:mod:`~xpm_train.data.mnist`: IDX, :mod:`~xpm_train.data.cifar`: the CIFAR-10
pickles); what they share is here.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
from pathlib import Path

CHUNK_SIZE = 1 << 20
"""Bytes read at a time when hashing or copying files"""

GZIP_MAGIC = b"\x1f\x8b"


class FormatError(ValueError):
    """A raw data file does not have the expected format."""


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file's content (streamed, constant memory)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def read_maybe_gzip(path: Path) -> bytes:
    """The content of ``path``, gunzipped when it starts with the gzip magic."""
    raw = Path(path).read_bytes()
    if raw[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise FormatError(f"{path}: corrupted gzip data ({exc}); delete it and prepare again") from exc
    return raw


def bundled_sklearn_file(name: str) -> Path:
    """``sklearn/datasets/data/<name>``, located without importing scikit-learn
    (that import costs 1-3 s in every task process)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"{name} comes with scikit-learn, which is not installed: pip install scikit-learn"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: is the scikit-learn installation complete?")
    return path
