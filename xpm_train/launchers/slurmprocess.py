"""The Slurm launcher of experimaestro whose jobs :class:`.slurmstate.SlurmWatcher` follows.

:class:`WatchedSlurmProcessBuilder` submits as experimaestro does and returns
a :class:`WatchedSlurmProcess`, whose ``aio_wait`` (what the scheduler awaits)
is answered by the watcher. Its ``.pid`` file names type ``slurm`` (any
experimaestro reads it) and its folder: a later plan of the workspace that
finds the job still queued (an array task pending included, which
experimaestro's own ``sacct`` reading cannot find: ``sacct`` lists pending
tasks as one row ``123_[4-9]``) follows it with the watcher
(:meth:`WatchedSlurmProcess.fromspec`, installed as the handler of type
``slurm`` by :func:`follow_slurm_jobs`) instead of submitting it again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from pathlib import Path

from experimaestro.launchers.slurm.base import BatchSlurmProcess, SlurmLauncher, SlurmProcessBuilder

from .slurmlimit import hold_a_submission
from .slurmqueue import queued
from .slurmstate import Ending, SlurmWatcher, marker_ending
from .slurmsubmit import sbatch_job_id

logger = logging.getLogger("xpm_train.launchers")


class WatchedSlurmProcess(BatchSlurmProcess):
    """experimaestro's Slurm job, whose end :class:`SlurmWatcher` tells."""

    def __init__(self, launcher, jobid: str, folder: Path):
        super().__init__(launcher, jobid)
        self.folder = Path(folder)
        self.ending: Ending | None = None

    async def aio_wait(self) -> int:
        if self.ending is None:
            watcher = SlurmWatcher.of(self.launcher.binpath, self.launcher.interval)
            self.ending = await asyncio.shield(watcher.ending(self.jobid, self.folder))
        return self.ending.code

    def wait(self) -> int:
        raise NotImplementedError("WatchedSlurmProcess is awaited (aio_wait), not waited for")

    async def aio_left_queue(self) -> None:
        """Once ``squeue`` no longer lists the job (Slurm counts it until then)."""
        if self.jobid:
            watcher = SlurmWatcher.of(self.launcher.binpath, self.launcher.interval)
            await asyncio.shield(watcher.left(self.jobid))

    def tospec(self):
        return {**super().tospec(), "folder": str(self.folder)}

    @classmethod
    def fromspec(cls, connector, spec: dict):
        """The job of a ``.pid`` file (type ``slurm``) followed by the watcher while
        Slurm still queues it (or it has ended, its marker says how); None when it
        left the queue without a marker, or not yet submitted. A ``.pid`` of
        experimaestro's own launcher (no folder): experimaestro's reading."""
        if not spec.get("folder"):
            return BatchSlurmProcess.fromspec(connector, spec)
        if not spec.get("pid"):
            return None
        launcher = SlurmLauncher(connector=connector, **dict(spec.get("options", ())))
        process = cls(launcher, spec["pid"], Path(spec["folder"]))
        if marker_ending(process.folder) is not None:
            return process
        try:
            listed = queued(launcher.binpath)
        except (OSError, subprocess.SubprocessError) as error:
            logger.warning("Slurm does not answer (%s): job %s is taken as still queued",
                           error, process.jobid)
            return process
        return process if process.jobid in listed else None

    async def aio_state(self, timeout: float | None = None):
        from experimaestro.connectors import ProcessState

        if self.ending is None:
            self.ending = marker_ending(self.folder)
        if self.ending is None:
            return ProcessState.RUNNING
        return ProcessState.DONE if self.ending.code == 0 else ProcessState.ERROR


class WatchedSlurmProcessBuilder(SlurmProcessBuilder):
    """experimaestro's sbatch submission of a job script, returning a
    :class:`WatchedSlurmProcess`; a refusal names the site limit it hit."""

    launcher: "WatchedSlurmLauncher"

    def start(self, task_mode: bool = False):
        if not task_mode:
            return super().start(task_mode)
        jobid = sbatch(self.launcher, *map(str, self.command))
        folder = Path(self.command[-1]).parent  # the job script is in the job folder
        return WatchedSlurmProcess(self.launcher, jobid, folder)


def sbatch(launcher: "WatchedSlurmLauncher", *arguments: str) -> str:
    """``sbatch --parsable ARGUMENTS`` for ``launcher``: the job ID it printed;
    a refusal is a :class:`SubmissionRefused` naming the site limit it hit."""
    return sbatch_job_id(launcher.binpath, launcher.name, launcher.max_submitted, list(arguments),
                         env={**os.environ, **(launcher.launcherenv or {})})


def follow_slurm_jobs() -> None:
    """Make :class:`WatchedSlurmProcess` the handler of ``.pid`` files of type
    ``slurm`` in this process (it reads experimaestro's own ones as experimaestro does)."""
    from experimaestro.connectors import Process

    Process.handler("slurm")  # experimaestro fills its table of handlers at the first call
    Process.HANDLERS["slurm"] = WatchedSlurmProcess


class WatchedSlurmLauncher(SlurmLauncher):
    """experimaestro's ``SlurmLauncher`` whose jobs :class:`SlurmWatcher`
    follows, with at most ``max_submitted`` jobs in Slurm's queue at once:
    each job holds one unit of a host-wide counter (:mod:`.slurmlimit`, shared
    by every plan of this host) from its submission until Slurm dropped it,
    and waits for one while none is free."""

    def __init__(self, name: str, max_submitted: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.name = name
        self.max_submitted = max_submitted
        if max_submitted:
            self.addListener(self._hold_a_submission)
        follow_slurm_jobs()

    def _hold_a_submission(self, job) -> None:
        hold_a_submission(self, job)

    def launcher_info_code(self) -> str:
        """experimaestro's lines, then the job's thread pools sized to the CPUs
        Slurm gave each task (``--cpus-per-task``): torch would otherwise start
        one thread per core of the node, whatever the job was given."""
        from .reservation import thread_pool_code

        return super().launcher_info_code() + thread_pool_code(
            "os.environ.get('SLURM_CPUS_PER_TASK') or 1")

    def processbuilder(self) -> WatchedSlurmProcessBuilder:
        return WatchedSlurmProcessBuilder(self)
