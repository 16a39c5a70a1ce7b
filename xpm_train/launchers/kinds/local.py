"""``type: local``: jobs run on this machine, with its resources reserved and GPUs pinned.

An entry offers ``cpu.cores`` (``auto``: the cores this process may use),
``cpu.memory`` (``auto``: all memory), ``gpus`` (``auto``: detected with
``nvidia-smi``, see :mod:`..gpus`; or a list of ``{model, memory, device}``;
or ``[]``), ``max_jobs`` (jobs at a time) and ``max_time``.

A job chosen for a local launcher

* reserves, before it starts, what its spec asks (cores, memory, GPUs, one
  job slot) from host-wide experimaestro counters sized as the launcher
  declares (:mod:`..tokens`), so that jobs of every experiment on the host
  together fit;
* once started, locks that many free GPUs and sets ``CUDA_VISIBLE_DEVICES``
  (:mod:`..gpurun`) before the task is imported (the experimaestro launcher,
  :class:`..process.LocalLauncher`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Mapping

from .. import readers as r
from ..gpurun import lock_dir
from ..gpus import Gpu
from ..ranks import JobSide, Layout, RankInfo
from ..reservation import THREAD_VARIABLES, Reservation
from ..schema import NOT_IN_FILE, Common, allowed_keys, key
from ..units import format_memory
from ..yamlnodes import Node, Problems

if TYPE_CHECKING:
    from experimaestro.launcherfinder.specs import HostSimpleRequirement, HostSpecification

    from ..process import LocalLauncher

class LocalJob:
    """What a job of this machine sees (:class:`..ranks.JobSide`): the job
    process is rank 0, which starts ranks ``1..W-1`` itself
    (:mod:`xpm_train.distributed`) with ``RANK``/``MASTER_ADDR``/``MASTER_PORT``
    set, as torchrun would. The fallback of every process no other type claims."""

    @staticmethod
    def ranks(environ: Mapping[str, str], world: int) -> RankInfo:
        rank = int(environ.get("RANK") or 0)
        return RankInfo(rank=rank, local_rank=rank, world_size=world, local_world_size=world,
                        master_addr=environ.get("MASTER_ADDR") or "127.0.0.1",
                        master_port=int(environ.get("MASTER_PORT") or 0), source="local")

    @staticmethod
    def label(environ: Mapping[str, str]) -> str:
        return "local"

    @staticmethod
    def lightning_variables(info: RankInfo) -> dict[str, str]:
        """Lightning's ``LightningEnvironment`` takes processes as external when ``LOCAL_RANK`` is set."""
        return {"MASTER_ADDR": info.master_addr, "MASTER_PORT": str(info.master_port),
                "RANK": str(info.rank), "LOCAL_RANK": str(info.local_rank),
                "WORLD_SIZE": str(info.world_size), "NODE_RANK": "0"}

    @staticmethod
    def lightning_environment():
        from lightning.fabric.plugins.environments import LightningEnvironment

        return LightningEnvironment()

    @staticmethod
    def lightning_plugins() -> list:
        return []


