"""Slurm job arrays: the jobs that become ready together go out in one ``sbatch --array``.

experimaestro submits each job with its own ``sbatch`` (its ``<task>.sh`` in
its folder). Here the process builder of a Slurm launcher
(:class:`ArraySlurmLauncher`) does not submit at once: it puts the job in the
open batch of its launcher (same ``binpath``, sbatch options and
environment) and returns an :class:`ArrayTaskProcess`. A batch is submitted
when no job joined it for :data:`WINDOW` seconds (or when it has been open
:data:`LONGEST` seconds):

- one job: ``sbatch <task>.sh``, as experimaestro does;
- several: one ``sbatch --array=0-N%K`` of a script
  (``WORKSPACE/slurm-arrays/<stamp>/array.sh``) whose task ``i`` runs the
  ``i``-th job's own ``<task>.sh`` in its own folder; Slurm's output of the
  task goes to that job's ``<task>.out`` / ``<task>.err`` (through the links
  ``i.out`` / ``i.err`` beside the script), ``K`` is the launcher's
  ``max_jobs`` (tasks running at once), and an array holds at most the
  site's ``MaxArraySize`` tasks (more: several arrays, said in one log line).

Task ``i`` of array ``123`` is the Slurm job ``123_i`` (its ``.pid`` file says
so): :class:`~.slurmstate.SlurmWatcher` tells its end from its folder's
marker, else from ``squeue -r`` and ``sacct``; ``scancel 123_i`` cancels it.
Only jobs that are not done reach a launcher (experimaestro skips a job whose
``.done`` marker is there), so a plan run again submits the missing jobs
only; a job that fails, or is resubmitted after its time limit, goes out
again alone or in a later batch; a job waiting for another (an Evaluate for
its Learn) reaches the launcher when that one ended, in a later batch.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import shlex
import socket
import subprocess
import time
from pathlib import Path

from .. import jobfolder
from ..atomic import atomic_write_json, atomic_write_text
from .slurmprocess import WatchedSlurmLauncher, WatchedSlurmProcess, WatchedSlurmProcessBuilder, sbatch
from .slurmsubmit import SubmissionRefused

logger = logging.getLogger("xpm_train.launchers")

WINDOW = 0.5
"""Seconds without a new job after which a batch is submitted"""
LONGEST = 10.0
"""Seconds after which an open batch is submitted even if jobs keep joining it"""
ARRAYS = "slurm-arrays"
"""Folder of the workspace holding the array scripts (one folder per array)"""
DEFAULT_MAX_ARRAY_SIZE = 1001
"""Slurm's default ``MaxArraySize`` (used when ``scontrol show config`` does not answer)"""

_open: dict[tuple, "Batch"] = {}
"""The open batch of each (event loop, binpath, options, environment); used from the loop only"""
_arrays = itertools.count()


class ArraySlurmLauncher(WatchedSlurmLauncher):
    """A Slurm launcher whose jobs go out in batches (see the module); ``max_jobs``:
    at most this many tasks of one array run at once (``--array=...%max_jobs``)."""

    def __init__(self, name: str, max_submitted: int | None = None, max_jobs: int | None = None,
                 **kwargs):
        super().__init__(name, max_submitted, **kwargs)
        self.max_jobs = max_jobs

    def processbuilder(self) -> "ArrayProcessBuilder":
        return ArrayProcessBuilder(self)


class ArrayProcessBuilder(WatchedSlurmProcessBuilder):
    launcher: ArraySlurmLauncher

    def start(self, task_mode: bool = False):
        if not task_mode:
            return super().start(task_mode)
        process = ArrayTaskProcess(self.launcher, Path(self.command[-1]))
        Batch.of(self.launcher).add(process)
        return process


class ArrayTaskProcess(WatchedSlurmProcess):
    """A job put in a batch: its Slurm job ID (``123`` alone, ``123_4`` in an
    array) is known once its batch was submitted."""

    def __init__(self, launcher: ArraySlurmLauncher, script: Path):
        super().__init__(launcher, None, script.parent)
        self.script = script
        """The job's own ``<task>.sh`` (in its folder)"""
        self.submitted: asyncio.Future = asyncio.get_running_loop().create_future()
        self.dropped = False

    async def aio_wait(self) -> int:
        try:
            await asyncio.shield(self.submitted)
        except (SubmissionRefused, OSError, subprocess.SubprocessError) as error:
            logger.error("%s", error)
            atomic_write_json(jobfolder.marker(self.folder, "failed"),
                              {"code": 1, "reason": "failed", "message": str(error)})
            return 1
        return await super().aio_wait()

    def kill(self):
        if self.jobid is None and not self.submitted.done():
            self.dropped = True  # its batch leaves it out
            self.submitted.set_exception(SubmissionRefused("killed before it was submitted"))
            return
        super().kill()


class Batch:
    """Jobs of one launcher waiting to be submitted together."""

    def __init__(self, key: tuple, launcher: ArraySlurmLauncher, loop: asyncio.AbstractEventLoop):
        self.key, self.launcher, self.loop = key, launcher, loop
        self.processes: list[ArrayTaskProcess] = []
        self.opened = loop.time()
        self.timer: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, launcher: ArraySlurmLauncher) -> "Batch":
        loop = asyncio.get_running_loop()
        env = tuple(sorted((launcher.launcherenv or {}).items()))
        key = (id(loop), str(launcher.binpath), tuple(launcher.options.args()), env)
        batch = _open.get(key)
        if batch is None:
            batch = _open[key] = cls(key, launcher, loop)
        return batch

    def add(self, process: ArrayTaskProcess) -> None:
        self.processes.append(process)
        if self.timer is not None:
            self.timer.cancel()
        late = self.loop.time() - self.opened >= LONGEST
        self.timer = self.loop.call_later(0 if late else WINDOW, self.close)

    def close(self) -> None:
        if _open.get(self.key) is self:
            del _open[self.key]
        processes = [p for p in self.processes if not p.dropped]
        if processes:
            self.loop.create_task(submit_batch(self.launcher, processes))


