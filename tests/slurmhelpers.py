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
    settle_queue()
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
        settle_queue()
        _script("stop_slurm.sh", shape.env())
        _script("start_slurm.sh", default_env())


def settle_queue(wait: float = 15, cancelled_wait: float = 30) -> None:
    """Let the cluster's jobs leave the queue before it is stopped; cancel what
    is left after ``wait`` s. A plan ends at its jobs' ``.done`` markers, a
    moment before Slurm has ended them: a job still RUNNING/COMPLETING when its
    cluster is stopped is recovered as running by the next start of that
    cluster and holds its node until slurmctld gives up on it (seen in a full
    Slurm run: a 2-rank LightningFit's job held the CI node 4 min after the
    2-node test's restart, and the next test's jobs waited)."""
    jobs = [row.split()[0] for row in queue_after(wait)]
    if jobs:
        subprocess.run(["scancel", *jobs], capture_output=True, timeout=30)
        queue_after(cancelled_wait)


def left_in_queue(wait: float = 90) -> str:
    """The jobs still queued or running (``squeue`` rows: ID, state, name, reason)
    once the queue is empty or ``wait`` s have passed. A plan ends at its jobs'
    ``.done`` markers, a moment before Slurm has ended them; a job whose batch
    script ended while slurmctld was down stays COMPLETING until its node's slurmd
    tells the restarted controller (seen in CI: 3 time-limit jobs still CG when
    their plan had ended). COMPLETING rows are left out: those jobs have ended."""
    listed = queue_after(wait)
    if listed:
        print("still in the queue after", wait, "s:", listed)
    return "\n".join(row for row in listed if row.split()[1] != "COMPLETING")


def queue_after(wait: float) -> list[str]:
    """The ``squeue`` rows (ID, state, name, reason) once the queue is empty or
    ``wait`` s have passed ([] when Slurm does not answer)."""
    def rows() -> list[str]:
        out = subprocess.run(["squeue", "-h", "-o", "%i %T %j %R"], capture_output=True, text=True, timeout=30)
        return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []

    deadline = time.monotonic() + wait
    while (listed := rows()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return listed


# --- faults as a cluster delivers them (tests/reliability/test_slurm_faults.py,
# tests/launchers/test_pool_faults.py)

PREEMPTION = "PreemptType=preempt/qos\nPreemptMode=REQUEUE"
"""slurm.conf lines of a cluster where a job of QOS ``high`` preempts (requeues) ``normal`` ones"""


def add_high_qos() -> None:
    """The QOS ``high`` that preempts ``normal`` (with :data:`PREEMPTION`)."""
    run(["sacctmgr", "-i", "add", "qos", "high"], check=False)
    run(["sacctmgr", "-i", "modify", "qos", "high", "set", "Preempt=normal", "Priority=100"])


def preempt(node: str) -> str:
    """Submit a ``--qos=high --exclusive`` job of 2 s on ``node``: the jobs there are preempted."""
    return run(["sbatch", "--parsable", "--qos=high", f"--nodelist={node}", "--exclusive",
                "--mem=100M", "-o", "/dev/null", "--wrap", "sleep 2"]).stdout.strip()


def kill_node(shape: Shape, node: str, jobids: list[str]) -> None:
    """SIGKILL ``node``'s slurmd and every process of Slurm jobs ``jobids`` on
    ``node`` (the node dies): their tasks (``SLURMD_NODENAME``) and the
    ``slurmstepd`` above them (a job step's on another node lives on)."""
    import signal

    var = Path(shape.folder()) / "var"
    victims = [int((var / "pids" / f"slurmd-{node}.pid").read_text())]
    stepds, parents = {}, {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (proc / "environ").read_bytes().split(b"\0")
            parents[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if any(command.startswith(f"slurmstepd: [{jobid}.") for jobid in jobids):
            stepds[int(proc.name)] = command
        elif (any(f"SLURM_JOB_ID={jobid}".encode() in environ for jobid in jobids)
              and f"SLURMD_NODENAME={node}".encode() in environ):
            victims.append(int(proc.name))
    victims += [pid for pid in stepds if any(parents.get(task) == pid for task in victims)]
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def revive_node(shape: Shape, node: str, timeout: float = 60) -> None:
    """Start ``node``'s slurmd again (detached: stop_slurm.sh stops it by its pid file)."""
    var = Path(shape.folder()) / "var"
    started = run(["bash", "-c", f"/usr/sbin/slurmd -D -N {node} >>{var}/log/slurmd-{node}.out 2>&1 "
                   "</dev/null & echo $!"])
    (var / "pids" / f"slurmd-{node}.pid").write_text(started.stdout.strip())
    deadline = time.monotonic() + timeout
    while node_state(node) not in ("idle", "mixed", "allocated"):
        assert time.monotonic() < deadline, f"{node} did not come back: {node_state(node)}"
        if "down" in node_state(node):
            run(["scontrol", "update", f"NodeName={node}", "State=RESUME"], check=False)
        time.sleep(0.5)


def node_state(node: str) -> str:
    return run(["sinfo", "-h", "-n", node, "-o", "%T"], check=False).stdout.strip()


def start_plan(params: Path, workdir: Path, env: dict, log: Path, *overrides: str) -> subprocess.Popen:
    """``experimaestro run-experiment`` of ``params`` (``-c`` overrides) in its own
    session (``os.killpg`` stops it whole), its output in ``log``."""
    import sys

    from helpers import REPO

    command = [sys.executable, "-m", "experimaestro", "run-experiment", "--workdir", str(workdir),
               *[arg for item in overrides for arg in ("-c", item)], str(params)]
    return subprocess.Popen(command, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env={**os.environ, **env}, start_new_session=True)


def finish(plan: subprocess.Popen, log: Path, timeout: float) -> tuple[int, str]:
    """The plan's exit code and output, once it ends (SIGKILLed after ``timeout`` s)."""
    import signal

    try:
        code = plan.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(plan.pid, signal.SIGKILL)
        code = plan.wait()
    return code, log.read_text()


def case_folders(workdir: Path) -> dict[str, Path]:
    """``case -> job folder`` of a workspace of plans/slurmfaults (its ``case`` tags)."""
    import json

    folders = {}
    for folder in (workdir / "jobs").glob("*/*"):
        tags = folder / "tags.json"
        cases = {run.get("case") for run in json.loads(tags.read_text()).values()} if tags.exists() else ()
        for case in cases:  # (its tags, per run of the plan)
            folders[case] = folder
    return folders


def logged_steps(folder: Path) -> int:
    """Training steps a job logged (``metrics.jsonl``)."""
    metrics = folder / "metrics.jsonl"
    return metrics.read_text().count('"train_step"') if metrics.exists() else 0


def differing_weights(folder: Path, reference: Path) -> list[str]:
    """The parameters whose last weights differ between two job folders
    (raises if their parameter names differ)."""
    import torch

    ours, theirs = (last_weights(f) for f in (folder, reference))
    assert ours.keys() == theirs.keys()
    return [k for k in ours if not torch.equal(ours[k], theirs[k])]


def last_weights(folder: Path) -> dict:
    """The weights of a job's last checkpoint (a Learn's, a training function's, a LightningFit's)."""
    from xpm_train import checkpoint

    if (folder / "checkpoints" / "last.ckpt").exists():  # LightningFit's
        return checkpoint.load(folder / "checkpoints" / "last.ckpt")["state_dict"]
    return checkpoint.load(folder / "checkpoints" / "last.pt")["model"]
