"""Atomic writes: a file (or a folder) is replaced whole, or not at all.

Every file xpm-train writes in a job folder, a data cache or a spool
(checkpoints, summaries, downloads, plots, trial records...) goes through
:func:`atomic_write`: the content is written to a temporary file *in the
destination folder* (``.<name>.tmp-XXXX``), flushed and fsynced, then renamed
over the final name with :func:`os.replace`, and the folder is fsynced so
that the rename survives a crash. Readers therefore see the old complete file
or the new complete file, never a partial one, even when the writer is killed
or two processes write at once. A write that fails (e.g. a full disk) removes
its temporary file and leaves the old file as it was.

This module imports only the standard library (the warm start's server uses it).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator

TEMPORARY_GLOB = ".*.tmp-*"
"""What the temporary files of :func:`atomic_write` look like"""


class DiskFullError(OSError):
    """A file could not be written for lack of space (nothing was replaced)."""


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: a no-op where the OS
    or file system does not support it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: Path, previous: Path | None = None) -> Iterator[BinaryIO]:
    """Open a temporary binary file that replaces ``path`` when the block succeeds.

    ``previous``: where the replaced file is kept (moved there just before the
    new one takes its name: a checkpoint's ``.prev``). On any exception the
    temporary file is removed and ``path`` is untouched; a full disk raises
    :class:`DiskFullError`, which says so.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o666 & ~_umask())  # mkstemp gives 0600: use the usual mode
            yield out
            out.flush()
            os.fsync(out.fileno())
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(
                error.errno,
                f"could not write {path}: {os.strerror(error.errno)}. The previous file is intact. "
                f"Free space (or raise the quota) on the filesystem of {path.parent}, then run the plan "
                f"again: a job resumes from its last checkpoint",
            ) from None
        raise
    fsync_dir(path.parent)


def atomic_rename(source: Path, target: Path) -> None:
    """Give ``source``, a file written in place (a memory map filled chunk by
    chunk), the name ``target`` atomically: its content is fsynced, then it is
    renamed over ``target`` and the folder fsynced, as :func:`atomic_write`
    does with its temporary file. Both must be in one folder (one file system)."""
    source, target = Path(source), Path(target)
    with open(source, "rb") as fp:
        os.fsync(fp.fileno())
    os.replace(source, target)
    fsync_dir(target.parent)


def atomic_write_bytes(path: Path, data: bytes, previous: Path | None = None) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, previous) as out:
        out.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, value: Any, indent: int | None = 2, **dumps: Any) -> None:
    """Write ``value`` as JSON to ``path`` atomically (``dumps``: more
    arguments of :func:`json.dumps`, e.g. ``sort_keys=True``)."""
    atomic_write_text(path, json.dumps(value, indent=indent, **dumps))


@contextlib.contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """A staging folder beside ``target`` that becomes ``target`` when the
    block succeeds (every file in it fsynced, then one rename); removed on
    any exception. ``target`` must not exist. It gets the usual mode of a new
    folder (0777 less the umask: mkdtemp makes it 0700)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield staging
        staging.chmod(0o777 & ~_umask())
        for path in staging.rglob("*"):
            if path.is_file():
                with open(path, "rb") as fp:
                    os.fsync(fp.fileno())
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_dir(target.parent)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files of writes that were killed before their rename
    (call it only while holding the job's lock: no other writer is alive)."""
    stale = list(Path(folder).glob(TEMPORARY_GLOB)) if Path(folder).is_dir() else []
    for path in stale:
        if path.is_file():
            path.unlink(missing_ok=True)
    return stale


@functools.cache
def _umask() -> int:
    """The process umask (read once: reading it means setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
