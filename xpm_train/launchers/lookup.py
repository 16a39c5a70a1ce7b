"""Where the launchers come from.

The first of these wins:

1. the file named by ``$XPM_TRAIN_LAUNCHERS`` (an error if it does not exist);
2. ``launchers.yaml`` in the folder the caller starts from, when it names one
   (experimaestro's hook ``launchers.py`` starts from its own folder), or one
   of its parents;
3. ... in the plan's folder (inside ``experimaestro run-experiment``: the
   folder of the plan's file or module) or one of its parents;
4. ... in the current working directory or one of its parents;
5. ... in the workspace folder (``--workdir``) or one of its parents;
6. ``$XDG_CONFIG_HOME/xpm-train/launchers.yaml`` (``~/.config/xpm-train/...``);
7. a built-in default: one local launcher with all cores, all memory and all
   detected GPUs.

"Or one of its parents" stops at the git root (the closest folder holding
``.git``); outside a git repository only the folder itself is looked at. The
file used (and why), or the folders searched when none was found, is logged
once per process.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import NotFound
from ..jobfolder import current_experiment
from .schema import LaunchersConfig

logger = logging.getLogger("xpm_train.launchers")

ENV = "XPM_TRAIN_LAUNCHERS"
FILENAME = "launchers.yaml"
BUILTIN = "<built-in default>"
_logged: set[str] = set()
"""The sources already logged by this process (each is said once)"""


def locate(start: Path | None = None) -> Path | None:
    """The launchers file to use (None: use the built-in default)."""
    return find(start)[0]


def find(start: Path | None = None) -> tuple[Path | None, str]:
    """The launchers file to use (None: the built-in default) and why: which
    rule found it, or the places searched in vain."""
    if os.environ.get(ENV):
        path = Path(os.environ[ENV]).expanduser()
        if not path.is_file():
            raise NotFound(f"${ENV} names {path}, which is not a file")
        return path, f"${ENV}"
    searched = []
    for folder, what in search_folders(start):
        found = project_file(folder)
        if found is not None:
            return found, f"found from {what} {folder}"
        searched.append(f"{what} {folder}")
    if user_file().is_file():
        return user_file(), "the user's file"
    searched.append(f"{user_file()}")
    return None, f"${ENV} unset; searched {'; '.join(searched)}"


def search_folders(start: Path | None) -> list[tuple[Path, str]]:
    """The folders whose project (the folder and its parents up to the git
    root) may hold ``launchers.yaml``, in the order they are searched."""
    folders = [(start, "the starting folder")] if start is not None else []
    xp = current_experiment()
    if xp is not None:
        folders += [(Path(p), "the plan's folder") for p in getattr(xp, "_project_paths", None) or ()]
    folders.append((Path.cwd(), "the current folder"))
    if xp is not None:
        folders.append((Path(xp.workspace.path), "the workspace"))
    unique, seen = [], set()
    for folder, what in folders:
        if folder.resolve() not in seen:
            seen.add(folder.resolve())
            unique.append((folder.resolve(), what))
    return unique


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

    path, why = find(start)
    if path is not None:
        once(str(path), "Launchers: %s (%s)", path, why)
        return load_file(path)
    config = builtin_default()
    local = config.launchers[0]
    once(BUILTIN, "No launchers.yaml found (%s): using the built-in default, one local "
         "launcher with %d cores and %d GPU(s)", why, local.cores, len(local.gpus))
    return config


def resolve_config(config: LaunchersConfig | Path | None, start: Path | None) -> LaunchersConfig:
    """A ``LaunchersConfig`` from a config, a file path, or the lookup order."""
    if isinstance(config, LaunchersConfig):
        return config
    if config is not None:
        from .loader import load_file

        return load_file(Path(config))
    return load_launchers(start)


def once(source: str, message: str, *args) -> None:
    """Log ``message`` the first time ``source`` is used by this process."""
    if source not in _logged:
        _logged.add(source)
        logger.info(message, *args)


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
