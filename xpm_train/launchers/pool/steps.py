"""A job of a pool launcher: placed in an allocation with room, run as its job step.

:class:`PoolLauncher` is the experimaestro launcher that ``type: slurm`` with
``pool:`` builds for one job size. A job

* waits in the scheduler for its share of the pool's capacity (host-wide
  counters of cores, memory and GPU slots sized ``max_allocations`` x
  ``nodes`` x a node, :mod:`..tokens`), as a local job waits for its cores;
* once ready, is placed (under the registry's lock, :mod:`.registry`) on a
  node of an allocation with room and with time left for its ``duration``;
  else, while fewer than ``max_allocations`` exist, a new allocation is
  requested (:mod:`.allocations`); else it goes to the allocation with the
  most time left and Slurm starts the step when a step there ends;
* runs as ``srun --jobid=ALLOC --exact -N1 -n1 -w NODE -c CORES --mem=MEM
  [--gres=gpu:N] JOB_SCRIPT``, a local process in its own session that the
  job's ``.pid`` file names: it outlives the plan as a local job does, a
  re-run of the plan waits for it instead of starting the job again, and its
  exit is the step's end (Slurm's, however the step ended).

The placement also sets the allocation's ``Comment`` to the time of day: the
allocation's batch script counts it as a step, so that an allocation about to
end idle does not end under a job placed a moment before its step starts.

A step that ends before its job wrote its ``.done`` or ``.failed`` marker
(its node failed: ``srun`` then exits 0) fails the job (:class:`StepProcess`):
the ``.failed`` marker says what ``sacct`` says of the allocation
(``Slurm job 12: NODE_FAIL on n3 (sacct)``), and experimaestro does not take
it for done.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from experimaestro.connectors.local import LocalProcess
from experimaestro.launchers import Launcher

from ..process import AdoptingScriptBuilder, JobConnector, SharedWaitProcess, SharedWaitProcessBuilder
from ..reservation import thread_pool_code
from ..units import mebibytes
from . import allocations as slurm
from . import registry
from .config import check_cluster, check_job

if TYPE_CHECKING:
    from experimaestro.launcherfinder.specs import HostSimpleRequirement

    from ..kinds.slurm import SlurmLauncherConfig

logger = logging.getLogger("xpm_train.launchers")

GPUS_ENV = "XPM_TRAIN_POOL_GPUS"
"""The GPUs of a job sharing them (``jobs_per_gpu`` > 1), made its ``CUDA_VISIBLE_DEVICES``"""
TIME_MARGIN = 60
"""Seconds an allocation must have beyond a job's ``duration`` to take it"""
ENDED_SETTLE = 20.0
"""Seconds ``sacct`` may take to record the end of an allocation whose step ended without its job"""


@dataclass(frozen=True)
class Need:
    """What one job asks of a node."""

    cores: int
    memory_mib: int
    gpus: int
    duration: int


@dataclass(frozen=True)
class Place:
    allocation: str
    node: str
    """A host name, or ``#i`` (the i-th node) of an allocation not running yet"""
    gpu_slots: tuple[int, ...]


