"""Launcher types: one module per ``type:`` value of ``launchers.yaml``.

Each module holds one frozen dataclass fulfilling
:class:`..schema.LauncherType`: its fields are the keys an entry of that type
may have, and its methods read the entry, say what it offers (matching), what
a job gets there (``explain``), how ``doctor`` checks it and which
experimaestro launcher runs its jobs. The rest of :mod:`xpm_train.launchers`
only goes through :data:`TYPES`. A new type: one module here and one line
below (docs/launchers.md, "Adding a launcher type").
"""

from __future__ import annotations

from ..schema import LauncherType
from .local import LocalLauncherConfig
from .slurm import SlurmLauncherConfig

TYPES: dict[str, type[LauncherType]] = {
    "local": LocalLauncherConfig,
    "slurm": SlurmLauncherConfig,
}
"""The ``type:`` value of an entry -> the dataclass it is read as"""

__all__ = ["TYPES", "LocalLauncherConfig", "SlurmLauncherConfig"]
