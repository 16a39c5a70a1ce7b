"""``type: slurm``: jobs run on one Slurm partition, through experimaestro's ``SlurmLauncher``.

An entry offers one partition: ``partition``, ``account``, ``qos``,
``constraint`` (or ``features``), per-node ``cpu.cores`` and ``cpu.memory``,
``gpus: {count, model, memory, request, gres_type}``, ``max_time``, plus
``sbatch`` (extra options), ``signal`` (preemption signal), ``max_submitted``
(jobs submitted at once; more wait for room), ``max_jobs`` (tasks of one job
array running at once: jobs ready together go out as one array, see
:mod:`..slurmarray`), ``pool`` (jobs run as
job steps of shared allocations, see :mod:`..pool`), ``poll_interval``
(seconds between queue checks: a job's end is read from its folder, see
:mod:`..slurmstate`) and ``binpath`` (folder of sbatch/sacct).

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

A job of several ranks (``processes=``/``nodes=``, see :mod:`..ranks`) asks
for ``--nodes=M --ntasks-per-node=K`` with ``--cpus-per-task`` the node's
cores divided by ``K``; experimaestro's script ends in ``srun ./<task>.py``,
which then starts the ``M x K`` ranks (``SLURM_PROCID`` > 0 runs as
experimaestro's "slave": no lock, no status), and ``XPM_TRAIN_RANKS`` tells
the task the world size it must find (:mod:`xpm_train.distributed`), which
each rank reads with :class:`..slurmjob.SlurmJob`, this type's job side.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar, Literal, Sequence

from .. import readers as r
from ..ranks import JobSide, Layout
from ..slurmjob import SLURM_PORT_BASE, SLURM_PORT_SPAN, SlurmJob
from ..schema import Common, allowed_keys, key
from ..pool.config import PoolConfig, read_pool
from ..units import format_duration, format_memory, mebibytes, slurm_time
from ..yamlnodes import Node, Problems

if TYPE_CHECKING:
    from experimaestro.launcherfinder.specs import HostSimpleRequirement, HostSpecification
    from experimaestro.launchers.slurm import SlurmLauncher

    from ...diagnosis import Check

logger = logging.getLogger("xpm_train.launchers")

GpuRequest = Literal["gres", "gpus-per-node"]
SIGNAL_RE = re.compile(r"([RB]{1,2}:)?(SIG)?[A-Z0-9]+(@\d+)?")
DEFAULT_SIGNAL = "USR1@60"
DEFAULT_POLL_INTERVAL = 60.0
SLURM_COMMANDS = ("sbatch", "squeue", "sacct", "scancel")
"""What ``xpm-train doctor`` looks for on the PATH"""


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

    def options(self, count: int) -> list[str]:
        """The sbatch/srun options asking for ``count`` GPUs of a node (none for 0)."""
        if not count:
            return []
        if self.request == "gpus-per-node":
            return [f"--gpus-per-node={count}"]
        kind = f"gpu:{self.gres_type}" if self.gres_type else "gpu"
        return [f"--gres={kind}:{count}"]


@dataclass(frozen=True)
class SlurmLauncherConfig(Common):
    """One Slurm partition (a job gets one node of it, or ``nodes=M``)."""

    type: ClassVar[str] = "slurm"
    job: ClassVar[type[JobSide]] = SlurmJob
    auto: ClassVar[frozenset[str]] = frozenset()

    partition: str
    account: str | None
    qos: str | None
    constraint: str | None = field(metadata=key("constraint", aliases=("features",)))
    """``--constraint``; ``features: [a, b]`` in the file means ``a&b``"""
    cores: int = field(metadata=key("cpu.cores"))
    """CPUs per node"""
    memory: int = field(metadata=key("cpu.memory"))
    """Bytes per node"""
    gpus: SlurmGpus
    sbatch: tuple[str, ...]
    """Extra sbatch options, e.g. ``--exclusive``"""
    signal: str | None
    """``--signal`` value asking for a warning before the time limit"""
    poll_interval: float
    """Seconds between two ``squeue`` checks (for jobs that end without a marker)"""
    binpath: str
    """Folder of sbatch/sacct/squeue"""
    max_submitted: int | None
    """At most this many jobs of this launcher submitted and not ended at once,
    counted host-wide (a site's MaxSubmitJobs); None: no limit"""
    max_jobs: int | None = None
    """At most this many tasks of one job array running at once (``--array=...%K``);
    None: as many as Slurm allows"""
    pool: "PoolConfig | None" = None
    """Jobs run as job steps of allocations shared by the user's plans (:mod:`..pool`)"""

    @classmethod
    def read(cls, node: Node, problems: Problems, common: dict) -> "SlurmLauncherConfig | None":
        cpu_node = node.value.get("cpu")
        cpu = r.required(node, "cpu", problems, r.mapping(allowed_keys(cls, "cpu")))
        values = dict(
            common,
            partition=r.required(node, "partition", problems, r.text),
            account=r.optional(node, "account", problems, r.text, None),
            qos=r.optional(node, "qos", problems, r.text, None),
            constraint=_constraint(node, problems),
            cores=r.required(cpu_node, "cores", problems, r.integer(1)) if cpu_node else r.Missing,
            memory=r.required(cpu_node, "memory", problems, r.memory()) if cpu_node else r.Missing,
            gpus=r.optional(node, "gpus", problems, _gpus, SlurmGpus()),
            sbatch=r.optional(node, "sbatch", problems, _sbatch, ()),
            signal=r.optional(node, "signal", problems, _signal, DEFAULT_SIGNAL),
            poll_interval=r.optional(node, "poll_interval", problems, r.positive_number,
                                     DEFAULT_POLL_INTERVAL),
            binpath=r.optional(node, "binpath", problems, r.text, _default_binpath()),
            max_submitted=r.optional(node, "max_submitted", problems, r.integer(1), None),
            max_jobs=r.optional(node, "max_jobs", problems, r.integer(1), None),
        )
        values["pool"] = r.optional(node, "pool", problems, read_pool(common["max_time"]), None)
        if cpu is r.Missing or r.Missing in values.values():
            return None
        return cls(**values)

    def host(self) -> "HostSpecification":
        from experimaestro.launcherfinder.specs import (
            CPUSpecification,
            CudaSpecification,
            HostSpecification,
        )

        gpu = CudaSpecification(memory=self.gpus.memory, model=self.gpus.model)
        return HostSpecification(
            cpu=CPUSpecification(memory=self.memory, cores=self.cores),
            accelerators=[gpu] * self.gpus.count,
            priority=self.priority,
            max_duration=self.max_time,
        )

    def refuses(self, layout: Layout) -> str:
        if self.pool and layout.world_size > 1:
            return f"runs jobs of one process as pool steps ({layout.world_size} ranks need a Slurm launcher without pool:)"
        return ""

    def plan(self, requirement: "HostSimpleRequirement", layout: Layout = Layout()) -> list[str]:
        if self.pool:
            from ..pool.steps import pool_plan

            return pool_plan(self, requirement)
        return [sbatch_command_line(self, requirement, layout),
                *srun_lines(self, requirement, layout)]

    def site_options(self) -> list[str]:
        """The sbatch options every submission of this entry carries, a job's or a
        pool allocation's: account, qos, constraint, the warning signal, the extra options."""
        options = [f"--{key}={getattr(self, key)}" for key in ("account", "qos", "constraint")
                   if getattr(self, key)]
        if self.signal:
            options.append(f"--signal={self.signal}")
        return options + list(self.sbatch)

    def listing(self) -> tuple[str, str]:
        g = self.gpus
        gpus = f"{g.count}x {g.model} {format_memory(g.memory)}".strip() if g.count else ""
        limit = f", max {self.max_submitted} submitted" if self.max_submitted else ""
        if self.pool:
            p = self.pool
            limit += f", pool of {p.max_allocations} x {p.nodes} node(s) for {format_duration(p.time)}"
        return gpus, f"slurm partition {self.partition}{limit}"

    def launcher(self, requirement: "HostSimpleRequirement", layout: Layout) -> "SlurmLauncher":
        """experimaestro ``SlurmLauncher`` submitting jobs of ``requirement`` (with
        ``pool:``, the launcher running them as steps of the pool's allocations)."""
        if self.pool:
            from ..pool.steps import PoolLauncher

            return PoolLauncher(self, requirement)
        from ..slurmarray import ArraySlurmLauncher

        launcher = ArraySlurmLauncher(
            self.name, self.max_submitted, self.max_jobs,
            options=SbatchOptions(tuple(sbatch_options(self, requirement, layout))),
            interval=self.poll_interval,
            binpath=self.binpath,
        )
        late = late_signal(self.signal, requirement.duration)
        if late:
            launcher.addListener(warn_if_resumable(self.name, late))
        return launcher

    @classmethod
    def doctor(cls, launchers: Sequence["SlurmLauncherConfig"],
               which: Callable[[str], str | None] = shutil.which) -> "Check":
        """Slurm's commands are reachable and the declared partitions are up."""
        from ...diagnosis import OK, WARN, Check

        names = ", ".join(launcher.name for launcher in launchers)
        missing = [command for command in SLURM_COMMANDS if which(command) is None]
        if missing:
            return Check("slurm", WARN, f"launcher(s) {names} declared but {', '.join(missing)} not found: "
                         "jobs needing them cannot be submitted from this host",
                         "run plans from a Slurm login node (or `module load slurm`); local launchers still work")
        partitions = {launcher.partition for launcher in launchers}
        try:
            listed = subprocess.run([which("sinfo") or "sinfo", "-h", "-o", "%P"], capture_output=True,
                                    text=True, timeout=15)
            known = {p.strip().rstrip("*") for p in listed.stdout.split()}
        except (OSError, subprocess.SubprocessError) as error:
            return Check("slurm", WARN, f"sinfo failed ({error})", "check that the Slurm controller is reachable")
        unknown = sorted(partitions - known)
        if listed.returncode != 0 or unknown:
            why = listed.stderr.strip() or f"partition(s) {', '.join(unknown)} not in sinfo"
            return Check("slurm", WARN, f"launcher(s) {names}: {why}",
                         "correct `partition:` in launchers.yaml or check the cluster (sinfo)")
        return Check("slurm", OK, f"launcher(s) {names}: sbatch found, partition(s) "
                     f"{', '.join(sorted(partitions))} up")


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
    options.extend(config.gpus.options(len(requirement.accelerators)))
    options.extend(config.site_options())
    return options


def late_signal(signal: str | None, duration: float | None) -> str:
    """Why Slurm's warning cannot reach a job's task before its time limit
    (``""``: it can): no ``--signal``, one for the batch shell only (``B:``),
    or one due at or before the job starts (its ``@seconds`` >= the limit)."""
    if not signal:
        return "no signal: is set (signal: false)"
    if signal.startswith("B:"):
        return f"signal: {signal} reaches only the batch shell, not the task that srun starts"
    lead = int(signal.rpartition("@")[2]) if "@" in signal else 60  # Slurm's default: 60 s
    if duration and lead >= duration:
        return (f"signal: {signal} asks for the signal {lead}s before a time limit of "
                f"{int(duration)}s, that is when the job starts")
    return ""


WARNED: set[tuple[str, str]] = set()
"""(launcher, why) already warned about in this process"""


def warn_if_resumable(name: str, why: str) -> Callable:
    """A launcher listener warning once, at ``submit()`` of a resumable task,
    that Slurm's time limit will kill it without a checkpoint."""

    def check(job) -> None:
        if not getattr(job, "resumable", False) or (name, why) in WARNED:
            return
        WARNED.add((name, why))
        logger.warning("Slurm launcher %r: %s: resumable jobs (%s) will be killed at their time "
                       "limit without a checkpoint (fix: signal: USR1@<seconds below the time limit> "
                       "in launchers.yaml)", name, why, type(job.config).__qualname__.removesuffix(".XPMConfig"))

    return check


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
            f"SLURM_JOB_NODELIST, port {SLURM_PORT_BASE} + job id % {SLURM_PORT_SPAN}; rank 0 writes",
            f"each rank: {device}, {cores} core(s)"]


