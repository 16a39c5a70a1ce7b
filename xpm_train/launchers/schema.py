"""What a ``launchers.yaml`` declares, once read and checked.

The file is a mapping::

    default_spec: "duration=1h & cpu(cores=1)"   # optional, used for an empty spec
    launchers:                                   # required, tried as a whole
      - name: local                              # required, unique
        type: local                              # required: local | slurm
        tags: [local]                            # optional, default []
        priority: 10                             # optional, default 0 (higher wins)
        ...                                      # what the launcher offers

A **local** launcher offers ``cpu.cores`` (``auto``: all cores),
``cpu.memory`` (``auto``: all memory), ``gpus`` (``auto``: detected with
``nvidia-smi``; or a list of ``{model, memory, device}``; or ``[]``),
``max_jobs`` (jobs at a time) and ``max_time``.

A **slurm** launcher offers one partition: ``partition``, ``account``,
``qos``, ``constraint``, per-node ``cpu.cores`` and ``cpu.memory``,
``gpus: {count, model, memory, request, gres_type}``, ``max_time``, plus
``sbatch`` (extra options), ``signal`` (preemption signal) and
``poll_interval`` (seconds between ``sacct`` polls). See docs/launchers.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

GpuRequest = Literal["gres", "gpus-per-node"]


@dataclass(frozen=True)
class Gpu:
    """One local GPU: ``device`` is its CUDA index (what CUDA_VISIBLE_DEVICES takes)."""

    device: str
    model: str
    memory: int
    """Bytes"""


@dataclass(frozen=True)
class LocalLauncherConfig:
    """This machine: jobs run as local processes, GPUs pinned per job."""

    name: str
    tags: tuple[str, ...]
    priority: int
    cores: int
    memory: int
    """Bytes"""
    gpus: tuple[Gpu, ...]
    max_jobs: int | None
    """Jobs running at a time (None: only cores/memory/GPUs limit)"""
    max_time: int
    """Seconds (0: no limit)"""
    auto: frozenset[str]
    """Fields that were detected (``auto``) rather than written"""
    where: str
    """``file:line`` of the entry, for messages"""

    type = "local"


@dataclass(frozen=True)
class SlurmGpus:
    """GPUs of one node of a Slurm partition."""

    count: int = 0
    model: str = ""
    memory: int = 0
    """Bytes per GPU"""
    request: GpuRequest = "gres"
    """How to ask sbatch: ``--gres=gpu[:type]:N`` or ``--gpus-per-node=N``"""
    gres_type: str = ""
    """Optional GRES type (``--gres=gpu:<gres_type>:N``)"""


@dataclass(frozen=True)
class SlurmLauncherConfig:
    """One Slurm partition (a job gets one node of it)."""

    name: str
    tags: tuple[str, ...]
    priority: int
    partition: str
    account: str | None
    qos: str | None
    constraint: str | None
    cores: int
    """CPUs per node"""
    memory: int
    """Bytes per node"""
    gpus: SlurmGpus
    max_time: int
    """Seconds (0: no limit)"""
    sbatch: tuple[str, ...]
    """Extra sbatch options, e.g. ``--exclusive``"""
    signal: str | None
    """``--signal`` value asking for a warning before the time limit"""
    poll_interval: float
    """Seconds between two ``sacct`` polls"""
    binpath: str
    """Folder of sbatch/sacct/squeue"""
    where: str

    type = "slurm"


LauncherConfig = Union[LocalLauncherConfig, SlurmLauncherConfig]


@dataclass(frozen=True)
class LaunchersConfig:
    """All launchers of a file, in file order, and where they were read."""

    launchers: tuple[LauncherConfig, ...]
    source: str
    """Path of the file, or ``<built-in default>``"""
    default_spec: str | None = None

    def get(self, name: str) -> LauncherConfig:
        for launcher in self.launchers:
            if launcher.name == name:
                return launcher
        raise KeyError(f"no launcher named {name!r} in {self.source}")
