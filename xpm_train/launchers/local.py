"""Running jobs on this machine: resources reserved, GPUs pinned.

A job chosen for a local launcher

* reserves, before it starts, what its spec asks (cores, memory, GPUs, one
  job slot) from host-wide experimaestro counters sized as the launcher
  declares (:mod:`.tokens`), so that jobs of every experiment on the host
  together fit;
* once started, locks that many free GPUs and sets ``CUDA_VISIBLE_DEVICES``
  (:mod:`.gpurun`), through experimaestro's hook for code run at the top of
  the job script (``Launcher.launcher_info_code``) — before the task is
  imported, so before CUDA can initialise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from experimaestro.launchers import Launcher

from .gpurun import lock_dir
from .ranks import Layout
from .schema import LocalLauncherConfig
from .units import format_memory, mebibytes

if TYPE_CHECKING:
    from experimaestro.launcherfinder.specs import HostSimpleRequirement


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""Thread-pool sizes set to the job's cores: torch would otherwise use every
core of the host in each job, and concurrent jobs would slow each other down"""


@dataclass(frozen=True)
class Reservation:
    """What one job holds while it runs, per counter: (name, job's share, total)."""

    shares: tuple[tuple[str, int, int], ...]
    gpus: int

    @property
    def cores(self) -> int:
        """Cores reserved (the size of the job's thread pools)."""
        return next(share for resource, share, _ in self.shares if resource == "cores")

    @staticmethod
    def of(config: LocalLauncherConfig, requirement: "HostSimpleRequirement") -> "Reservation":
        gpus = len(requirement.accelerators)
        shares = [
            ("cores", max(1, requirement.cpu.cores), config.cores),
            ("memory-mib", mebibytes(requirement.cpu.memory), mebibytes(config.memory)),
            ("gpus", gpus, len(config.gpus)),
        ]
        if config.max_jobs:
            shares.append(("jobs", 1, config.max_jobs))
        return Reservation(tuple(s for s in shares if s[1] > 0), gpus)


def environment(config: LocalLauncherConfig, requirement: "HostSimpleRequirement",
                layout: Layout = Layout()) -> list[str]:
    """What a job of ``requirement`` gets on ``config``, in words (for ``explain``)."""
    reservation = Reservation.of(config, requirement)
    lines = []
    if layout.world_size > 1:
        device = "one pinned GPU each (cuda:RANK), nccl" if reservation.gpus else "cpu, gloo"
        lines.append(f"ranks: {layout.world_size} processes on this machine, XPM_TRAIN_RANKS="
                     f"{layout.world_size}: the job process is rank 0 and starts ranks 1..{layout.world_size - 1} "
                     "(the job script again, with RANK set); rank 0 writes")
        lines.append(f"each rank: {device}, {max(1, reservation.cores // layout.world_size)} thread(s)")
    if config.gpus:
        devices = ",".join(gpu.device for gpu in config.gpus)
        visible = (f"<{reservation.gpus} free of {devices}, chosen at start>"
                   if reservation.gpus else '""')
        lines.append(f"CUDA_VISIBLE_DEVICES={visible}  (GPU locks in {lock_dir()})")
    lines.append(f"{'='.join((THREAD_VARIABLES[0], str(reservation.cores)))} (and MKL_NUM_THREADS): "
                 "one thread per reserved core, unless either is already set")
    for resource, share, total in reservation.shares:
        if resource == "memory-mib":
            shown = (f"memory {format_memory(requirement.cpu.memory)} ({share} MiB) "
                     f"of {format_memory(config.memory)}")
        else:
            shown = f"{resource} {share} of {total}"
        lines.append(f"reserves {shown} (host-wide token xpm-train.{config.name}.{resource})")
    return lines


class LocalLauncher(Launcher):
    """experimaestro launcher for one job size on a ``type: local`` launcher."""

    def __init__(self, config: LocalLauncherConfig, requirement: "HostSimpleRequirement",
                 layout: Layout = Layout()):
        from .process import JobConnector

        super().__init__(JobConnector.instance(), priority=config.priority)
        self.config = config
        self.reservation = Reservation.of(config, requirement)
        self.layout = layout
        self.devices = [gpu.device for gpu in config.gpus]
        self.gpu_lock_dir = str(lock_dir())
        self.adopted: dict = {}
        """Jobs found running when this launcher was to start them (see :mod:`.process`)"""
        self.addListener(self._reserve)

    def _reserve(self, job) -> None:
        """Make the job wait for its share of every counter (experimaestro tokens)."""
        from .tokens import counter

        for resource, share, total in self.reservation.shares:
            job.dependencies.add(counter(self.config.name, resource, total).dependency(share))

    def processbuilder(self):
        """experimaestro's process builder; the job starts warm (forked by the
        user's fork server, see :mod:`.forkclient`) unless turned off."""
        from .forkclient import warm_command

        builder = super().processbuilder()
        builder.command = warm_command(self.reservation.cores)
        builder.adopted = self.adopted
        return builder

    def scriptbuilder(self):
        """experimaestro's Python script builder, which adopts a job another
        experiment has just started instead of rewriting its script (see :mod:`.process`)."""
        from .process import AdoptingScriptBuilder

        return AdoptingScriptBuilder(self.adopted)

    def launcher_info_code(self) -> str:
        """Job-script lines (inside ``if __name__ == '__main__':``, before torch is
        imported) that size the job's thread pools to its cores and pin its GPUs."""
        # A size the user set for one pool (OMP or MKL) is kept and given to the
        # other: torch takes the larger of the two
        code = (
            "    import os\n"
            f"    _threads = next(filter(None, map(os.environ.get, {THREAD_VARIABLES!r})), "
            f"'{self.reservation.cores}')\n"
            f"    for _name in {THREAD_VARIABLES!r}:\n"
            "        os.environ.setdefault(_name, _threads)\n"
        )
        if self.devices:
            pin = f"pin({self.reservation.gpus}, {self.devices!r}, {self.gpu_lock_dir!r})\n"
            if self.layout.world_size > 1:  # ranks > 0 (RANK set) use rank 0's GPUs
                pin = "if not os.environ.get('RANK'):\n        " + pin
            code += "    from xpm_train.launchers.gpurun import pin\n    " + pin
        return code

    def __str__(self) -> str:
        return (f"LocalLauncher({self.config.name}, gpus={self.reservation.gpus}, "
                f"reserves={dict((r, s) for r, s, _ in self.reservation.shares)})")
