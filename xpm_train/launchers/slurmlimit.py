"""``max_submitted``: a unit of room per submitted Slurm job, given back once Slurm dropped it.

A Slurm launcher with ``max_submitted: N`` (:class:`.slurmprocess.WatchedSlurmLauncher`)
makes each of its jobs hold one unit of a host-wide counter
(:func:`.tokens.counter`, shared by every plan of the host) from its
submission to its end: beyond ``N`` jobs, a job waits for room instead of
``sbatch`` failing at the site's ``MaxSubmitJobs``.

Slurm counts a job until it leaves its queue, a moment after the job's task
ended: the task writes its ``.done`` / ``.failed`` marker, then its batch
script exits, then Slurm completes the job (``COMPLETING``, epilogue). An
experimaestro counter gives its unit back twice before that, both too early
for this counter:

- the job process itself deletes its lock file when its task returns (even
  before its marker): every plan of the host reads the unit free;
- the plan releases the lock when the job's wait returns, at its marker.

Here the job process leaves the lock file alone (:meth:`SubmissionLock.from_json`),
and the plan gives the unit back once ``squeue`` no longer lists the job
(:meth:`.slurmprocess.WatchedSlurmProcess.aio_left_queue`, at most
:data:`LEAVE_WAIT` seconds). A plan that died while its job was submitted
leaves the lock file behind: experimaestro's next acquisition of the counter
finds it orphaned (its job has no process any more) and removes it.
"""

from __future__ import annotations

import asyncio
import logging

from experimaestro.locking import JobDependencyLock
from experimaestro.tokens import CounterTokenDependency, CounterTokenLock

from .tokens import counter

logger = logging.getLogger("xpm_train.launchers")

LEAVE_WAIT = 120.0
"""Seconds a unit waits for its job to leave Slurm's queue before it is given back anyway"""


def hold_a_submission(launcher, job) -> None:
    """``job`` (of the Slurm launcher ``launcher``, which has ``max_submitted``) holds
    one unit of the launcher's submission counter from its submission until Slurm dropped it."""
    token = counter(launcher.name, "submitted", launcher.max_submitted)
    job.dependencies.add(SubmissionDependency(token, 1))


class SubmissionDependency(CounterTokenDependency):
    """One unit of a ``max_submitted`` counter."""

    def _create_lock(self) -> "SubmissionLock":
        return SubmissionLock(self)


class SubmissionLock(CounterTokenLock):
    """A unit of a ``max_submitted`` counter, given back once Slurm dropped the job (see the module)."""

    process = None
    """The job's process (a Slurm job), once started"""

    async def aio_job_started(self, job, process) -> None:
        self.process = process
        await super().aio_job_started(job, process)

    async def _aio_release(self):
        left = getattr(self.process, "aio_left_queue", None)
        if left is not None:
            try:
                await asyncio.wait_for(left(), LEAVE_WAIT)
            except asyncio.TimeoutError:
                logger.warning("Slurm job %s is still in squeue %.0f s after its end: its unit of "
                               "max_submitted is given back anyway", self.process.jobid, LEAVE_WAIT)
        await super()._aio_release()

    @classmethod
    def from_json(cls, data: dict) -> JobDependencyLock:
        """The job process's side: it holds nothing to give back (the plan does, see the module)."""
        return JobDependencyLock()
