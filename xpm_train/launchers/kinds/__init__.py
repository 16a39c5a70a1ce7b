"""Launcher types: one module per ``type:`` value of ``launchers.yaml``.

Each module holds one frozen dataclass fulfilling
:class:`..schema.LauncherType`: its fields are the keys an entry of that type
may have, and its methods read the entry, say what it offers (matching), what
a job gets there (``explain``), how ``doctor`` checks it, which
experimaestro launcher runs its jobs and, in the job's process, what the job
sees of it (its ``job`` attribute: ranks, its tracking label, Lightning's
cluster environment; :func:`job_sides`). The rest of :mod:`xpm_train.launchers`
only goes through :data:`TYPES`. A new type: one module here and one line
below (docs/launchers.md, "Adding a launcher type").
"""

from __future__ import annotations

from ..ranks import JobSide
from ..schema import LauncherType
from .local import LocalLauncherConfig
from .slurm import SlurmLauncherConfig

TYPES: dict[str, type[LauncherType]] = {
    "local": LocalLauncherConfig,
    "slurm": SlurmLauncherConfig,
}
"""The ``type:`` value of an entry -> the dataclass it is read as"""

__all__ = ["TYPES", "LocalLauncherConfig", "SlurmLauncherConfig", "job_side", "job_sides"]


def job_sides() -> list[JobSide]:
    """What a job sees of each launcher type (:class:`..ranks.JobSide`), in the
    order a job's process asks them: every type that has one, the local
    type's last (it claims whatever no other type does)."""
    sides = [kind.job for kind in TYPES.values() if getattr(kind, "job", None) is not None]
    return sorted(sides, key=lambda side: side is LocalLauncherConfig.job)


def job_side(name: str) -> JobSide:
    """The job side of launcher type ``name`` (a :class:`..ranks.RankInfo`'s
    ``source``); a type without one: the local type's."""
    return getattr(TYPES[name], "job", None) or LocalLauncherConfig.job