class PoolLauncher(Launcher):
    """experimaestro launcher for one job size on a Slurm launcher with ``pool:``."""

    def __init__(self, config: "SlurmLauncherConfig", requirement: "HostSimpleRequirement"):
        check_cluster(config)
        check_job(config, requirement)
        super().__init__(JobConnector.instance(), priority=config.priority)
        self.config = config
        cores = max(1, requirement.cpu.cores)
        memory = mebibytes(requirement.cpu.memory) or mebibytes(config.memory) * cores // config.cores
        self.need = Need(cores, memory, len(requirement.accelerators), int(requirement.duration or 0))
        self.adopted: dict = {}
        self.addListener(self._reserve)

    def capacity(self) -> dict[str, int]:
        """Per node: cores, MiB, GPU slots."""
        pool = self.config.pool
        return {"cores": self.config.cores, "memory-mib": mebibytes(self.config.memory),
                "gpu-slots": self.config.gpus.count * pool.jobs_per_gpu}

    def slots(self, gpus: int) -> int:
        """GPU slots a job of ``gpus`` GPUs takes (a whole GPU each beyond one shared)."""
        per = self.config.pool.jobs_per_gpu
        return 0 if not gpus else (1 if gpus == 1 and per > 1 else gpus * per)

    def _reserve(self, job) -> None:
        from ..tokens import counter

        pool = self.config.pool
        shares = {"cores": self.need.cores, "memory-mib": self.need.memory_mib,
                  "gpu-slots": self.slots(self.need.gpus)}
        for resource, share in shares.items():
            total = self.capacity()[resource] * pool.nodes * pool.max_allocations
            if share:
                job.dependencies.add(counter(self.config.name, f"pool-{resource}", total).dependency(share))

    def scriptbuilder(self):
        return AdoptingScriptBuilder(self.adopted)

    def processbuilder(self):
        builder = PoolProcessBuilder()
        builder.launcher = self
        builder.adopted = self.adopted
        return builder

    def launcher_info_code(self) -> str:
        """Job-script lines sizing the job's thread pools to its cores."""
        # a shared GPU: Slurm's step (--gres=none) does not show it; the job script does
        return (thread_pool_code(repr(str(self.need.cores))) +
                f"    if os.environ.get('{GPUS_ENV}'):\n"
                f"        os.environ['CUDA_VISIBLE_DEVICES'] = os.environ['{GPUS_ENV}']\n")

    def __str__(self) -> str:
        pool = self.config.pool
        return (f"PoolLauncher({self.config.name}, {pool.max_allocations} x {pool.nodes} node(s), "
                f"job: {self.need.cores} core(s), {self.need.memory_mib} MiB, {self.need.gpus} GPU(s))")

    # --- placement

    def place(self, script: str) -> tuple[Place, str]:
        """Where the job of ``script`` runs, and the registry folder (call under its lock)."""
        config, pool = self.config, self.config.pool
        found = [a for a in slurm.allocations(config.binpath, config.name) if a.usable]
        folder = registry.root() / config.name
        held = registry.holdings(folder, [a.jobid for a in found])
        fit = [p for a in found if (p := self.room(a, held[a.jobid]))]
        if fit:
            return fit[0], folder
        if len(found) < pool.max_allocations:
            logs = Path(script).parents[3] / "pools"  # the workspace's, seen from the nodes
            jobid = slurm.request(config, logs)
            logger.info("pool %s: requested allocation %s (%d of at most %d)", config.name, jobid,
                        len(found) + 1, pool.max_allocations)
            new = slurm.Allocation(jobid, "PENDING", pool.time, pool.nodes, "")
            return self.room(new, []) or Place(jobid, "#0", ()), folder
        latest = max(found, key=lambda a: a.time_left)
        return Place(latest.jobid, "", ()), folder  # Slurm starts the step when there is room

    def room(self, allocation: slurm.Allocation, held: list[registry.Held]) -> Place | None:
        """A node of ``allocation`` that can take the job now (None: none)."""
        if self.need.duration and allocation.time_left and \
                allocation.time_left < self.need.duration + TIME_MARGIN:
            return None
        nodes = node_names(self.config.binpath, allocation)
        capacity = self.capacity()
        per_gpu = self.config.pool.jobs_per_gpu
        for index, node in enumerate(nodes):
            mine = [h for h in held if h.node in (node, f"#{index}")]
            if sum(h.cores for h in mine) + self.need.cores > capacity["cores"] or \
                    sum(h.memory_mib for h in mine) + self.need.memory_mib > capacity["memory-mib"]:
                continue
            slots = free_slots(capacity["gpu-slots"], per_gpu, [s for h in mine for s in h.gpus],
                               self.slots(self.need.gpus))
            if slots is not None:
                return Place(allocation.jobid, node, slots)
        return None

    def step_command(self, place: Place, script: str) -> tuple[list[str], dict[str, str]]:
        """The command starting the job's step, and the variables it adds."""
        config, need = self.config, self.need
        srun = [f"{config.binpath}/srun", f"--jobid={place.allocation}", "--exact", "-N1", "-n1",
                f"--cpus-per-task={need.cores}", f"--mem={need.memory_mib}M",
                f"--job-name={Path(script).stem}-{Path(script).parent.name[:8]}", "--kill-on-bad-exit=1"]
        if place.node and not place.node.startswith("#"):
            srun.append(f"--nodelist={place.node}")
        env = {}
        if need.gpus and config.pool.jobs_per_gpu == 1:
            srun.extend(config.gpus.options(need.gpus))
        elif need.gpus:  # shared GPUs: xpm-train's slots, Slurm's whole-GPU binding left out
            srun.append("--gres=none")
            from ..gpus import GPU_SHARE_ENV

            env[GPUS_ENV] = ",".join(str(g) for g in sorted({s // config.pool.jobs_per_gpu
                                                                              for s in place.gpu_slots}))
            if len(place.gpu_slots) == 1:  # a share of one GPU
                env[GPU_SHARE_ENV] = f"{1 / config.pool.jobs_per_gpu:.6g}"
        from ...warm import forkclient

        if forkclient.enabled():  # forked by the allocation's fork server on the node
            env[forkclient.DIR_ENV] = slurm.warm_dir(place.allocation)
            env[forkclient.POOL_ENV] = place.allocation
            srun.extend(forkclient.warm_command(need.cores))
        srun.append(script)
        wait = (f"until {config.binpath}/squeue -h -j {place.allocation} -t R -o %i | grep -q .; do "
                f"{config.binpath}/squeue -h -j {place.allocation} -o %i | grep -q . || "
                f"{{ echo 'pool allocation {place.allocation} ended before the job started' >&2; exit 1; }}; "
                "sleep 0.5; done; exec \"$@\"")
        return ["/bin/sh", "-c", wait, "sh", *srun], env


