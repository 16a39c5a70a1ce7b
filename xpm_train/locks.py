"""Whether a lock file is held: the one probe behind "is that process alive?".

A long-lived process (the warm start's fork server, a workspace's MLflow
forwarder, a job pinned to a GPU by ``gpurun``) holds an exclusive
``flock`` on its lock file for as long as it lives; the kernel drops the lock
when the process dies, however it dies (SIGKILL included), so a lock left by a
crashed process never counts. :func:`take` takes such a lock without
waiting (the one way every holder takes it); :func:`held` asks without blocking.

This module imports only the standard library: the warm start's client,
which runs under ``python -S`` before xpm_train can be imported, loads it from
its file (see :mod:`xpm_train.warm.forkclient`).
"""

from __future__ import annotations

import fcntl
import os


def held(path) -> bool:
    """True while a live process holds an ``flock`` on ``path`` (False when
    the file does not exist). The probe takes the lock for an instant and
    releases it at once."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def take(path, mode: int = 0o600) -> int | None:
    """An exclusive ``flock`` on ``path`` (created with ``mode`` if missing),
    taken without waiting: the open file descriptor holding it, or None when
    another process holds it. The lock lasts until the descriptor is closed
    or the process dies."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
