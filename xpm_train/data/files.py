"""Checksums of the data module's files.

Every file the data module produces (downloads, caches, synthetic data) is
written atomically with :func:`xpm_train.atomic.atomic_write`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK_SIZE = 1 << 20
"""Bytes read at a time when hashing or copying files"""


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file's content (streamed, constant memory)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()
