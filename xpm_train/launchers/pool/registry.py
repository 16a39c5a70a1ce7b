"""What the pools' steps hold, per node of each allocation: the registry that
every plan of the user on this host shares.

Slurm lists the allocations (:mod:`.allocations`); the registry records the
jobs this host started in them, the moment they are placed (before Slurm
lists their step), so that two jobs placed a millisecond apart, by one plan
or by two, do not both take the last free cores. A record is one file
``<root>/<launcher>/<allocation>/<job>.json`` (:func:`xpm_train.atomic.atomic_write_json`):
node, cores, memory, GPU slots, and the pid (and start time) of the ``srun``
standing for the step; a record whose process is gone frees its share
(however the step or the plan ended). Placement happens under the registry's
lock (:func:`locked`, an ``flock`` the kernel drops if its holder dies).

Root: ``XPM_TRAIN_POOL_DIR``, else ``$XDG_RUNTIME_DIR/xpm-train-pools``, else
``/tmp/xpm-train-pools-<uid>`` (mode 0700).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from ...atomic import atomic_write_json

DIR_ENV = "XPM_TRAIN_POOL_DIR"


def root() -> Path:
    if os.environ.get(DIR_ENV):
        return Path(os.environ[DIR_ENV])
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "xpm-train-pools" if runtime else Path(f"/tmp/xpm-train-pools-{os.getuid()}")


@dataclass(frozen=True)
class Held:
    """What one job placed in an allocation holds."""

    job: str
    """Its job folder"""
    node: str
    cores: int
    memory_mib: int
    gpus: tuple[int, ...]
    """GPU slots (``gpu index * jobs_per_gpu + k``)"""
    pid: int = 0
    started: float = 0.0
    """The process's start time (psutil), which tells a reused pid apart"""


@contextmanager
def locked(launcher: str):
    """The registry of ``launcher``, held alone for the ``with`` block."""
    folder = root() / launcher
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(folder / "lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield folder


def holdings(folder: Path, allocations: list[str]) -> dict[str, list[Held]]:
    """``allocation -> what its live jobs hold``; records of ended processes and
    folders of ended allocations (not in ``allocations``) are removed."""
    result: dict[str, list[Held]] = {jobid: [] for jobid in allocations}
    for entry in folder.iterdir() if folder.is_dir() else ():
        if not entry.is_dir():
            continue
        if entry.name not in result:
            shutil.rmtree(entry, ignore_errors=True)
            continue
        for path in entry.glob("*.json"):
            held = _read(path)
            if held is None or not alive(held):
                path.unlink(missing_ok=True)
            else:
                result[entry.name].append(held)
    return result


def record(folder: Path, allocation: str, held: Held) -> None:
    path = folder / allocation / f"{Path(held.job).name}.json"
    path.parent.mkdir(exist_ok=True)
    atomic_write_json(path, {**asdict(held), "gpus": list(held.gpus)})


def alive(held: Held) -> bool:
    import psutil

    try:
        return abs(psutil.Process(held.pid).create_time() - held.started) < 0.01
    except psutil.Error:
        return False


def _read(path: Path) -> Held | None:
    try:
        data = json.loads(path.read_text())
        return Held(**{**data, "gpus": tuple(data["gpus"])})
    except (OSError, ValueError, TypeError, KeyError):
        return None
