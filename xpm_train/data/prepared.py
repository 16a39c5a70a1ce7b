"""The prepared on-disk format: a split decoded once into fixed-size records.

Streaming (:mod:`xpm_train.data.stream`) reads batches from files that hold
the decoded samples as fixed-size records, so that sample ``i`` is one
``pread`` at ``i * record_bytes``. A *prepared folder* holds::

    inputs.npy    N x ... uint8 (or float32) records, numpy's .npy format
    targets.npy   N int64 labels (or N x ... float32 values)
    header.json   count, shapes, dtypes, classes, statistics, the source's
                  identity and the options, the size of both files and the
                  SHA-256 of every chunk: written LAST, it is the commit point

Caching rule (content addressing): a prepared folder lives at
``<root>/<key>`` where ``key`` is the SHA-256 of :data:`FORMAT_VERSION`, the
source's identity (for an :class:`~xpm_train.data.ImageFolder`, the
fingerprint of its files' bytes with its ``mode`` and ``size``; for any other
dataset, its experimaestro ID) and the preparation options. ``root`` is
``$XPM_TRAIN_PREPARED``, else ``<datamaestro data folder>/xpm-train/prepared``
(:func:`prepared_root`). Every job of every experiment that streams the same
source with the same options reads the same folder; the train and test
splits of one image folder share it (a split is a list of indices into it).
A folder without ``header.json`` is never read: it is a preparation under
way (or killed), which the next preparer resumes.

Preparation (:func:`prepare`) decodes the source in chunks, in parallel
(a process pool when the source says it can be decoded that way), into
``inputs.npy.partial``/``targets.npy.partial``; after each chunk is written
and fsync'ed, ``chunks/<i>.json`` (its SHA-256, written atomically) commits
it. A restarted preparation verifies and skips the committed chunks. Once
all are there, the partial files are renamed (:func:`xpm_train.atomic.atomic_rename`) and ``header.json`` is written
atomically (:func:`xpm_train.atomic.atomic_write_bytes`). Preparers of
the same key take turns on a lock file; the second finds the header and
decodes nothing. Opening checks the header and the files' sizes, so a
truncated file is refused with its name instead of being read.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import UserError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Bump when the format or the decoding changes: every key changes with it"""

CHUNK_RECORDS = 1024
"""Records decoded (and committed) at a time"""

HEADER = "header.json"
"""A prepared folder's commit point (a prepared folder is no job folder)"""
PLAN = "plan.json"
"""The layout of a preparation under way: a restart with another layout starts afresh"""
CHUNKS = "chunks"
"""The commits of the chunks decoded so far (``chunks/<i>.json``), removed once prepared"""


class PreparedDataError(UserError, ValueError):
    """A source that cannot be prepared, or a prepared folder that cannot be
    read (the message names the file and says how to fix it)."""


def prepared_root() -> Path:
    """Where prepared folders live: ``$XPM_TRAIN_PREPARED``, else
    ``<datamaestro data folder>/xpm-train/prepared`` (read at call time)."""
    from .sources import default_data_root

    configured = os.environ.get("XPM_TRAIN_PREPARED")
    return Path(configured).expanduser() if configured else default_data_root() / "prepared"


@dataclass
class Chunk:
    """What a source decodes for records ``[start, stop)``."""

    inputs: np.ndarray
    """``stop - start`` records, of the source's ``shape`` and ``dtype``"""

    targets: np.ndarray
    """Their targets"""

    check: dict[str, Any] = field(default_factory=dict)
    """What the source wants to verify once every chunk is decoded (e.g. the
    digests and stats of the files read), kept in the chunk's commit"""


