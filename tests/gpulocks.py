"""Whether a GPU lock of xpm_train.launchers.gpurun is held right now (for the tests)."""

from pathlib import Path

from xpm_train.launchers.gpurun import lock_dir, lock_path
from xpm_train.locks import held


def is_free(device: str, folder: str | Path | None = None) -> bool:
    """True when no process holds ``device``'s lock (in ``folder``, default the lock folder)."""
    return not held(lock_path(Path(folder) if folder else lock_dir(), device))
