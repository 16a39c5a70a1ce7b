"""When a Slurm job ends: read from its job folder, ``sacct`` only for the rest.

experimaestro 2.7's ``SlurmLauncher`` learns that a job ended by polling
``sacct`` (all the user's jobs, every ``interval`` seconds, in one thread per
process): a finished job holds its slot, and its dependents wait, for up to a
poll interval. Yet the job writes its ``.done`` / ``.failed`` marker into its
folder the moment it ends.

Here one thread per process (:class:`SlurmWatcher`, one per ``binpath``)
watches the jobs this process's Slurm launchers submitted:

- every :data:`TICK` seconds it stats each job's markers
  (:func:`xpm_train.jobfolder.finished_state`): a job that wrote one has
  ended, and the scheduler's wait returns at once;
- every ``poll_interval`` seconds it asks ``squeue`` (one call, this user's
  jobs) which of the others are still queued or running; only those that left
  the queue without a marker (cancelled, out of memory, node failure, time
  limit) are looked up in ``sacct`` (one ``sacct -j id1,id2,...`` call per
  :data:`SACCT_BATCH` jobs). A task of a job array (:mod:`.slurmarray`) is
  ``MASTER_INDEX`` (``123_4``, as ``squeue -r`` and ``sacct`` list it); its
  array is looked up whole, and a row of pending tasks (``123_[5-9%2]``)
  tells each of them. Such a job gets the ``.failed`` marker it could
  not write, in experimaestro's format, with Slurm's state as its message
  (``CANCELLED by 1000``), so the plan, ``xpm-train show`` and experimaestro
  all read it failed, for the reason Slurm gives.
- a job that stopped itself at a signal (a resumable task checkpoints and
  writes a ``.failed`` marker saying ``timeout``: experimaestro submits it
  again) is first settled with Slurm (:meth:`SlurmWatcher.settle`): ``scancel``
  also sends that signal, and a job Slurm cancelled is marked ``cancelled``
  with Slurm's word (not submitted again: the next run of the plan resumes it);
  a job Slurm requeued (``scontrol requeue``, preemption in ``REQUEUE`` mode)
  would run again in its folder once Slurm lets it (about 2 minutes later)
  beside the one the plan submits at once: the requeued copy is cancelled.
- a job whose task failed while Slurm still runs it (rank 0 of a job on
  several nodes fails at once when the node of another rank dies; Slurm ends
  the job ``NODE_FAIL`` only when it declares that node down, after its
  ``SlurmdTimeout``) is first settled with Slurm too, for up to
  :data:`FAILURE_SETTLE` s: when Slurm ended it for a reason of its own
  (:data:`SLURM_FAILURES`: a node lost, out of memory) its marker says so, so
  that the plan's summary names the node failure beside the task's error.

What Slurm answers is read in :mod:`.slurmqueue`; the launcher whose jobs this
watches is :class:`.slurmprocess.WatchedSlurmLauncher`.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import jobfolder
from ..atomic import atomic_write_json
from .slurmqueue import SACCT_FORMAT, master_of, queued, sacct_nodes, sacct_states

logger = logging.getLogger("xpm_train.launchers")

TICK = 0.5
"""Seconds between two looks at the markers of the running jobs"""
SACCT_BATCH = 500
"""Job IDs per ``sacct -j`` call"""
SACCT_TRIES = 5
"""Queue checks after which a job gone from ``squeue`` that ``sacct`` does not
know (or still shows running) is declared failed"""
REMOVED_TRIES = 2
"""Queue checks after which an array task gone from ``squeue`` while ``sacct``
lists its array but not the task is declared cancelled: a pending task
cancelled alone (``scancel 123_4``) leaves no record in Slurm"""
ENDED = {"CANCELLED": "cancelled", "TIMEOUT": "timeout", "OUT_OF_MEMORY": "memory",
         "DEADLINE": "timeout", "COMPLETED": "failed"}
"""experimaestro failure reason of a Slurm end state (``failed`` for the others);
a job COMPLETED without ``.done`` marker ended without running its task"""
SETTLE = 30.0
"""Seconds a job that stopped itself at a signal may stay in ``squeue`` before its
marker is believed (the job step ends a moment after the marker is written)"""
FAILURE_SETTLE = 120.0
"""Seconds a job whose task failed may stay in ``squeue`` before its marker is
believed (Slurm declares a dead node down after ``SlurmdTimeout``: 300 s by
default, 30 s on the test cluster)"""
SLURM_FAILURES = ("NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL")
"""``sacct`` states of a job that say more than its task's own ``.failed`` marker"""
REQUEUED_STATES = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "PREEMPTED")
"""``squeue`` states of a job that Slurm requeued after its task stopped"""
RUNNING_STATES = ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "REQUEUE", "RESIZING",
                  "SUSPENDED", "STAGE_OUT", "SIGNALING")