class PoolProcessBuilder(SharedWaitProcessBuilder):
    """Starts a job of a :class:`PoolLauncher` as a job step (see the module)."""

    launcher: PoolLauncher

    def start(self, task_mode=False):
        if self.adopted and self.command:
            process = self.adopted.pop(os.path.realpath(self.command[-1]), None)
            if process is not None:
                return process
        script = str(self.command[-1])
        launcher = self.launcher
        with registry.locked(launcher.config.name):
            place, folder = launcher.place(script)
            self.command, env = launcher.step_command(place, script)
            self.environ = {**os.environ, **dict(self.environ or {}), **env}
            keep_alive(launcher.config.binpath, place.allocation)
            process = StepProcess(super().start(task_mode)._process, launcher.config.binpath,
                                  place.allocation, Path(script).parent)
            import psutil

            pid = process._process.pid
            registry.record(folder, place.allocation, registry.Held(
                job=str(Path(script).parent), node=place.node, cores=launcher.need.cores,
                memory_mib=launcher.need.memory_mib, gpus=place.gpu_slots, pid=pid,
                started=psutil.Process(pid).create_time()))
        logger.debug("pool %s: job %s -> allocation %s node %s", launcher.config.name,
                     Path(script).parent.name[:8], place.allocation, place.node or "any")
        return process


class StepProcess(SharedWaitProcess):
    """The ``srun`` of a job's step; a step that ended before its job wrote
    its marker fails the job, with Slurm's word on the allocation."""

    def __init__(self, process, binpath: str, allocation: str, folder: Path):
        super().__init__(process)
        self.binpath, self.allocation, self.folder = binpath, allocation, folder

    async def aio_wait(self) -> int:
        if self._exit is None:
            self._exit = asyncio.ensure_future(self._ended())
        return await asyncio.shield(self._exit)

    async def _ended(self) -> int:
        code = await LocalProcess.aio_wait(self)
        if job_ended(self.folder):
            return code
        await asyncio.to_thread(record_step_failure, self.binpath, self.allocation, self.folder, code)
        return code or 1