@dataclass(frozen=True)
class LocalLauncherConfig(Common):
    """This machine: jobs run as local processes, GPUs pinned per job."""

    type: ClassVar[str] = "local"
    job: ClassVar[type[JobSide]] = LocalJob

    cores: int = field(metadata=key("cpu.cores"))
    memory: int = field(metadata=key("cpu.memory"))
    """Bytes"""
    gpus: tuple[Gpu, ...]
    max_jobs: int | None
    """Jobs running at a time (None: only cores/memory/GPUs limit)"""
    auto: frozenset[str] = field(metadata=NOT_IN_FILE)
    """Fields that were detected (``auto``) rather than written"""

    @classmethod
    def read(cls, node: Node, problems: Problems, common: dict) -> "LocalLauncherConfig | None":
        from ..gpus import detect_gpus

        cpu = r.optional(node, "cpu", problems, r.mapping(allowed_keys(cls, "cpu")), None)
        cpu_node = node.value.get("cpu")
        written = dict(
            cores=r.optional(cpu_node, "cores", problems, r.integer(1, auto_ok=True), "auto"),
            memory=r.optional(cpu_node, "memory", problems, r.memory(auto_ok=True), "auto"),
            gpus=r.optional(node, "gpus", problems, _gpus, "auto"),
        )
        detectors = dict(
            cores=lambda: len(os.sched_getaffinity(0)), memory=total_memory, gpus=detect_gpus
        )
        auto = frozenset(name for name, value in written.items() if value == "auto")
        resolved = {name: detectors[name]() if name in auto else value
                    for name, value in written.items()}
        max_jobs = r.optional(node, "max_jobs", problems, r.integer(1), None)
        values = dict(common, max_jobs=max_jobs, **resolved)
        if cpu is r.Missing or r.Missing in values.values():
            return None
        return cls(auto=auto, **values)

    def host(self) -> "HostSpecification":
        from experimaestro.launcherfinder.specs import (
            CPUSpecification,
            CudaSpecification,
            HostSpecification,
        )

        return HostSpecification(
            cpu=CPUSpecification(memory=self.memory, cores=self.cores),
            accelerators=[CudaSpecification(memory=g.memory, model=g.model) for g in self.gpus],
            priority=self.priority,
            max_duration=self.max_time,
        )

    def refuses(self, layout: Layout) -> str:
        if layout.nodes > 1:
            return f"is one machine (nodes={layout.nodes} needs a Slurm launcher)"
        return ""

    def plan(self, requirement: "HostSimpleRequirement", layout: Layout = Layout()) -> list[str]:
        """What a job of ``requirement`` gets here, in words (for ``explain``)."""
        reservation = Reservation.of(self, requirement)
        lines = []
        if layout.world_size > 1:
            device = "one pinned GPU each (cuda:RANK), nccl" if reservation.gpus else "cpu, gloo"
            lines.append(f"ranks: {layout.world_size} processes on this machine, XPM_TRAIN_RANKS="
                         f"{layout.world_size}: the job process is rank 0 and starts ranks 1..{layout.world_size - 1} "
                         "(the job script again, with RANK set); rank 0 writes")
            lines.append(f"each rank: {device}, {max(1, reservation.cores // layout.world_size)} thread(s)")
        if self.gpus:
            devices = ",".join(gpu.device for gpu in self.gpus)
            visible = (f"<{reservation.gpus} free of {devices}, chosen at start>"
                       if reservation.gpus else '""')
            lines.append(f"CUDA_VISIBLE_DEVICES={visible}  (GPU locks in {lock_dir()})")
        lines.append(f"{'='.join((THREAD_VARIABLES[0], str(reservation.cores)))} (and MKL_NUM_THREADS): "
                     "one thread per reserved core, unless either is already set")
        for resource, share, total in reservation.shares:
            if resource == "memory-mib":
                shown = (f"memory {format_memory(requirement.cpu.memory)} ({share} MiB) "
                         f"of {format_memory(self.memory)}")
            else:
                shown = f"{resource} {share} of {total}"
            lines.append(f"reserves {shown} (host-wide token xpm-train.{self.name}.{resource})")
        return lines

    def listing(self) -> tuple[str, str]:
        gpus = ", ".join(f"{g.device}:{g.model} {format_memory(g.memory)}" for g in self.gpus)
        return gpus, "this host" + (f", max {self.max_jobs} jobs" if self.max_jobs else "")

    def launcher(self, requirement: "HostSimpleRequirement", layout: Layout) -> "LocalLauncher":
        from ..process import LocalLauncher

        return LocalLauncher(self, requirement, layout)

    @classmethod
    def doctor(cls, launchers, which) -> None:
        """Nothing to check: ``launchers list`` shows what was detected."""
        return None


def _gpus(node: Node, problems: Problems):
    if node.value == "auto":
        return "auto"
    if not isinstance(node.value, list):
        problems.add(node, f"must be auto or a list of GPUs, got {r.shown(node)} "
                     "(fix: gpus: auto, or gpus: [{model: A100, memory: 80G}])")
        return r.Missing
    gpus = []
    for index, item in enumerate(node.value):
        if r.mapping(allowed_keys(Gpu))(item, problems) is r.Missing:
            return r.Missing
        memory = r.required(item, "memory", problems, r.memory())
        model = r.optional(item, "model", problems, r.text, "")
        device = r.optional(item, "device", problems, _device, str(index))
        if r.Missing in (memory, model, device):
            return r.Missing
        gpus.append(Gpu(device=device, model=model, memory=memory))
    return tuple(gpus)


def _device(node: Node, problems: Problems):
    value = node.value
    if isinstance(value, bool) or not isinstance(value, (int, str)) or str(value) == "":
        problems.add(node, f"must be a CUDA device index or UUID, got {r.shown(node)}")
        return r.Missing
    return str(value)


def total_memory() -> int:
    """Bytes of memory of this machine."""
    import psutil

    return int(psutil.virtual_memory().total)