@dataclass
class Ending:
    """How a Slurm job ended."""

    code: int
    """0: ``.done`` marker; 1: failed"""
    reason: str = ""
    """The ``.failed`` marker's reason (``timeout``: the task stopped at a signal)"""
    slurm_state: str = ""
    """``sacct``'s State (``CANCELLED by 1000``), only for a job that wrote no marker"""


@dataclass
class Watched:
    jobid: str
    folder: Path
    loop: asyncio.AbstractEventLoop
    futures: list = field(default_factory=list)
    misses: int = 0
    """Queue checks at which it was gone from squeue without sacct telling its end"""
    settle_until: float = 0.0
    """While its ``timeout`` marker is being settled with Slurm: when to stop waiting"""


class SlurmWatcher(threading.Thread):
    """The jobs of this process's Slurm launchers of one ``binpath`` (see the module)."""

    WATCHERS: dict[str, "SlurmWatcher"] = {}
    LOCK = threading.Lock()

    def __init__(self, binpath: str):
        super().__init__(daemon=True, name=f"xpm-train slurm watcher {binpath}")
        self.binpath = Path(binpath)
        self.interval = float("inf")
        """Seconds between queue checks: the smallest poll_interval of the launchers using it
        in this process"""
        self.jobs: dict[str, Watched] = {}
        self.leaving: dict[str, list] = {}
        """Jobs ended whose departure from the queue is awaited: jobid -> [(loop, future)]"""
        self.wake = threading.Condition()
        self.next_queue_check = 0.0
        self.silent_since = 0.0
        """When Slurm's commands started failing (0: they answer)"""

    @classmethod
    def of(cls, binpath, interval: float) -> "SlurmWatcher":
        with cls.LOCK:
            watcher = cls.WATCHERS.get(str(binpath))
            if watcher is None:
                watcher = cls.WATCHERS[str(binpath)] = cls(str(binpath))
                watcher.start()
            if interval < watcher.interval:
                watcher.interval = interval
                watcher.next_queue_check = min(watcher.next_queue_check, time.monotonic() + interval)
            return watcher

    def ending(self, jobid: str, folder: Path) -> "asyncio.Future[Ending]":
        """A future (of the running loop) set when the job ``jobid`` in ``folder`` ends."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self.wake:
            watched = self.jobs.setdefault(jobid, Watched(jobid, Path(folder), loop))
            watched.futures.append(future)
            self.wake.notify()
        return future

    def left(self, jobid: str) -> asyncio.Future:
        """A future (of the running loop) set once ``squeue`` no longer lists ``jobid``
        (asked every :data:`TICK` seconds while some job is awaited)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self.wake:
            self.leaving.setdefault(jobid, []).append((loop, future))
            self.wake.notify()
        return future

    def run(self):
        while True:
            with self.wake:
                self.wake.wait_for(lambda: self.jobs or self.leaving, timeout=None)
                jobs = list(self.jobs.values())
            if self.leaving:
                self.check_leaving()
            ended = {w.jobid: e for w in jobs if (e := self.ended(w))}
            waiting = [w for w in jobs if w.jobid not in ended and not w.settle_until]
            if waiting and time.monotonic() >= self.next_queue_check:
                self.next_queue_check = time.monotonic() + self.interval
                try:
                    ended.update(self.check_queue(waiting))
                except (OSError, subprocess.SubprocessError) as error:
                    self.unanswered(error)
                else:
                    self.answered()
            for jobid, ending in ended.items():
                self.finish(jobid, ending)
            time.sleep(TICK)

    def check_leaving(self) -> None:
        """Tell the jobs awaited by :meth:`left` that ``squeue`` no longer lists
        (kept for the next tick while Slurm does not answer)."""
        try:
            listed = queued(self.binpath, fresh=0)
        except (OSError, subprocess.SubprocessError):
            return
        with self.wake:
            gone = {jobid: self.leaving.pop(jobid) for jobid in list(self.leaving) if jobid not in listed}
        for waiters in gone.values():
            for loop, future in waiters:
                loop.call_soon_threadsafe(_set, future, True)

    def unanswered(self, error: Exception) -> None:
        """Said once per outage: the controller restarting, the accounting down..."""
        if not self.silent_since:
            self.silent_since = time.monotonic()
            logger.warning("Slurm does not answer (%s): its jobs are followed by their markers "
                           "meanwhile; asking again every %ss", error, self.interval)

    def answered(self) -> None:
        if self.silent_since:
            logger.warning("Slurm answers again after %.0fs: the jobs it ended meanwhile are "
                           "read from it now", time.monotonic() - self.silent_since)
            self.silent_since = 0.0

    def ended(self, watched: Watched) -> Ending | None:
        """How ``watched`` ended, from its marker (settled with Slurm when it says
        ``timeout``); None: not yet."""
        ending = marker_ending(watched.folder)
        if ending is None or ending.code == 0:
            return ending
        signalled = ending.reason in ("timeout", "cancelled")
        if not watched.settle_until:
            watched.settle_until = time.monotonic() + (SETTLE if signalled else FAILURE_SETTLE)
        try:
            return self.settle(watched, ending.reason) if signalled else self.settle_failure(watched, ending)
        except (OSError, subprocess.SubprocessError) as error:
            if time.monotonic() < watched.settle_until:
                return None  # asked again at the next tick
            logger.warning("Slurm job %s %s; Slurm does not say why (%s)", watched.jobid,
                           "stopped at a signal" if signalled else "failed", error)
            return ending

    def settle(self, watched: Watched, reason: str) -> Ending | None:
        """A job whose task stopped at a signal (its marker says ``reason``:
        ``timeout`` when it saved a checkpoint, ``cancelled`` when experimaestro's
        own SIGTERM handler wrote it, e.g. at a second SIGTERM), once Slurm says why
        (see the module); None while Slurm still lists it running, for up to :data:`SETTLE` s."""
        listed = self.command("squeue", "-h", "-j", watched.jobid, "-o", "%T", check=False).split()
        state = listed[0] if listed else ""
        if state.startswith(REQUEUED_STATES):
            self.command("scancel", watched.jobid)
            logger.warning("Slurm job %s was requeued (%s) after its task stopped: it is cancelled, "
                           "the plan submits the job again at once", watched.jobid, state)
            if reason != "timeout":  # experimaestro resubmits a job whose marker says timeout
                atomic_write_json(jobfolder.marker(watched.folder, "failed"), {
                    "code": 1, "reason": "timeout",
                    "message": f"Slurm job {watched.jobid}: requeued ({state}), submitted again"})
            return Ending(1, reason="timeout", slurm_state=f"REQUEUED ({state})")
        if state and time.monotonic() < watched.settle_until:
            return None  # still running or completing
        said = self.command("sacct", "-X", "-n", "-P", "-j", watched.jobid, f"--format={SACCT_FORMAT}")
        state = sacct_states(said).get(watched.jobid, "")
        if state.startswith("CANCELLED"):
            saved = "its task saved a checkpoint: " if reason == "timeout" else ""
            return record_failure(watched, state, sacct_nodes(said).get(watched.jobid, ""),
                                  f"; {saved}the next run of the plan resumes it")
        return Ending(1, reason=reason)

    def settle_failure(self, watched: Watched, ending: Ending) -> Ending | None:
        """A job whose task failed (see the module): its marker, or Slurm's
        word when Slurm ended it for a reason of its own; None while Slurm
        still lists it, for up to :data:`FAILURE_SETTLE` s."""
        listed = self.command("squeue", "-h", "-j", watched.jobid, "-o", "%T", check=False).split()
        if listed and time.monotonic() < watched.settle_until:
            return None  # another rank, or the step, still runs (or a node is not yet declared down)
        said = self.command("sacct", "-X", "-n", "-P", "-j", watched.jobid, f"--format={SACCT_FORMAT}")
        state = sacct_states(said).get(watched.jobid, "")
        if state.startswith(RUNNING_STATES) and time.monotonic() < watched.settle_until:
            return None  # (squeue did not answer)
        if state.split(" ")[0] not in SLURM_FAILURES:
            return ending
        return record_failure(watched, state, sacct_nodes(said).get(watched.jobid, ""),
                              "; its task failed first (see its log)")

    def finish(self, jobid: str, ending: Ending) -> None:
        with self.wake:
            watched = self.jobs.pop(jobid)
        for future in watched.futures:
            watched.loop.call_soon_threadsafe(_set, future, ending)

    def check_queue(self, jobs: list[Watched]) -> dict[str, Ending]:
        """The jobs of ``jobs`` that left the queue without a marker, with sacct's word on them."""
        if not jobs:
            return {}
        listed = queued(self.binpath, fresh=0)  # one line per array task (123_4), pending ones included
        gone = [w for w in jobs if w.jobid not in listed]
        ended = {w.jobid: e for w in gone if (e := marker_ending(w.folder))}  # ended meanwhile
        gone = [w for w in gone if w.jobid not in ended]
        states, nodes = {}, {}
        masters = sorted({master_of(w.jobid) for w in gone})
        for start in range(0, len(masters), SACCT_BATCH):
            ids = ",".join(masters[start:start + SACCT_BATCH])
            said = self.command("sacct", "-X", "-n", "-P", "-j", ids, f"--format={SACCT_FORMAT}")
            states.update(sacct_states(said))
            nodes.update(sacct_nodes(said))
        known = {master_of(jobid) for jobid in states}
        for watched in gone:
            state = states.get(watched.jobid, "")
            if state and not state.startswith(RUNNING_STATES):
                ended[watched.jobid] = record_failure(watched, state, nodes.get(watched.jobid, ""))
                continue
            watched.misses += 1
            # gone from squeue -r, which lists every pending task: removed while
            # pending, whether sacct has no record of it or (slurmdbd late) still
            # lists it in the array's row of pending tasks
            removed = ("_" in watched.jobid and state in ("", "PENDING")
                       and master_of(watched.jobid) in known)
            if removed and watched.misses >= REMOVED_TRIES:
                ended[watched.jobid] = record_failure(
                    watched, f"CANCELLED (removed from array {master_of(watched.jobid)} while "
                             "pending: Slurm keeps no record of such a task)")
            elif watched.misses >= SACCT_TRIES:
                ended[watched.jobid] = record_failure(
                    watched, state or "not in squeue, unknown to sacct")
        return ended

    def command(self, name: str, *args: str, check: bool = True) -> str:
        done = subprocess.run([str(self.binpath / name), *args], capture_output=True, text=True,
                              timeout=60)
        if done.returncode != 0 and check:
            raise OSError(f"{name} failed (exit {done.returncode}): {done.stderr.strip()}")
        return done.stdout


def _set(future: asyncio.Future, result) -> None:
    if not future.done():
        future.set_result(result)


def marker_ending(folder: Path) -> Ending | None:
    """The end a job's marker tells (None: no marker yet, or ``.failed`` being written)."""
    state = jobfolder.finished_state(folder)
    if state != "failed":
        return None if state is None else Ending(0)
    said = jobfolder.failure(folder)
    return None if said is None else Ending(1, str(said.get("reason", "")))


def record_failure(watched: Watched, state: str, nodes: str = "", more: str = "") -> Ending:
    """Write the ``.failed`` marker a job killed by Slurm could not write (or
    could not know: ``more`` adds what its own marker said), with the nodes it ran on."""
    reason = ENDED.get(state.split()[0], "failed")
    where = f" on {nodes}" if nodes else ""
    message = f"Slurm job {watched.jobid}: {state}{where} (sacct){more}"
    logger.warning("%s (job folder %s)", message, watched.folder)
    atomic_write_json(jobfolder.marker(watched.folder, "failed"),
                      {"code": 1, "reason": reason, "message": message})
    return Ending(1, reason, state)
