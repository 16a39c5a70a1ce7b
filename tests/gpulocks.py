"""Whether a GPU lock of xpm_train.launchers.gpurun is held right now (for the tests)."""

import fcntl
import os
from pathlib import Path

from xpm_train.launchers.gpurun import lock_dir, lock_path


def is_free(device: str, folder: str | Path | None = None) -> bool:
    """True when no process holds ``device``'s lock (in ``folder``, default the lock folder)."""
    path = lock_path(Path(folder) if folder else lock_dir(), device)
    if not path.exists():
        return True
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
