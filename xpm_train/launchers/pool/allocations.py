"""A pool's allocations as Slurm lists them, and requesting one.

An allocation is one sbatch job named ``xpm-pool-<launcher>`` whose batch
script (:func:`batch_script`) only holds it: every few seconds it asks
``squeue`` for the allocation's steps and exits after ``idle`` seconds
without any, which ends the allocation. Nothing outside Slurm keeps it alive,
so an allocation whose plans are gone (ended, or SIGKILLed) goes ``idle``
seconds after its last step. Slurm is the registry of allocations: every
plan of the user lists them with ``squeue --name`` (:func:`allocations`).

The entry's time-limit warning (``signal: USR1@60``) is asked for the batch
shell (``--signal=B:USR1@60``), which passes it on to the job steps with
``scancel --signal`` (:func:`forward_signal`), not to the fork servers' step:
Slurm would signal every process of every step, and the servers have no
handler for it: each died of it (``srun: error: n1: task 0: User defined
signal 1`` in the allocation's log), leaving the allocation without a warm
server for its last steps, its forked jobs without their server.
An allocation is not requeued (``--no-requeue``): one preempted or on a
failed node ends, its jobs end (a preempted job saves and is resubmitted by
experimaestro), and their next run goes to another allocation.
"""

from __future__ import annotations

import getpass
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..units import mebibytes, slurm_time
from .config import slurm_seconds

if TYPE_CHECKING:
    from ..kinds.slurm import SlurmLauncherConfig

PREFIX = "xpm-pool-"
"""Job name of an allocation: this prefix and the launcher's name"""
SERVER_STEP = "xpm-forkserver"
"""Job-step name of the fork servers an allocation runs (not a job: not counted as busy)"""
IDLE_TICK_MAX = 10
"""At most this many seconds between two looks at an allocation's steps"""
STARTING = ("PENDING", "CONFIGURING")


@dataclass(frozen=True)
class Allocation:
    """One allocation of a pool, as ``squeue`` shows it."""

    jobid: str
    state: str
    time_left: int
    """Seconds (0: unknown or none)"""
    nodes: int
    nodelist: str

    @property
    def running(self) -> bool:
        return self.state == "RUNNING"

    @property
    def usable(self) -> bool:
        return self.state in STARTING or self.state == "RUNNING"


def job_name(launcher: str) -> str:
    return PREFIX + launcher


def allocations(binpath: str, launcher: str) -> list[Allocation]:
    """The user's allocations of ``launcher`` that Slurm has not ended, oldest first."""
    out = command(binpath, "squeue", "-h", "-u", getpass.getuser(), "-n", job_name(launcher),
                  "-o", "%i|%T|%L|%D|%N")
    found = []
    for line in out.splitlines():
        jobid, state, left, nodes, nodelist = (line.split("|") + [""] * 5)[:5]
        if jobid.strip().isdigit():
            found.append(Allocation(jobid.strip(), state, slurm_seconds(left),
                                    int(nodes) if nodes.isdigit() else 0, nodelist))
    return sorted(found, key=lambda a: int(a.jobid))


def steps(binpath: str, jobids: list[str]) -> dict[str, list[str]]:
    """``allocation -> names of its running job steps`` (not the batch step, nor
    its fork servers)."""
    if not jobids:
        return {}
    out = command(binpath, "squeue", "-h", "-s", "-j", ",".join(jobids), "-o", "%i|%j")
    found: dict[str, list[str]] = {jobid: [] for jobid in jobids}
    for line in out.splitlines():
        step, _, name = line.partition("|")
        jobid, _, number = step.partition(".")
        if number.isdigit() and name != SERVER_STEP and jobid in found:
            found[jobid].append(name)
    return found