async def submit_batch(launcher: ArraySlurmLauncher, processes: list[ArrayTaskProcess]) -> None:
    """Submit ``processes`` (sbatch runs in a thread) and tell each its job ID or refusal."""
    loop = asyncio.get_running_loop()
    try:
        outcomes = await loop.run_in_executor(None, submit, launcher, processes)
    except Exception as error:  # noqa: BLE001 - every job of the batch is told
        outcomes = [error] * len(processes)
    for process, outcome in zip(processes, outcomes):
        if process.submitted.done():
            continue
        if isinstance(outcome, Exception):
            process.submitted.set_exception(outcome)
        else:
            process.jobid = outcome
            process.submitted.set_result(outcome)
    await loop.run_in_executor(None, write_pids, [p for p in processes if p.jobid])


def submit(launcher: ArraySlurmLauncher, processes: list[ArrayTaskProcess]) -> list:
    """The Slurm job ID (or the refusal) of each process, in order."""
    if len(processes) == 1:
        return [_outcome(lambda: sbatch(launcher, str(processes[0].script)))]
    size = max_array_size(launcher.binpath)
    chunks = [processes[start:start + size] for start in range(0, len(processes), size)]
    if len(chunks) > 1:
        logger.warning("Slurm launcher %r: %d jobs ready together go out as %d arrays "
                       "(the site's MaxArraySize is %d)", launcher.name, len(processes),
                       len(chunks), size)
    outcomes = []
    for chunk in chunks:
        master = _outcome(lambda: sbatch(launcher, str(write_array(launcher, chunk))))
        outcomes += [master if isinstance(master, Exception) else f"{master}_{index}"
                     for index in range(len(chunk))]
    return outcomes


def _outcome(call):
    try:
        return call()
    except (SubmissionRefused, OSError, subprocess.SubprocessError) as error:
        return error


def write_array(launcher: ArraySlurmLauncher, processes: list[ArrayTaskProcess]) -> Path:
    """The array script of ``processes`` (task ``i`` runs the ``i``-th job), in its own
    folder of the workspace, with the links of each task's output."""
    workspace = jobfolder.workspace_of(processes[0].folder)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    folder = workspace / ARRAYS / f"{stamp}-{os.getpid()}-{next(_arrays)}"
    folder.mkdir(parents=True)
    for index, process in enumerate(processes):
        (folder / f"{index}.out").symlink_to(process.script.with_suffix(".out"))
        (folder / f"{index}.err").symlink_to(process.script.with_suffix(".err"))
    names = {process.script.name for process in processes}
    throttle = f"%{launcher.max_jobs}" if launcher.max_jobs and launcher.max_jobs < len(processes) else ""
    lines = ["#!/bin/sh", "",
             f"#SBATCH --array=0-{len(processes) - 1}{throttle}",
             f"#SBATCH --job-name={names.pop() if len(names) == 1 else 'xpm-train-array'}",
             f"#SBATCH --chdir={shlex.quote(str(folder))}",
             f"#SBATCH --output={shlex.quote(str(folder))}/%a.out",
             f"#SBATCH --error={shlex.quote(str(folder))}/%a.err",
             *(f"#SBATCH {option}" for option in launcher.options.args()),
             "",
             f"# {len(processes)} xpm-train jobs: task i runs the i-th job's script in its folder",
             'case "$SLURM_ARRAY_TASK_ID" in']
    lines += [f"{index}) cd {shlex.quote(str(p.folder))} && exec /bin/sh ./{shlex.quote(p.script.name)} ;;"
              for index, p in enumerate(processes)]
    lines += ["esac", 'echo "xpm-train: no job for array task $SLURM_ARRAY_TASK_ID" >&2', "exit 1", ""]
    script = folder / "array.sh"
    atomic_write_text(script, "\n".join(lines))
    script.chmod(0o755)
    return script


def write_pids(processes: list[ArrayTaskProcess]) -> None:
    """Each job's ``.pid`` file names its Slurm job (experimaestro wrote it before the
    batch was submitted, without an ID)."""
    host = socket.gethostname()
    for process in processes:
        if jobfolder.finished_state(process.folder) is not None:
            continue  # ended already: experimaestro removed its .pid
        atomic_write_json(jobfolder.marker(process.folder, "pid"), {**process.tospec(), "host": host},
                          indent=None)


MAX_ARRAY_SIZE_RE = re.compile(r"^MaxArraySize\s*=\s*(\d+)", re.MULTILINE)


def max_array_size(binpath) -> int:
    """The site's ``MaxArraySize`` (array indices go from 0 to it minus one),
    asked at each submission (a site may change it)."""
    try:
        done = subprocess.run([f"{binpath}/scontrol", "show", "config"], capture_output=True,
                              text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return DEFAULT_MAX_ARRAY_SIZE
    found = MAX_ARRAY_SIZE_RE.search(done.stdout)
    return max(1, int(found.group(1))) if found else DEFAULT_MAX_ARRAY_SIZE
