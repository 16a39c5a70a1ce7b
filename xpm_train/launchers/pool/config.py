"""The ``pool:`` key of a ``type: slurm`` entry, and what is checked at plan time.

::

    - name: cluster
      type: slurm
      ...
      pool: {nodes: 1, time: 4h, max_allocations: 4, idle: 5m, jobs_per_gpu: 2}

``nodes`` per allocation (default 1), ``time`` its time limit (required, at
most the entry's ``max_time``), ``max_allocations`` at once (default 1),
``idle`` seconds without a step after which an allocation ends (default 5m),
``jobs_per_gpu`` jobs sharing one GPU (default 1).

A file's mistakes are found when it is read (file, line, field); what depends
on the cluster or on a job's spec is found when the plan builds the job's
launcher (:func:`check_cluster`, :func:`check_job`): one line naming the
launcher, the field and the limit, before anything is submitted.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from ...errors import UserError
from .. import readers as r
from ..units import format_duration, format_memory
from ..yamlnodes import Node, Problems

if TYPE_CHECKING:
    from experimaestro.launcherfinder.specs import HostSimpleRequirement

    from ..kinds.slurm import SlurmLauncherConfig

DEFAULT_IDLE = 300


class PoolError(UserError, ValueError):
    """A pool, or a job for it, that the cluster cannot run."""


@dataclass(frozen=True)
class PoolConfig:
    """Allocations that run the jobs of one Slurm launcher as job steps."""

    time: int
    """Seconds: each allocation's time limit"""
    nodes: int = 1
    """Nodes per allocation"""
    max_allocations: int = 1
    """Allocations of this launcher at once (shared by every plan of the user)"""
    idle: int = DEFAULT_IDLE
    """Seconds without a step after which an allocation ends itself"""
    jobs_per_gpu: int = 1
    """Jobs sharing one GPU (each sees only it, with ``1/jobs_per_gpu`` of its memory)"""
    where: str = field(default="", compare=False)
    """``file:line`` of the ``pool:`` key"""


FIELDS = ("nodes", "time", "max_allocations", "idle", "jobs_per_gpu")


def read_pool(max_time: int):
    """Reader of the ``pool:`` mapping of an entry whose ``max_time`` is ``max_time``."""
    def read(node: Node, problems: Problems):
        if r.mapping(FIELDS)(node, problems) is r.Missing:
            return r.Missing
        values = dict(
            time=r.required(node, "time", problems, r.duration),
            nodes=r.optional(node, "nodes", problems, r.integer(1), 1),
            max_allocations=r.optional(node, "max_allocations", problems, r.integer(1), 1),
            idle=r.optional(node, "idle", problems, r.duration, DEFAULT_IDLE),
            jobs_per_gpu=r.optional(node, "jobs_per_gpu", problems, r.integer(1), 1),
        )
        if r.Missing in values.values():
            return r.Missing
        if max_time and values["time"] > max_time:
            problems.add(node.value["time"], f"{format_duration(values['time'])} is longer than the "
                         f"launcher's max_time {format_duration(max_time)} (fix: time: "
                         f"{format_duration(max_time)} or less)")
            return r.Missing
        return PoolConfig(where=f"{node.file}:{node.line}", **values)
    return read


# --- plan time: the cluster, then each job


def check_cluster(config: "SlurmLauncherConfig") -> None:
    """The partition can hold the pool's allocations and Slurm keeps accounts.

    :raises PoolError: naming the launcher, the field and the limit
    """
    pool = config.pool
    max_seconds, nodes, accounting = partition_limits(config.binpath, config.partition)
    at = f"Slurm launcher {config.name!r} ({pool.where})"
    if max_seconds and pool.time > max_seconds:
        raise PoolError(f"{at}: pool.time {format_duration(pool.time)} exceeds partition "
                        f"{config.partition!r}'s MaxTime {format_duration(max_seconds)} "
                        f"(fix: pool.time <= {format_duration(max_seconds)})")
    if nodes and pool.nodes > nodes:
        raise PoolError(f"{at}: pool.nodes {pool.nodes} exceeds the {nodes} node(s) of "
                        f"partition {config.partition!r} (fix: pool.nodes <= {nodes})")
    if not accounting:
        raise PoolError(f"{at}: the cluster keeps no accounting (AccountingStorageType=none), "
                        "which a pool needs to tell its steps' ends (fix: drop pool: for this "
                        "launcher, or enable slurmdbd accounting)")


def check_job(config: "SlurmLauncherConfig", requirement: "HostSimpleRequirement") -> None:
    """A job of ``requirement`` fits one node of one allocation of the pool.

    :raises PoolError: naming the launcher, the field and the limit
    """
    at = f"Slurm launcher {config.name!r}: a job asking {requirement}"
    gpus = len(requirement.accelerators)
    if requirement.duration and requirement.duration > config.pool.time:
        raise PoolError(f"{at} cannot fit its pool: duration {format_duration(requirement.duration)} "
                        f"> pool.time {format_duration(config.pool.time)} (fix: a shorter "
                        f"duration, or a longer pool.time)")
    if requirement.cpu.cores > config.cores:
        raise PoolError(f"{at} cannot fit its pool: {requirement.cpu.cores} cores > cpu.cores "
                        f"{config.cores} of a node")
    if requirement.cpu.memory > config.memory:
        raise PoolError(f"{at} cannot fit its pool: memory {format_memory(requirement.cpu.memory)} "
                        f"> cpu.memory {format_memory(config.memory)} of a node")
    if gpus > config.gpus.count:
        raise PoolError(f"{at} cannot fit its pool: {gpus} GPU(s) > gpus.count "
                        f"{config.gpus.count} of a node")


@lru_cache(maxsize=None)
def partition_limits(binpath: str, partition: str) -> tuple[int, int, bool]:
    """``(MaxTime seconds or 0, nodes or 0, accounting on)`` of ``partition``
    (zeros and True when Slurm cannot be asked: sbatch will say)."""
    try:
        listed = _command(binpath, "sinfo", "-h", "-p", partition, "-o", "%l|%D")
        shown = _command(binpath, "scontrol", "show", "config")
    except (OSError, subprocess.SubprocessError):
        return 0, 0, True
    limit, _, count = (listed.splitlines() or ["|"])[0].partition("|")
    accounting = "accounting_storage/none" not in shown
    return slurm_seconds(limit), int(count) if count.strip().isdigit() else 0, accounting


def slurm_seconds(text: str) -> int:
    """Seconds in a Slurm time (``D-HH:MM:SS``, ``HH:MM:SS``, ``MM:SS``, ``MM``);
    0 for ``infinite``, ``UNLIMITED`` or an unreadable one."""
    text = text.strip()
    days, _, clock = text.rpartition("-")
    try:
        parts = [int(p) for p in clock.split(":")]
        day_seconds = int(days) * 86400 if days else 0
    except ValueError:
        return 0
    if len(parts) == 1:
        parts = [0, parts[0], 0]  # minutes
    while len(parts) < 3:
        parts.insert(0, 0)
    hours, minutes, seconds = parts[-3:]
    return day_seconds + hours * 3600 + minutes * 60 + seconds


def _command(binpath: str, name: str, *args: str) -> str:
    done = subprocess.run([f"{binpath}/{name}", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise OSError(done.stderr.strip())
    return done.stdout