def batch_script(config: "SlurmLauncherConfig", logs: Path) -> str:
    """The batch script of one allocation of ``config``'s pool (see the module)."""
    pool = config.pool
    tick = max(1, min(IDLE_TICK_MAX, pool.idle // 5))
    options = [f"--job-name={job_name(config.name)}", f"--partition={config.partition}",
               f"--nodes={pool.nodes}", "--ntasks-per-node=1", f"--cpus-per-task={config.cores}",
               f"--mem={mebibytes(config.memory)}M", f"--time={slurm_time(pool.time)}",
               f"--output={logs}/%x-%j.out", f"--chdir={logs.parent}", "--no-requeue"]
    if config.gpus.count:
        options.extend(config.gpus.options(config.gpus.count))
    options.extend(batch_signal(option) for option in config.site_options())
    header = "".join(f"#SBATCH {option}\n" for option in options)
    return (
        f"#!/bin/bash\n{header}"
        f"# xpm-train pool allocation of launcher {config.name}: holds the allocation for\n"
        f"# its job steps (srun --jobid=$SLURM_JOB_ID), ends after {pool.idle}s without one\n"
        "job_steps() {  # the job steps running (not the batch step, nor the fork servers)\n"
        f"  {config.binpath}/squeue -h -s -j \"$SLURM_JOB_ID\" -o '%i|%j' "
        f"| grep -v -e '\\.batch|' -e '\\.extern|' -e '|{SERVER_STEP}$'\n}}\n"
        + forward_signal(config) + warm_servers(config, logs) +
        f"idle={pool.idle}\nlast=$(date +%s)\n"
        "while true; do\n"
        f"  sleep {tick} & wait $!  # (a trap runs at once, not after the sleep)\n"
        + ("  [ -n \"$warned\" ] && forward\n" if config.signal else "") +
        "  if job_steps | grep -q .; then\n"
        "    last=$(date +%s)\n"
        "  fi\n"
        f"  placed=$({config.binpath}/squeue -h -j \"$SLURM_JOB_ID\" -o %k)  # a job placed, its step to come\n"
        "  case \"$placed\" in ''|*[!0-9]*) ;; *) [ \"$placed\" -gt \"$last\" ] && last=$placed ;; esac\n"
        "  if [ $(( $(date +%s) - last )) -ge \"$idle\" ]; then\n"
        "    echo \"idle for ${idle}s: releasing the allocation\"\n"
        "    [ -n \"$server\" ] && kill \"$server\" && wait \"$server\"\n"
        "    exit 0\n"
        "  fi\n"
        "done\n"
    )


def batch_signal(option: str) -> str:
    """``--signal=SIG@T`` of the entry made the batch shell's (``B:``), which
    forwards it (:func:`forward_signal`); other options as they are."""
    if not option.startswith("--signal="):
        return option
    flags, _, rest = option.removeprefix("--signal=").rpartition(":")
    return f"--signal={flags if 'B' in flags else flags + 'B'}:{rest}"


def forward_signal(config: "SlurmLauncherConfig") -> str:
    """Batch-script lines passing the time-limit warning on to the job steps
    (``job_steps``); none without ``signal``."""
    if not config.signal:
        return ""
    name = config.signal.rpartition(":")[2].partition("@")[0]
    return (f"# the time-limit warning ({name}) reaches this shell: passed on to the jobs' steps,\n"
            "# and to those that start later (the idle loop calls forward again)\n"
            "warned=\nforward() {\n  warned=1\n"
            "  for step in $(job_steps | cut -d'|' -f1); do\n"
            "    case \" $signalled \" in *\" $step \"*) continue ;; esac\n"
            f"    echo \"time-limit warning: {name} to step $step\"\n"
            f"    {config.binpath}/scancel --signal={name} \"$step\" && signalled=\"$signalled $step\"\n"
            "  done\n"
            f"}}\ntrap forward {name.removeprefix('SIG')}\n")


def warm_dir(jobid: str = "$SLURM_JOB_ID") -> str:
    """The fork servers' folder of an allocation on its nodes (node-local, its own)."""
    return f"/tmp/xpm-train-pool-warm-{os.getuid()}-{jobid}"


def warm_servers(config: "SlurmLauncherConfig", logs: Path) -> str:
    """Batch-script lines starting one fork server per node (:mod:`xpm_train.warm.forkserver`)
    in a step that lives as long as the allocation (``--overlap``: it takes no
    core from the jobs); none when the warm start is off in the plan."""
    from ...warm import forkclient

    if not forkclient.enabled():
        return ""
    start = ("from xpm_train.warm import forkclient, forkserver; "
             "forkserver.main([forkclient.server_key()])")
    return (f"# a warm fork server per node: each step is forked from it (forkclient)\n"
            f"export {forkclient.DIR_ENV}={warm_dir()} {forkclient.POOL_ENV}=$SLURM_JOB_ID "
            f"XPM_TRAIN_WARM_IDLE_S={config.pool.time}\n"
            f"{config.binpath}/srun --overlap --ntasks-per-node=1 --nodes={config.pool.nodes} "
            f"--job-name={SERVER_STEP} --output={logs}/%x-%j-{SERVER_STEP}-%N.out "
            f"{shlex.quote(sys.executable)} -c {shlex.quote(start)} &\nserver=$!\n")


def request(config: "SlurmLauncherConfig", logs: Path) -> str:
    """Submit one allocation of ``config``'s pool; its job ID."""
    from ..slurmsubmit import sbatch_job_id

    logs.mkdir(parents=True, exist_ok=True)
    return sbatch_job_id(config.binpath, config.name, config.max_submitted, [],
                         script=batch_script(config, logs))


def release(binpath: str, jobids: list[str]) -> None:
    """End allocations now (their running steps are cancelled with them)."""
    if jobids:
        command(binpath, "scancel", *jobids)


def command(binpath: str, name: str, *args: str) -> str:
    done = subprocess.run([f"{binpath}/{name}", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise OSError(f"{name} failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class Status:
    """One allocation as ``xpm-train pools`` lists it."""

    allocation: Allocation
    steps: int
    """Job steps running"""
    idle_since: str
    """When its last step ended (or it started), ``-`` while steps run"""


def status(binpath: str, launcher: str) -> list[Status]:
    """The allocations of ``launcher`` with their running steps and idle time."""
    found = allocations(binpath, launcher)
    running = steps(binpath, [a.jobid for a in found])
    result = []
    for allocation in found:
        count = len(running.get(allocation.jobid, []))
        result.append(Status(allocation, count, "-" if count else idle_since(binpath, allocation.jobid)))
    return result


def idle_since(binpath: str, jobid: str) -> str:
    """The end of the allocation's last step, else its start (``sacct``)."""
    out = command(binpath, "sacct", "-n", "-P", "-j", jobid, "--format=JobID,Start,End")
    rows = [line.split("|") for line in out.splitlines() if line.count("|") == 2]
    ends = [end for step, _, end in rows if re.fullmatch(rf"{jobid}\.\d+", step) and end[:1].isdigit()]
    starts = [start for step, start, _ in rows if step == jobid]
    return max(ends) if ends else (starts[0] if starts else "?")