# --- reading the entry's own keys


def _gpus(node: Node, problems: Problems):
    if r.mapping(allowed_keys(SlurmGpus))(node, problems) is r.Missing:
        return r.Missing
    values = dict(
        count=r.optional(node, "count", problems, r.integer(0), 0),
        model=r.optional(node, "model", problems, r.text, ""),
        memory=r.optional(node, "memory", problems, r.memory(), 0),
        request=r.optional(node, "request", problems, r.choice("gres", "gpus-per-node"), "gres"),
        gres_type=r.optional(node, "gres_type", problems, r.text, ""),
    )
    if r.Missing in values.values():
        return r.Missing
    if values["count"] and not values["memory"]:
        problems.add(node, "memory is required when count > 0 (fix: e.g. memory: 40G)",
                     field=node.child("memory"))
        return r.Missing
    return SlurmGpus(**values)


def _constraint(node: Node, problems: Problems):
    constraint = r.optional(node, "constraint", problems, r.text, None)
    features = r.optional(node, "features", problems, r.words, None)
    if constraint is not None and features is not None:
        problems.add(node.value["features"], "give either constraint or features, not both")
        return r.Missing
    if features not in (None, r.Missing):
        return "&".join(features)
    return constraint


def _sbatch(node: Node, problems: Problems):
    items = node.value if isinstance(node.value, list) else [node]
    options = []
    for item in items:
        if not isinstance(item.value, str) or not item.value.startswith("-"):
            problems.add(item, f"sbatch options must be texts starting with '-', got "
                         f"{r.shown(item)} (fix: e.g. sbatch: ['--exclusive'])")
            return r.Missing
        options.append(item.value)
    return tuple(options)


def _signal(node: Node, problems: Problems):
    value = node.value
    if value is False or (isinstance(value, str) and value.lower() == "none"):
        return None
    if not isinstance(value, str) or not SIGNAL_RE.fullmatch(value):
        problems.add(node, f"must be a Slurm --signal value such as USR1@60 or B:USR1@60, "
                     f"got {r.shown(node)} (or false for none)")
        return r.Missing
    return value


def _default_binpath() -> str:
    sbatch = shutil.which("sbatch")
    return str(Path(sbatch).parent) if sbatch else "/usr/bin"
