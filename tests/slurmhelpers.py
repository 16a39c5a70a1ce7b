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
                       "--format=JobID,JobName,State,WorkDir,NodeList,JobIDRaw"]).stdout
            jobs = []
            for line in out.splitlines():
                jobid, name, state, folder, nodes, raw = (line.split("|") + [""] * 6)[:6]
                folder = job_folder(jobid, folder)
                if folder and Path(folder).is_relative_to(workdir):
                    # raw: SLURM_JOB_ID as the job saw it (an array task's own ID, not A_i)
                    jobs.append({"id": jobid, "name": name, "state": state, "workdir": folder, "nodes": nodes,
                                 "raw": raw})
            if time.monotonic() > deadline or (len(jobs) >= count and not any(
                    j["state"] in ("RUNNING", "COMPLETING") for j in jobs)):
                return jobs
            time.sleep(0.2)

def job_folder(jobid: str, workdir: str) -> str:
    """The job folder of a ``sacct`` row: its working folder, or for a task
    ``A_i`` of a job array (jobs ready together, xpm_train/launchers/slurmarray.py),
    whose working folder is the array's, the folder the array's ``i.out`` links to."""
    if "_" not in jobid or not workdir:
        return workdir
    link = Path(workdir) / f"{jobid.split('_', 1)[1]}.out"
    return str(link.readlink().parent) if link.is_symlink() else workdir


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


# --- another cluster shape for a while (2 nodes, fake GPUs, site limits)

SCRIPTS = Path(os.environ.get("XPM_TRAIN_SLURM_SCRIPTS")
               or Path(__file__).resolve().parents[1].parent / "shared" / "slurm")


@dataclass(frozen=True)
class Shape:
    """What ``../shared/slurm/start_slurm.sh`` is asked for (see ../shared/README.md)."""

    nodes: int = 1
    gpus: int = 0
    cpus: int = 0
    """CPUs per node (0: the script's default, nproc / nodes)"""
    extra: str = ""
    """slurm.conf lines (``MaxArraySize=51``, preemption settings)"""

    def env(self) -> dict[str, str]:
        env = {"SLURM_LOCAL_NODES": str(self.nodes), "SLURM_LOCAL_GPUS": str(self.gpus),
               "SLURM_LOCAL_EXTRA": self.extra, "SLURM_LOCAL_DIR": self.folder()}
        if self.cpus:
            env["SLURM_LOCAL_CPUS"] = str(self.cpus)
        return env

    def folder(self) -> str:
        """One state folder per shape (Slurm keeps a node's state across starts)."""
        import hashlib

        digest = hashlib.sha1(repr(self).encode()).hexdigest()[:8]
        return f"/tmp/local-slurm-shape-{digest}"


def _script(name: str, env: dict[str, str], *extra: str) -> None:
    done = subprocess.run(["bash", str(SCRIPTS / name), *extra], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{name} {env}: {done.stdout[-2000:]}{done.stderr[-2000:]}")


def default_env() -> dict[str, str]:
    """How the CI's single-node cluster was started (.ci/slurm.sh: the script's defaults)."""
    return {k: os.environ[k] for k in ("SLURM_LOCAL_DIR",) if k in os.environ}


def require_slurm_scripts():
    """Skip unless XPM_TRAIN_SLURM=1; fail if the start script cannot be run as root."""
    import pytest

    if os.environ.get(SLURM_ENV) != "1":
        pytest.skip(f"Slurm tests run only with {SLURM_ENV}=1")
    if os.geteuid() != 0 or not (SCRIPTS / "start_slurm.sh").exists():
        pytest.fail(f"{SLURM_ENV}=1 but {SCRIPTS}/start_slurm.sh cannot be run as root "
                    "(set XPM_TRAIN_SLURM_SCRIPTS to the folder of start_slurm.sh)")


from contextlib import contextmanager  # noqa: E402


@contextmanager
def cluster_shape(shape: Shape):
    """The host's Slurm restarted with ``shape`` (one slurm.conf per host) for
    the ``with`` block, then the CI's single-node cluster started again.

    Use it from a module- or session-scoped fixture, so that the tests of one
    shape share one restart (a restart is about 4-8 s). Only one cluster runs on
    a host: developers running Slurm tests side by side serialise them with
    ``flock /tmp/xpm-train-slurm.lock pytest ...``."""
    require_slurm_scripts()
    _script("stop_slurm.sh", default_env())
    try:
        # --wipe: Slurm keeps a node's GRES and drain state across starts
        _script("stop_slurm.sh", shape.env(), "--wipe")
        _script("start_slurm.sh", shape.env())
        cluster = find_slurm(os.environ.get(PARTITION_ENV))
        if cluster is None:
            raise RuntimeError(f"the Slurm cluster {shape} does not answer")
        yield cluster
    finally:
        _script("stop_slurm.sh", shape.env())
        _script("start_slurm.sh", default_env())