class Source:
    """What preparation decodes (interface: :meth:`Dataset.records` returns one).

    A source describes its records without decoding them (``count``,
    ``shape``...), decodes any range of them (:meth:`decode`, called in a
    worker process forked from the preparer when ``parallel``), and
    says, once prepared, which records make the split and its statistics
    (:meth:`view`)."""

    count: int
    shape: tuple[int, ...]
    dtype: str  # "uint8" or "float32"
    target_shape: tuple[int, ...]
    target_dtype: str  # "int64" or "float32"
    num_classes: Optional[int]
    classes: Optional[tuple[str, ...]]
    parallel: bool = False

    def identity(self) -> dict[str, Any]:
        """What the records are a pure function of (part of the key)."""
        raise NotImplementedError

    def where(self) -> str:
        """The source, for messages."""
        raise NotImplementedError

    def decode(self, start: int, stop: int) -> Chunk:
        raise NotImplementedError

    def fresh(self, check: dict[str, Any]) -> bool:
        """Whether a chunk committed by an earlier (killed) preparation still
        holds what the source would decode (its files did not change)."""
        return True

    def verify(self, checks: list[dict[str, Any]]) -> dict[str, Any]:
        """Called with every chunk's ``check`` once all are decoded: raise when
        the source changed meanwhile; returns what goes into the header."""
        return {}

    def view(self, prepared: "Prepared") -> tuple[np.ndarray, tuple[float, ...], tuple[float, ...]]:
        """``(indices, mean, std)``: the records of the split and its statistics."""
        raise NotImplementedError

    def nbytes(self) -> int:
        """Size of the decoded split (the streaming decision compares it with the budget)."""
        return self.count * int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


