"""Running jobs on a Slurm partition through experimaestro's ``SlurmLauncher``.

The sbatch options come from the spec (time, cores, memory, GPUs) and the
launcher (partition, account, qos, constraint, extra options), plus a
``--signal`` asking Slurm to warn the job before its time limit so that a
resumable task can checkpoint, stop, and be submitted again by the
scheduler (``xpm_train.learn.Learn`` does: SIGUSR1/SIGTERM -> checkpoint ->
``GracefulTimeout``; experimaestro resubmits a resumable task that ends so).
Slurm sends the signal to the job steps (``srun``), which forward it to the
task; ``B:USR1@60`` would reach only the batch shell. experimaestro writes the job's
``#SBATCH --output/--error`` into the job folder, so Slurm's own logs stay
beside the task's.

A job of several ranks (``processes=``/``nodes=``, see :mod:`.ranks`) asks
for ``--nodes=M --ntasks-per-node=K`` with ``--cpus-per-task`` the node's
cores divided by ``K``; experimaestro's script ends in ``srun ./<task>.py``,
which then starts the ``M x K`` ranks (``SLURM_PROCID`` > 0 runs as
experimaestro's "slave": no lock, no status), and ``XPM_TRAIN_RANKS`` tells
the task the world size it must find (:mod:`xpm_train.distributed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .ranks import Layout
from .schema import SlurmLauncherConfig
from .units import mebibytes, slurm_time

if TYPE_CHECKING:
    from experimaestro.launcherfinder.specs import HostSimpleRequirement
    from experimaestro.launchers.slurm import SlurmLauncher


@dataclass(frozen=True)
class SbatchOptions:
    """A fixed list of sbatch options, in the shape experimaestro's
    ``SlurmLauncher`` reads its ``options`` (``args()`` and ``merge()``)."""

    options: tuple[str, ...]

    def args(self) -> list[str]:
        return list(self.options)

    def merge(self, other) -> "SbatchOptions":
        """Options of ``other`` (e.g. experimaestro ``SlurmOptions``) come last and win."""
        return SbatchOptions(self.options + tuple(other.args()))

    def __str__(self) -> str:
        return " ".join(self.options)


def sbatch_options(config: SlurmLauncherConfig, requirement: "HostSimpleRequirement",
                   layout: Layout = Layout()) -> list[str]:
    """The sbatch options of one job of ``requirement`` on the partition of ``config``
    (cores, memory and GPUs are per node)."""
    options = [f"--nodes={layout.nodes}", f"--partition={config.partition}"]
    if layout.world_size > 1:
        options.append(f"--ntasks-per-node={layout.processes}")
    if requirement.duration:
        options.append(f"--time={slurm_time(requirement.duration)}")
    options.append(f"--cpus-per-task={max(1, requirement.cpu.cores // layout.processes)}")
    if requirement.cpu.memory:
        options.append(f"--mem={mebibytes(requirement.cpu.memory)}M")
    options.extend(_gpu_options(config, len(requirement.accelerators)))
    for key in ("account", "qos", "constraint"):
        if getattr(config, key):
            options.append(f"--{key}={getattr(config, key)}")
    if config.signal:
        options.append(f"--signal={config.signal}")
    options.extend(config.sbatch)
    return options


def _gpu_options(config: SlurmLauncherConfig, count: int) -> list[str]:
    if not count:
        return []
    if config.gpus.request == "gpus-per-node":
        return [f"--gpus-per-node={count}"]
    kind = f"gpu:{config.gpus.gres_type}" if config.gpus.gres_type else "gpu"
    return [f"--gres={kind}:{count}"]


def slurm_launcher(config: SlurmLauncherConfig, requirement: "HostSimpleRequirement",
                   layout: Layout = Layout()) -> "SlurmLauncher":
    """experimaestro ``SlurmLauncher`` submitting jobs of ``requirement``."""
    from experimaestro.launchers.slurm import SlurmLauncher

    return SlurmLauncher(
        options=SbatchOptions(tuple(sbatch_options(config, requirement, layout))),
        interval=config.poll_interval,
        binpath=config.binpath,
    )


def sbatch_command_line(config: SlurmLauncherConfig, requirement: "HostSimpleRequirement",
                        layout: Layout = Layout()) -> str:
    """The submission, as ``explain`` shows it (options also go in ``#SBATCH`` lines)."""
    options = " ".join(sbatch_options(config, requirement, layout))
    return f"{config.binpath}/sbatch --parsable {options} <job-folder>/<task>.sh"


def srun_lines(config: SlurmLauncherConfig, requirement: "HostSimpleRequirement",
               layout: Layout = Layout()) -> list[str]:
    """What the batch script runs, and what each rank sees (for ``explain``)."""
    if layout.world_size == 1:
        return []
    gpus = len(requirement.accelerators)
    device = f"cuda:SLURM_LOCALID of the node's {gpus} GPU(s), nccl" if gpus else "cpu, gloo"
    cores = max(1, requirement.cpu.cores // layout.processes)
    return [f"then: srun ./<task>.py -> {layout.world_size} tasks ({layout.nodes} node(s) x "
            f"{layout.processes}), XPM_TRAIN_RANKS={layout.world_size}",
            f"ranks: rank=SLURM_PROCID local=SLURM_LOCALID world=SLURM_NTASKS; master = first host of "
            f"SLURM_JOB_NODELIST, port 15000 + job id % 20000; rank 0 writes",
            f"each rank: {device}, {cores} core(s)"]
