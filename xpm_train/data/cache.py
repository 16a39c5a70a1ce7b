"""Decode raw files once; later loads read an uncompressed ``.npz`` beside them.

The cache of a decoded split lives next to its first source file, as
``<source>.<tag>.xpm-cache.npz`` (e.g.
``train-images-idx3-ubyte.gz.train.xpm-cache.npz``). It stores the decoded
arrays plus a key made of :data:`CACHE_VERSION`, the tag and the name, size
and modification time (ns) of every source file: replacing or touching a
source invalidates the cache, which is then rebuilt. Caches are written
atomically, so concurrent tasks decoding the same split are safe (the last
rename wins, both files are complete). When the folder is read-only the
arrays are decoded in memory each time (with a warning).

Loading MNIST's 60000 x 28 x 28 training images from the cache takes a few
tens of milliseconds.
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from ..atomic import atomic_write

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
"""Bump when decoding changes, so that every existing cache is rebuilt"""

_KEY = "__xpm_cache_key__"

Decoder = Callable[[], Mapping[str, np.ndarray]]


def cache_path(source: Path, tag: str) -> Path:
    """Where the decoded ``tag`` arrays of ``source`` are cached."""
    source = Path(source)
    return source.with_name(f"{source.name}.{tag}.xpm-cache.npz")


def cache_key(sources: Iterable[Path], tag: str) -> str:
    """Identity of the sources: a changed size or mtime gives another key."""
    entries = []
    for source in sources:
        stat = Path(source).stat()
        entries.append([Path(source).name, stat.st_size, stat.st_mtime_ns])
    return json.dumps({"version": CACHE_VERSION, "tag": tag, "sources": entries}, sort_keys=True)


def _read(path: Path, key: str, names: Iterable[str] | None) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the cache is missing, stale or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if bytes(npz[_KEY]).decode() != key:
                logger.info("Cache %s is stale (its sources changed): rebuilding it", path)
                return None
            wanted = [name for name in npz.files if name != _KEY] if names is None else list(names)
            return {name: npz[name] for name in wanted}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        logger.warning("Ignoring unreadable cache %s (%s): rebuilding it", path, exc)
        return None


def _write(path: Path, key: str, arrays: Mapping[str, np.ndarray]) -> None:
    if _KEY in arrays:
        raise ValueError(f"{_KEY} is reserved")
    try:
        with atomic_write(path) as out:
            np.savez(out, **arrays, **{_KEY: np.frombuffer(key.encode(), dtype=np.uint8)})
    except OSError as exc:
        logger.warning("Could not write the cache %s (%s): decoding again next time", path, exc)


def describe_sources(sources: list[Path], shown: int = 3) -> str:
    """``sources`` for a log line: all of them when few, else a count and the first ``shown``."""
    if len(sources) <= shown + 1:
        return ", ".join(str(s) for s in sources)
    return f"{len(sources)} files ({', '.join(str(s) for s in sources[:shown])}, ...)"


def cached_arrays(
    sources: list[Path], tag: str, decode: Decoder, names: Iterable[str] | None = None
) -> dict[str, np.ndarray]:
    """The arrays ``decode()`` returns for ``sources``, decoded at most once.

    ``tag`` distinguishes several caches derived from the same sources (e.g.
    the train and test splits of one archive). ``names`` restricts what is
    read from an existing cache (a ``.npz`` member is read only when asked).
    """
    path = cache_path(sources[0], tag)
    key = cache_key(sources, tag)
    arrays = _read(path, key, names)
    if arrays is not None:
        return arrays
    logger.info("Decoding %s (cached afterwards in %s)", describe_sources(sources), path)
    decoded = dict(decode())
    _write(path, key, decoded)
    return decoded if names is None else {name: decoded[name] for name in names}