def key_of(source: Source, options: dict[str, Any]) -> str:
    """The content address of ``source`` prepared with ``options``."""
    text = json.dumps({"version": FORMAT_VERSION, "source": source.identity(), "options": options}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Prepared:
    """An opened, complete prepared folder."""

    folder: Path
    header: dict[str, Any]

    @property
    def count(self) -> int:
        return int(self.header["count"])

    @property
    def record_bytes(self) -> int:
        return int(np.prod(self.header["shape"], dtype=np.int64)) * np.dtype(self.header["dtype"]).itemsize

    @property
    def inputs_path(self) -> Path:
        return self.folder / "inputs.npy"

    def inputs(self) -> np.ndarray:
        """The records as a read-only memory map (nothing is read until used)."""
        return np.load(self.inputs_path, mmap_mode="r")

    def targets(self) -> np.ndarray:
        """All targets, in memory (small: one label per record)."""
        return np.load(self.folder / "targets.npy")

    def inputs_offset(self) -> int:
        """Byte offset of record 0 in ``inputs.npy`` (after the .npy header)."""
        return int(self.header["files"]["inputs.npy"]) - self.count * self.record_bytes


def open_prepared(folder: Path) -> Prepared:
    """The prepared folder ``folder``; :class:`PreparedDataError` naming the
    file when it is incomplete or truncated."""
    folder = Path(folder)
    header_path = folder / HEADER
    try:
        header = json.loads(header_path.read_text())
    except FileNotFoundError:
        raise PreparedDataError(f"{header_path}: no such file: {folder} is not a finished preparation "
                                "(prepare it again: xpm_train.data.prepared.prepare)") from None
    except (OSError, ValueError) as error:
        raise PreparedDataError(f"{header_path}: unreadable ({error}): delete {folder} and prepare it again") from None
    for name, size in header["files"].items():
        path = folder / name
        found = path.stat().st_size if path.exists() else None
        if found != size:
            raise PreparedDataError(
                f"{path}: {'missing' if found is None else f'{found} bytes'} instead of {size} (a truncated "
                f"copy or a crash of the disk): delete {folder} and prepare it again")
    return Prepared(folder, header)


def prepare(source: Source, *, root: Optional[Path] = None, workers: int = 0,
            chunk_records: int = CHUNK_RECORDS, options: Optional[dict[str, Any]] = None) -> tuple[Prepared, dict]:
    """The prepared folder of ``source``, decoding what is not there yet.

    ``workers``: processes decoding chunks (0: ``os.cpu_count()``, capped by
    the number of chunks; sources that are not ``parallel`` decode in this
    process). Returns the folder and a report ``{"key", "decoded": [chunk
    numbers decoded by this call], "skipped": [committed before], "reused":
    whether it was complete already}``."""
    options = dict(options or {})
    key = key_of(source, options)
    folder = Path(root if root is not None else prepared_root()) / key
    report = {"key": key, "folder": str(folder), "decoded": [], "skipped": [], "reused": False}
    if (folder / HEADER).exists():
        report["reused"] = True
        return open_prepared(folder), report
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another preparer of this key: wait for it, then reuse its work
        if (folder / HEADER).exists():
            report["reused"] = True
            return open_prepared(folder), report
        _prepare_locked(source, folder, key, options, workers, chunk_records, report, lock.fileno())
    return open_prepared(folder), report


def _prepare_locked(source: Source, folder: Path, key: str, options: dict, workers: int, chunk_records: int,
                    report: dict, lock: int) -> None:
    from ..atomic import atomic_rename, atomic_write_bytes

    n, chunks_dir = source.count, folder / CHUNKS
    plan = {"key": key, "count": n, "chunk_records": chunk_records, "shape": list(source.shape),
            "dtype": source.dtype, "target_shape": list(source.target_shape), "target_dtype": source.target_dtype}
    plan_path = folder / PLAN
    if not plan_path.exists() or json.loads(plan_path.read_text()) != plan:
        # Nothing (or another layout) under way: start afresh
        shutil.rmtree(chunks_dir, ignore_errors=True)
        for name in ("inputs.npy.partial", "targets.npy.partial"):
            (folder / name).unlink(missing_ok=True)
        atomic_write_bytes(plan_path, json.dumps(plan).encode())
    inputs = _open_partial(folder / "inputs.npy.partial", (n, *source.shape), source.dtype)
    targets = _open_partial(folder / "targets.npy.partial", (n, *source.target_shape), source.target_dtype)

    ranges = [(start, min(start + chunk_records, n)) for start in range(0, n, chunk_records)]
    commits: dict[int, dict] = {}
    for number, (start, stop) in enumerate(ranges):
        commit = _committed(chunk_commit(chunks_dir, number), inputs[start:stop], targets[start:stop])
        if commit is not None and source.fresh(commit["check"]):
            commits[number] = commit
            report["skipped"].append(number)
    todo = [number for number in range(len(ranges)) if number not in commits]
    if todo:
        logger.info("Preparing %s: %d of %d chunks to decode into %s", source.where(), len(todo), len(ranges), folder)

    def commit(number: int, chunk: Chunk) -> None:
        start, stop = ranges[number]
        if chunk.inputs.shape != (stop - start, *source.shape) or chunk.targets.shape[0] != stop - start:
            raise PreparedDataError(f"{source.where()}: records {start}-{stop} decoded to shape "
                                    f"{chunk.inputs.shape} instead of {(stop - start, *source.shape)}")
        inputs[start:stop] = chunk.inputs
        targets[start:stop] = chunk.targets
        inputs.flush()
        targets.flush()  # msync: the records are on disk before the commit says so
        commits[number] = {"sha256": _digest(inputs[start:stop], targets[start:stop]), "check": chunk.check}
        atomic_write_bytes(chunk_commit(chunks_dir, number), json.dumps(commits[number]).encode())
        report["decoded"].append(number)

    processes = min(workers or os.cpu_count() or 1, len(todo))
    if source.parallel and processes > 1:
        import multiprocessing

        # The workers are forked with the source in a global: each chunk sends
        # two numbers, not the source (a list of a million paths)
        global _FORKED_SOURCE
        _FORKED_SOURCE = source
        try:
            with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"),
                                     initializer=_worker_start, initargs=(lock,)) as pool:
                futures = {number: pool.submit(_decode_forked, *ranges[number]) for number in todo}
                for number, future in futures.items():
                    commit(number, future.result())
        finally:
            _FORKED_SOURCE = None
    else:
        for number in todo:
            commit(number, source.decode(*ranges[number]))

    extra = source.verify([commits[number]["check"] for number in range(len(ranges))])
    del inputs, targets
    for name in ("inputs.npy", "targets.npy"):
        atomic_rename(folder / f"{name}.partial", folder / name)
    header = {**plan, "version": FORMAT_VERSION, "source": source.identity(), "where": source.where(),
              "options": options, "num_classes": source.num_classes,
              "classes": list(source.classes) if source.classes is not None else None,
              "chunks": [commits[number]["sha256"] for number in range(len(ranges))],
              "files": {name: (folder / name).stat().st_size for name in ("inputs.npy", "targets.npy")}, **extra}
    atomic_write_bytes(folder / HEADER, json.dumps(header, indent=1).encode())
    shutil.rmtree(chunks_dir, ignore_errors=True)
    plan_path.unlink(missing_ok=True)
    logger.info("Prepared %s in %s (%d records)", source.where(), folder, n)


_FORKED_SOURCE: Optional[Source] = None
"""The source being prepared, as the pool's forked workers inherit it"""


def _worker_start(lock: int) -> None:
    """In each decoding worker: let go of the preparer's lock (a worker that
    outlived a killed preparer would hold it), and die with the preparer."""
    os.close(lock)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL (Linux)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the preparer died before the line above
        os._exit(1)


