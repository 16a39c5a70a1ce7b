"""Where the launchers come from.

The first of these wins:

1. the file named by ``$XPM_TRAIN_LAUNCHERS`` (an error if it does not exist);
2. ``launchers.yaml`` of the project: in the starting folder (the current
   working directory) or one of its parents, up to and including the git
   root (the closest folder holding ``.git``); outside a git repository,
   only the starting folder is looked at;
3. ``$XDG_CONFIG_HOME/xpm-train/launchers.yaml`` (``~/.config/xpm-train/...``);
4. a built-in default: one local launcher with all cores, all memory and all
   detected GPUs (a log line says so).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import NotFound
from .schema import LaunchersConfig

logger = logging.getLogger("xpm_train.launchers")

ENV = "XPM_TRAIN_LAUNCHERS"
FILENAME = "launchers.yaml"
BUILTIN = "<built-in default>"


def locate(start: Path | None = None) -> Path | None:
    """The launchers file to use (None: use the built-in default)."""
    if os.environ.get(ENV):
        path = Path(os.environ[ENV]).expanduser()
        if not path.is_file():
            raise NotFound(f"${ENV} names {path}, which is not a file")
        return path
    return project_file(Path.cwd() if start is None else start) or (
        user_file() if user_file().is_file() else None
    )


def project_file(start: Path) -> Path | None:
    """``launchers.yaml`` in ``start`` or its parents up to the git root."""
    start = start.resolve()
    chain = [start, *start.parents]
    git_root = next((folder for folder in chain if (folder / ".git").exists()), None)
    folders = chain[: chain.index(git_root) + 1] if git_root else [start]
    return next((f / FILENAME for f in folders if (f / FILENAME).is_file()), None)


def user_file() -> Path:
    """The user's launchers file (may not exist)."""
    config_home = os.environ.get("XDG_CONFIG_HOME") or "~/.config"
    return Path(config_home).expanduser() / "xpm-train" / FILENAME


def load_launchers(start: Path | None = None) -> LaunchersConfig:
    """The launchers in effect (see the module documentation for the order).

    :raises LaunchersConfigError: if the file found is invalid
    """
    from .loader import load_file

    path = locate(start)
    if path is not None:
        logger.debug("Launchers read from %s", path)
        return load_file(path)
    config = builtin_default()
    local = config.launchers[0]
    logger.info(
        "No launchers.yaml found ($%s unset, none in the project from %s, none at %s): "
        "using the built-in default, one local launcher with %d cores and %d GPU(s)",
        ENV, start or Path.cwd(), user_file(), local.cores, len(local.gpus),
    )
    return config


def builtin_default() -> LaunchersConfig:
    """One local launcher offering the whole machine."""
    from .gpus import detect_gpus
    from .kinds.local import LocalLauncherConfig, total_memory

    local = LocalLauncherConfig(
        name="local", tags=(), priority=0,
        cores=len(os.sched_getaffinity(0)), memory=total_memory(),
        gpus=detect_gpus(), max_jobs=None, max_time=0,
        auto=frozenset({"cores", "memory", "gpus"}), where=BUILTIN,
    )
    return LaunchersConfig((local,), BUILTIN)
