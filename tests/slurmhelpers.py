"""Finding the running Slurm (shared by the launcher and distributed tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SLURM_ENV = "XPM_TRAIN_SLURM"
PARTITION_ENV = "XPM_TRAIN_SLURM_PARTITION"


@dataclass(frozen=True)
class SlurmCluster:
    """A reachable Slurm partition."""

    partition: str
    cpus: int
    """CPUs of its (first) node"""
    memory_mb: int
    """Memory of its (first) node, in MiB (Slurm's MB)"""
    binpath: str

    def launcher_yaml(self, name: str = "slurm", *, poll_interval: float = 0.5,
                      tags: tuple[str, ...] = ("slurm",), max_time: str = "1h",
                      extra: str = "") -> str:
        """A ``launchers:`` list item (YAML text) for this partition (``extra``:
        more ``key: value`` lines of the entry)."""
        return (
            f"  - name: {name}\n"
            f"    type: slurm\n"
            f"    tags: [{', '.join(tags)}]\n"
            f"    partition: {self.partition}\n"
            f"    cpu: {{cores: {self.cpus}, memory: {self.memory_mb}MiB}}\n"
            f"    max_time: {max_time}\n"
            f"    poll_interval: {poll_interval}\n"
            f"    binpath: {self.binpath}\n"
        ) + "".join(f"    {line}\n" for line in extra.splitlines())

    def sacct_jobs(self, workdir: Path, count: int = 1, settle: float = 30) -> list[dict]:
        """Jobs known to ``sacct`` whose working folder is under ``workdir``, once
        at least ``count`` are listed and none is still running, or after
        ``settle`` seconds. A plan goes on as soon as a job writes its ``.done``
        marker (tests/launchers/test_slurmstate.py), a moment before Slurm sees
        the job end and before slurmdbd has recorded it: sacct can still list
        the job RUNNING, or not at all (seen in CI: [] for 3 finished jobs)."""
        deadline = time.monotonic() + settle
        while True:
            out = run([f"{self.binpath}/sacct", "-n", "-X", "-P", "--starttime=now-1days",
                       "--format=JobID,JobName,State,WorkDir,NodeList"]).stdout
            jobs = []
            for line in out.splitlines():
                jobid, name, state, folder, nodes = (line.split("|") + [""] * 5)[:5]
                if folder and Path(folder).is_relative_to(workdir):
                    jobs.append({"id": jobid, "name": name, "state": state, "workdir": folder, "nodes": nodes})
            if time.monotonic() > deadline or (len(jobs) >= count and not any(
                    j["state"] in ("RUNNING", "COMPLETING") for j in jobs)):
                return jobs
            time.sleep(0.2)

def find_slurm(partition: str | None = None) -> SlurmCluster | None:
    """The running Slurm's partition (the default one unless named); None if none answers."""
    sinfo = shutil.which("sinfo")
    if sinfo is None:
        return None
    try:
        out = run([sinfo, "-h", "-o", "%P|%c|%m|%a"], timeout=15).stdout
        run([str(Path(sinfo).parent / "sacct"), "-n", "-X", "--starttime=now"], timeout=15)
    except (OSError, subprocess.SubprocessError):
        return None
    rows = [line.split("|") for line in out.splitlines() if line.count("|") == 3]
    wanted = partition or os.environ.get(PARTITION_ENV)
    for name, cpus, memory, avail in rows:
        if avail != "up":
            continue
        if (wanted and name.rstrip("*") == wanted) or (not wanted and name.endswith("*")):
            return SlurmCluster(name.rstrip("*"), int(cpus.rstrip("+")),
                                int(memory.rstrip("+")), str(Path(sinfo).parent))
    return None


def run(command: list[str], *, timeout: float = 60, check: bool = True):
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=check)
