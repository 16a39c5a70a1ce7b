"""Give a process exclusive use of N GPUs, chosen among the free ones when it starts.

Each GPU has a lock file in a host-wide folder (``$XPM_TRAIN_GPU_LOCK_DIR``,
default ``/tmp/xpm-train-gpu-locks``). A process takes an exclusive
``fcntl.flock`` on the lock files of the GPUs it gets and sets
``CUDA_VISIBLE_DEVICES`` to them. The locks belong to the open file
descriptors, so the kernel drops them when the process ends in any way,
SIGKILL included, and they survive ``exec``.

Two ways in:

* in a Python process, before anything initialises CUDA::

      from xpm_train.launchers.gpurun import pin
      pin(1, ["0", "1"])

  (the local launcher writes exactly this at the top of each job script);

* around any command::

      python -m xpm_train.launchers.gpurun --gpus 2 -- python train.py

A process asking for 0 GPUs gets ``CUDA_VISIBLE_DEVICES=""``: it cannot
touch a GPU that another job was given.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time
from pathlib import Path

from ..locks import take

logger = logging.getLogger("xpm_train.launchers.gpurun")

LOCK_DIR_ENV = "XPM_TRAIN_GPU_LOCK_DIR"
DEFAULT_LOCK_DIR = "/tmp/xpm-train-gpu-locks"

_held: list[int] = []
"""File descriptors holding our GPU locks (kept open until the process ends)."""


def lock_dir() -> Path:
    """The host-wide folder of GPU lock files."""
    return Path(os.environ.get(LOCK_DIR_ENV) or DEFAULT_LOCK_DIR)


def pin(count: int, devices: list[str], folder: str | Path | None = None, *,
        timeout: float | None = None, poll: float = 0.2) -> list[str]:
    """Lock ``count`` free GPUs among ``devices`` and set ``CUDA_VISIBLE_DEVICES``.

    Waits while fewer than ``count`` are free (a finishing job may still hold
    one for a moment). Returns the chosen devices.

    :raises TimeoutError: if ``timeout`` seconds pass first
    :raises ValueError: if ``count`` exceeds the number of ``devices``
    """
    chosen = acquire(count, devices, folder, timeout=timeout, poll=poll)
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(chosen)
    if chosen:
        logger.info("Pinned GPU(s) %s (CUDA_VISIBLE_DEVICES)", ",".join(chosen))
    return chosen


def acquire(count: int, devices: list[str], folder: str | Path | None = None, *,
            timeout: float | None = None, poll: float = 0.2) -> list[str]:
    """Exclusive locks on ``count`` of ``devices``, held until this process ends."""
    if count > len(devices):
        raise ValueError(f"{count} GPU(s) asked, only {len(devices)} declared: {devices}")
    if count <= 0:
        return []
    folder = _ensure_folder(Path(folder) if folder else lock_dir())
    deadline = None if timeout is None else time.monotonic() + timeout
    waiting_logged = False
    while True:
        taken = _try_lock(count, devices, folder)
        if taken is not None:
            _held.extend(fd for _, fd in taken)
            return [device for device, _ in taken]
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"no {count} free GPU(s) among {devices} in {folder}")
        if not waiting_logged:
            logger.info("Waiting for %d free GPU(s) among %s", count, ",".join(devices))
            waiting_logged = True
        time.sleep(poll)


def release() -> None:
    """Give back every GPU this process holds (normally the process just ends)."""
    while _held:
        os.close(_held.pop())


def _try_lock(count: int, devices: list[str], folder: Path) -> list[tuple[str, int]] | None:
    """Lock the first ``count`` free devices, or lock nothing and return None."""
    taken: list[tuple[str, int]] = []
    for device in devices:
        fd = take(lock_path(folder, device), 0o666)
        if fd is None:
            continue
        taken.append((device, fd))
        if len(taken) == count:
            for _, held in taken:
                _record_holder(held)
            return taken
    for _, fd in taken:
        os.close(fd)
    return None


def lock_path(folder: Path, device: str) -> Path:
    """Lock file of one GPU (device index or UUID)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in device)
    return folder / f"gpu-{safe}.lock"


def _record_holder(fd: int) -> None:
    """Write who holds the lock into it (informative only: the flock is what counts)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}@{socket.gethostname()}\n".encode(), 0)


def _ensure_folder(folder: Path) -> Path:
    """Create the lock folder, shared by all users of the host (sticky, like /tmp)."""
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        try:
            folder.chmod(0o1777)
        except OSError:
            pass
    return folder


def main(argv: list[str] | None = None) -> None:
    """``python -m xpm_train.launchers.gpurun --gpus N [--devices 0,1] -- CMD...``"""
    parser = argparse.ArgumentParser(prog="python -m xpm_train.launchers.gpurun",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, required=True, help="number of GPUs to lock")
    parser.add_argument("--devices", help="comma-separated devices (default: detected)")
    parser.add_argument("--lock-dir", help=f"lock folder (default: ${LOCK_DIR_ENV} or "
                        f"{DEFAULT_LOCK_DIR})")
    parser.add_argument("--timeout", type=float, help="give up after this many seconds")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- command to run")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (add: -- COMMAND ...)")
    if args.devices is not None:
        devices = [d for d in args.devices.split(",") if d]
    else:
        from .gpus import detect_gpus

        devices = [gpu.device for gpu in detect_gpus()]
    logging.basicConfig(level=logging.INFO, format="gpurun: %(message)s")
    pin(args.gpus, devices, args.lock_dir, timeout=args.timeout)
    for fd in _held:
        os.set_inheritable(fd, True)  # the locks must outlive exec
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