def record_step_failure(binpath: str, allocation: str, folder: Path, code: int) -> None:
    """The ``.failed`` marker of a job whose step ended (``code``) before it:
    the allocation's end state when Slurm ended it for a reason of its own
    (a lost node), else the step's exit code."""
    from ..slurmqueue import SACCT_FORMAT, sacct_nodes, sacct_states
    from ..slurmstate import SLURM_FAILURES, Watched, record_failure

    deadline = time.monotonic() + ENDED_SETTLE
    state, said = "", ""
    while time.monotonic() < deadline:
        said = subprocess.run([f"{binpath}/sacct", "-X", "-n", "-P", "-j", allocation, f"--format={SACCT_FORMAT}"],
                              capture_output=True, text=True, timeout=60).stdout
        state = sacct_states(said).get(allocation, "")
        if state.split(" ")[0] in SLURM_FAILURES or job_ended(folder):
            break
        time.sleep(1)
    if not job_ended(folder):  # (Watched: the allocation, seen as the job's Slurm job)
        record_failure(Watched(allocation, folder, None), state or "not in sacct",
                       sacct_nodes(said).get(allocation, ""),
                       f"; the job's step in this pool allocation ended (srun exit code {code}) before the job")


def job_ended(folder: Path) -> bool:
    """Whether the job in ``folder`` wrote its ``.done`` or ``.failed`` marker."""
    from ... import jobfolder

    return jobfolder.finished_state(folder) is not None


def free_slots(total: int, per_gpu: int, used: list[int], wanted: int) -> tuple[int, ...] | None:
    """``wanted`` free GPU slots of ``total`` (``per_gpu`` per GPU; ``used`` taken):
    a shared slot on the least used GPU, or whole free GPUs; None when they do not fit."""
    if not wanted:
        return ()
    taken = set(used)
    gpus = range(total // per_gpu) if per_gpu else ()
    free = {g: [g * per_gpu + k for k in range(per_gpu) if g * per_gpu + k not in taken] for g in gpus}
    if wanted == 1 and per_gpu > 1:
        open_gpus = sorted((g for g in gpus if free[g]), key=lambda g: -len(free[g]))
        return (free[open_gpus[0]][0],) if open_gpus else None
    whole = [g for g in gpus if len(free[g]) == per_gpu][:wanted // per_gpu]
    if len(whole) * per_gpu < wanted:
        return None
    return tuple(s for g in whole for s in free[g])


_NODES: dict[str, list[str]] = {}


def node_names(binpath: str, allocation: slurm.Allocation) -> list[str]:
    """The host names of a running allocation; ``#i`` placeholders before it runs."""
    if not allocation.running or not allocation.nodelist:
        return [f"#{i}" for i in range(max(1, allocation.nodes))]
    if allocation.jobid not in _NODES:
        out = slurm.command(binpath, "scontrol", "show", "hostnames", allocation.nodelist)
        _NODES[allocation.jobid] = out.split()
    return _NODES[allocation.jobid]


def keep_alive(binpath: str, jobid: str) -> None:
    """Tell the allocation's batch script that a step is coming (see the module)."""
    subprocess.run([f"{binpath}/scontrol", "update", f"JobId={jobid}", f"Comment={int(time.time())}"],
                   capture_output=True, timeout=30)


def pool_plan(config: "SlurmLauncherConfig", requirement: "HostSimpleRequirement") -> list[str]:
    """What a job gets on a pool, in words (``xpm-train launchers explain``)."""
    pool = config.pool
    cores = max(1, requirement.cpu.cores)
    gpus = len(requirement.accelerators)
    allocation = slurm.batch_script(config, Path("<workspace>/pools")).splitlines()
    options = " ".join(line.split(" ", 1)[1] for line in allocation if line.startswith("#SBATCH"))
    shared = (f", CUDA_VISIBLE_DEVICES=<1 of {pool.jobs_per_gpu} slots of a GPU>" if gpus == 1 and
              pool.jobs_per_gpu > 1 else (f", --gres=gpu:{gpus}" if gpus else ""))
    return [f"pool: up to {pool.max_allocations} allocation(s), each: sbatch {options} "
            f"(ends after {pool.idle}s without a step; shared by the user's plans)",
            f"each job: srun --jobid=<allocation> --exact -N1 -n1 -c {cores} --mem=... {shared} "
            "<job-folder>/<task>.py (one job step)"]