def _decode_forked(start: int, stop: int) -> Chunk:
    return _FORKED_SOURCE.decode(start, stop)


def _open_partial(path: Path, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """The memory map of a preparation under way (created at its full size)."""
    if path.exists():
        mapped = np.load(path, mmap_mode="r+")
        if mapped.shape == shape and mapped.dtype == np.dtype(dtype):
            return mapped
        path.unlink()
    mapped = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    # Reserve the blocks now: a full disk is an error here, not a SIGBUS in a write to the map
    fd, size = os.open(path, os.O_RDWR), path.stat().st_size
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as error:
        path.unlink(missing_ok=True)
        raise PreparedDataError(f"{path}: cannot reserve {size} bytes "
                                f"({os.strerror(error.errno)}): free space on {path.parent} or set "
                                "$XPM_TRAIN_PREPARED to a larger disk, then run again") from None
    finally:
        os.close(fd)
    return mapped


def _digest(inputs: np.ndarray, targets: np.ndarray) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(inputs).data)
    digest.update(np.ascontiguousarray(targets).data)
    return digest.hexdigest()


def chunk_commit(chunks_dir: Path, number: int) -> Path:
    """Where the commit of chunk ``number`` is written."""
    return chunks_dir / f"{number}.json"


def _committed(path: Path, inputs: np.ndarray, targets: np.ndarray) -> Optional[dict]:
    """The commit of a chunk whose records are intact, else None (decode it again)."""
    try:
        commit = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return commit if commit.get("sha256") == _digest(inputs, targets) else None


def verify(prepared: Prepared) -> None:
    """Re-hash every chunk against the header (a full read): raise
    :class:`PreparedDataError` naming the file at the first mismatch."""
    inputs, targets = prepared.inputs(), prepared.targets()
    step = prepared.header["chunk_records"]
    for number, expected in enumerate(prepared.header["chunks"]):
        part = slice(number * step, (number + 1) * step)
        if _digest(inputs[part], targets[part]) != expected:
            raise PreparedDataError(f"{prepared.inputs_path}: records {part.start}-{part.stop} differ from what "
                                    f"was prepared: delete {prepared.folder} and prepare it again")


class ArraysSource(Source):
    """Any dataset, prepared from its :meth:`~xpm_train.data.Dataset.arrays`
    (decoded in memory once, when preparing) and keyed by its config's ID."""

    def __init__(self, dataset):
        self.dataset = dataset
        self._arrays = None

    @property
    def arrays(self):
        if self._arrays is None:
            self._arrays = self.dataset.arrays()
        return self._arrays

    def __getattr__(self, name):
        # count, shape... are known once the arrays are loaded (when preparing)
        if name in ("count", "shape", "dtype", "target_shape", "target_dtype", "num_classes", "classes"):
            arrays = self.arrays
            return {"count": len(arrays), "shape": arrays.shape, "target_shape": arrays.target_shape,
                    "dtype": str(arrays.inputs.dtype).removeprefix("torch."),
                    "target_dtype": str(arrays.targets.dtype).removeprefix("torch."),
                    "num_classes": arrays.num_classes, "classes": arrays.classes}[name]
        raise AttributeError(name)

    def identity(self) -> dict[str, Any]:
        return {"kind": "config", "id": config_id(self.dataset)}

    def where(self) -> str:
        from ..errors import config_name

        return f"{config_name(self.dataset)} ({config_id(self.dataset)[:12]})"

    def nbytes(self) -> Optional[int]:
        return None  # unknown without loading the arrays

    def decode(self, start: int, stop: int) -> Chunk:
        return Chunk(self.arrays.inputs[start:stop].numpy(), self.arrays.targets[start:stop].numpy())

    def verify(self, checks):
        return {"mean": list(self.arrays.mean), "std": list(self.arrays.std)}

    def view(self, prepared: Prepared):
        return np.arange(prepared.count), tuple(prepared.header["mean"]), tuple(prepared.header["std"])


def config_id(config) -> str:
    """The experimaestro ID of a config, or of the instance a task holds."""
    loaded = getattr(config, "__xpmidentifier__", None)  # an instance loaded in a task process
    if loaded is not None:
        return loaded.all.hex()
    return getattr(config, "xpmconfig", config).__identifier__().all.hex()
