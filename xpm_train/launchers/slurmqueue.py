"""What Slurm says about jobs: ``squeue`` and ``sacct`` output read.

Job IDs are Slurm's strings: ``123`` for a job, ``123_4`` for a task of an
array (as ``squeue -r`` and ``sacct`` list them), and a row of an array's
tasks not started is ``123_[5-9%2]``. The readers here are pure functions of
the commands' output, except :func:`queued`, which lists the queue (one call
per second at most, for every caller of the process).
"""

from __future__ import annotations

import getpass
import re
import subprocess
import time

SACCT_FORMAT = "JobID,State,ExitCode,NodeList"
"""The ``sacct --format`` of every reading here (``-X -n -P``)"""

_queued: dict[str, tuple[float, set[str]]] = {}
"""binpath -> (when, job IDs) of the last :func:`queued` listing"""


def queued(binpath, fresh: float = 1.0) -> set[str]:
    """This user's Slurm jobs in the queue (``squeue -h -r``: one ID per array task,
    ``123_4``), as listed at most ``fresh`` seconds ago; OSError when Slurm does not answer."""
    now = time.monotonic()
    when, listed = _queued.get(str(binpath), (float("-inf"), set()))
    if now - when > fresh:
        done = subprocess.run([f"{binpath}/squeue", "-h", "-r", "-o", "%i", "-u", getpass.getuser()],
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise OSError(f"squeue failed (exit {done.returncode}): {done.stderr.strip()}")
        listed = set(done.stdout.split())
        _queued[str(binpath)] = (now, listed)
    return listed


def sacct_states(output: str) -> dict[str, str]:
    """``JobID -> State`` of ``sacct -X -n -P --format=JobID,State,...`` output;
    a row of array tasks not started (``123_[0,2-3%2]``) gives each task
    (``123_0``, ``123_2``, ``123_3``) its state."""
    states = {}
    for line in output.splitlines():
        if "|" not in line:
            continue
        jobid, state = line.split("|")[:2]
        tasks = ARRAY_ROW.fullmatch(jobid)
        if tasks is None:
            states[jobid] = state
            continue
        for index in array_indices(tasks.group(2)):
            states.setdefault(f"{tasks.group(1)}_{index}", state)
    return states


ARRAY_ROW = re.compile(r"(\d+)_\[([\d,\-]+)(?:%\d+)?\]")
"""``sacct``'s or ``squeue``'s row of the tasks of an array not started"""


def array_indices(ranges: str) -> list[int]:
    """``0,2-3`` -> ``[0, 2, 3]`` (Slurm's array index set, without ``%K``)."""
    indices = []
    for part in filter(None, ranges.split(",")):
        first, _, last = part.partition("-")
        indices.extend(range(int(first), int(last or first) + 1))
    return indices


def master_of(jobid: str) -> str:
    """The job ID of an array task's array (``123_4`` -> ``123``); a job's own ID otherwise."""
    return jobid.split("_", 1)[0]


def sacct_nodes(output: str) -> dict[str, str]:
    """``JobID -> NodeList`` of ``sacct -X -n -P --format=`` :data:`SACCT_FORMAT` output."""
    rows = (line.split("|") for line in output.splitlines() if line.count("|") >= 3)
    return {row[0]: row[3] for row in rows if row[3] and row[3] != "None assigned"}
