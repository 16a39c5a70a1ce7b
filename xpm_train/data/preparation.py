"""Preparing a source: decoding it once into a prepared folder (:mod:`xpm_train.data.prepared`).

:func:`prepare` decodes the source in chunks, in parallel (a process pool,
forked with the source in a global, when the source says it can be decoded
that way), into ``inputs.npy.partial``/``targets.npy.partial`` (reserved at
their full size up front). While a preparation is under way its folder also
holds ``plan.json`` (its layout: a restart with another layout starts afresh)
and ``chunks/<i>.json``: after each chunk is written and fsync'ed, its commit
(its SHA-256, written atomically) says so. A restarted preparation verifies
and skips the committed chunks. Once all are there, the partial files are
renamed (:func:`xpm_train.atomic.atomic_rename`) and ``header.json`` is
written atomically (:func:`xpm_train.atomic.atomic_write_bytes`): the
commit point of the format, after which ``plan.json`` and ``chunks/`` go.
Preparers of the same key take turns on a lock file; the second finds the
header and decodes nothing.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .prepared import (FORMAT_VERSION, HEADER, Chunk, Prepared, PreparedDataError, Source, key_of, open_prepared,
                       prepared_root, records_digest)

logger = logging.getLogger(__name__)

CHUNK_RECORDS = 1024
"""Records decoded (and committed) at a time"""

PLAN = "plan.json"
"""The layout of a preparation under way: a restart with another layout starts afresh"""
CHUNKS = "chunks"
"""The commits of the chunks decoded so far (``chunks/<i>.json``), removed once prepared"""


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
        commits[number] = {"sha256": records_digest(inputs[start:stop], targets[start:stop]), "check": chunk.check}
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


def chunk_commit(chunks_dir: Path, number: int) -> Path:
    """Where the commit of chunk ``number`` is written."""
    return chunks_dir / f"{number}.json"


def _committed(path: Path, inputs: np.ndarray, targets: np.ndarray) -> Optional[dict]:
    """The commit of a chunk whose records are intact, else None (decode it again)."""
    try:
        commit = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return commit if commit.get("sha256") == records_digest(inputs, targets) else None
