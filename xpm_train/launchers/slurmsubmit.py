"""Submitting to Slurm: every ``sbatch`` of this package (jobs, arrays, pool
allocations) goes through :func:`sbatch_job_id`, which waits for a controller
that is restarting and turns a refusal into a one-line :class:`SubmissionRefused`
naming the site limit it hit and the fix (``max_submitted``)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
logger = logging.getLogger("xpm_train.launchers")


def sbatch_job_id(binpath: str, name: str, max_submitted: int | None, arguments: list[str], *,
                  script: str | None = None, env: dict | None = None) -> str:
    """``sbatch --parsable ARGUMENTS`` (the batch script in ``script``, on its
    standard input, when given) for the Slurm launcher ``name``: the job ID it
    printed; a refusal is a :class:`SubmissionRefused` naming the site limit it
    hit. Every submission of this package (jobs, arrays, pool allocations) goes
    through here."""
    command = [f"{binpath}/sbatch", "--parsable", *arguments]
    logger.info("slurm sbatch command: %s", " ".join(command))
    done = submit(command, dict(os.environ) if env is None else env, script)
    if done.returncode != 0:
        raise SubmissionRefused(refusal(done.stderr, name, max_submitted))
    jobid = re.match(r"(\d+)", done.stdout.strip())
    if jobid is None:
        raise SubmissionRefused(f"sbatch printed no job ID: {done.stdout.strip()!r}")
    return jobid.group(1)


UNREACHABLE_RE = re.compile(r"Unable to contact slurm controller \(connect failure\)|Connection refused")
"""What sbatch says when the controller is not there (the job was not submitted)"""
UNREACHABLE_WAIT = 120.0
"""Seconds a submission waits for an unreachable controller (restarting) before failing"""


def submit(command: list[str], env: dict, script: str | None = None) -> subprocess.CompletedProcess:
    """``sbatch``, tried again every 5 s for up to :data:`UNREACHABLE_WAIT` s while
    the controller cannot be reached (a refused connection submitted nothing, so
    trying again never submits a job twice)."""
    deadline = time.monotonic() + UNREACHABLE_WAIT
    while True:
        done = subprocess.run(command, input=script, capture_output=True, text=True, timeout=300, env=env)
        if done.returncode == 0 or not UNREACHABLE_RE.search(done.stderr) or time.monotonic() > deadline:
            return done
        logger.warning("sbatch: Slurm's controller does not answer (%s): trying again in 5 s",
                       done.stderr.strip().splitlines()[-1])
        time.sleep(5)


class SubmissionRefused(RuntimeError):
    """sbatch refused a job."""


LIMIT_RE = re.compile(r"\b(?:QOS|Assoc)\w*Max\w*Limit\b|\bMaxSubmitJobs?\w*|\bMaxArraySize\b"
                      r"|Job violates accounting/QOS policy")
"""What sbatch says when a site limit refuses a job"""


def refusal(stderr: str, launcher: str, max_submitted: int | None) -> str:
    """One line saying why sbatch refused a job of ``launcher``, and the fix
    when a site limit on submitted jobs is why."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    said = "; ".join(lines) or "no message"
    limit = LIMIT_RE.search(stderr)
    if limit is None:
        return f"sbatch refused the job of Slurm launcher {launcher!r}: {said}"
    now = f" (now {max_submitted})" if max_submitted else ""
    return (f"sbatch refused the job of Slurm launcher {launcher!r}: the site's limit "
            f"{limit.group(0)} was hit ({said}); fix: set max_submitted{now} in launchers.yaml "
            f"for {launcher!r} below the number of jobs Slurm lets you submit "
            f"(sacctmgr show assoc/qos: MaxSubmitJobs), so that jobs wait for room")
