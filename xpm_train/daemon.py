"""A background process that outlives whoever started it: the warm start's
fork server (:mod:`xpm_train.warm.forkserver`) and a workspace's MLflow
forwarder (:mod:`xpm_train.tracking.forwarder`).

Both live the same way: :func:`start` launches ``python -m MODULE ARGS``
detached (its own session, no terminal, output appended to a log file, cwd
``/`` so that no folder is kept busy); the daemon then :func:`claims <claim>`
its lock file, held for as long as it lives (:mod:`xpm_train.locks`: a second
daemon started at the same time finds it taken and exits, and a crashed one
never counts), and leaves when idle.

Standard library only: the warm start's client, which runs under
``python -S`` before xpm_train can be imported, loads it from its file.
"""

from __future__ import annotations

import os
import subprocess
import sys


def start(module: str, args: list[str], log, env: dict[str, str] | None = None) -> None:
    """Start ``python -m module args`` in the background, detached from this
    process (it loses nothing when this process ends), its output appended to
    ``log``; ``env``: its environment (default: this process's)."""
    with open(log, "ab") as out:
        subprocess.Popen([sys.executable, "-m", module, *args], stdin=subprocess.DEVNULL,
                         stdout=out, stderr=out, cwd="/", env=env,
                         start_new_session=True, close_fds=True)


def claim(lock, mode: int = 0o600, pid_file=None) -> int | None:
    """Make this process the daemon of ``lock``: the descriptor holding the
    lock (kept until the process exits or closes it), or None when another
    daemon holds it (then exit). ``pid_file`` (optional) gets this pid."""
    from .locks import take

    fd = take(lock, mode)
    if fd is not None and pid_file is not None:
        with open(pid_file, "w") as out:
            out.write(f"{os.getpid()}\n")
    return fd
