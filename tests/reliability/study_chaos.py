"""The harness of test_study_chaos.py: a 30-trial study run while its plan,
its trial jobs, the MLflow forwarder and the fork server are SIGKILLed at
random moments, then a clean run; and what to read back afterwards.

Everything a seed's study starts (the plan, the jobs' clients, the fork
server and the jobs it forks, the forwarder) carries the seed's own servers
folder in its environment (``XPM_TRAIN_WARM_DIR``, in ``/proc/PID/environ``:
a forked job keeps its server's, the forwarder inherits its job's): that is
how its processes are found, killed and, at the end, found gone.

``random.Random(seed)`` draws the kills (which kind, in which order, after
which delay, which job); replaying a seed replays them, though the moments
they land at depend on timing.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from helpers import REPO, run_experiment
from xpm_train.warm import forkclient

N_TRIALS = 30
KINDS = ("plan", "job", "forwarder", "forkserver")
EXTRA_JOB_KILLS = 2
"""Trial jobs killed besides one kill of each kind (more plans, forwarders or
fork servers would cost seconds of CPU each to start again)"""
IDLE_S = 15
"""The forwarder and the fork server exit after this many idle seconds (less
than their defaults, so that the end does not wait long for them; more than
a trial's gap on a loaded machine, so that they do not start again between
trials: each start imports torch or mlflow)"""
LEARN = "xpm_train.learn.learn"
PLAN = REPO / "tests" / "tune" / "plan" / "experiment"
"""The tiny study of the tune tests (Synthetic data, small MLPs)"""


@dataclass
class Chaos:
    """One seed's study: its folders, what was killed, and the runs' outputs."""

    seed: int
    folder: Path
    workdir: Path
    servers: Path
    kills: list[str] = field(default_factory=list)
    """``"<seconds> <kind> pid <pid> ..."`` per kill, in order"""
    plans: list[int] = field(default_factory=list)
    """Exit codes of the plans of the chaotic run (-9: killed)"""
    final: subprocess.CompletedProcess | None = None
    leftovers: dict[int, str] = field(default_factory=dict)
    """Processes of this study still alive after the clean run (pid: command line)"""

    def where(self) -> str:
        """What an assertion message names: the seed to replay, the kills, the workspace."""
        return (f"seed {self.seed} (replay: XPM_TRAIN_CHAOS_SEEDS={self.seed}), workspace {self.workdir}, "
                f"kills: {self.kills}")


# --- Processes of one study


def ours(servers: Path) -> dict[int, str]:
    """``{pid: command line}`` of the live processes started for the study
    whose servers folder is ``servers`` (zombies left out)."""
    marker = f"\0{forkclient.DIR_ENV}={servers}\0".encode()
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker not in b"\0" + (proc / "environ").read_bytes():
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
    return found


def job_processes(chaos: Chaos) -> dict[str, list[int]]:
    """``{Learn job hash: its live processes}``: the client experimaestro
    started (its command names the job script) and the process forked for it
    (which runs in the job's folder)."""
    jobs = f"{chaos.workdir / 'jobs' / LEARN}/"
    found: dict[str, list[int]] = {}
    for pid, command in ours(chaos.servers).items():
        try:
            where = os.readlink(f"/proc/{pid}/cwd") + "/"
        except OSError:
            continue
        text = where if where.startswith(jobs) else command
        if jobs in text:
            found.setdefault(text.split(jobs, 1)[1].split("/", 1)[0], []).append(pid)
    return found


def forwarders(chaos: Chaos) -> list[int]:
    return [pid for pid, command in ours(chaos.servers).items() if "xpm_train.tracking.forwarder" in command]


def fork_servers(chaos: Chaos) -> list[int]:
    """The fork servers of the study (a forked job has its server's command
    line: the servers are those of the pid files)."""
    if not chaos.servers.is_dir():
        return []
    recorded = set()
    for path in chaos.servers.glob("*.pid"):
        try:
            recorded.add(int(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(pid for pid, command in ours(chaos.servers).items()
                  if pid in recorded and "xpm_train.warm.forkserver" in command)


# --- The run


def environment(chaos: Chaos) -> dict[str, str]:
    return {**os.environ, forkclient.DIR_ENV: str(chaos.servers), "XPM_TRAIN_WARM_IDLE_S": str(IDLE_S),
            "XPM_TRAIN_FORWARDER_IDLE_S": str(IDLE_S), "MLFLOW_TRACKING_URI": ""}


def params(chaos: Chaos) -> Path:
    """The tiny study of the tune tests, 30 trials, tracked in the workspace store."""
    path = chaos.folder / "params.yaml"
    path.write_text(yaml.safe_dump({"id": "tune-test", "file": str(PLAN), "n_trials": N_TRIALS, "n_parallel": 2,
                                    "epochs": 2, "sampler_seed": chaos.seed, "label": f"chaos{chaos.seed}",
                                    "tracking_uri": ""}))
    return path


def start_plan(chaos: Chaos) -> subprocess.Popen:
    command = [sys.executable, "-m", "experimaestro", "run-experiment", "--workdir", str(chaos.workdir),
               str(params(chaos))]
    log = open(chaos.folder / f"plan{len(chaos.plans)}.log", "w")  # noqa: SIM115 - closed by the child's end
    return subprocess.Popen(command, cwd=REPO, env=environment(chaos), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def until(condition, timeout: float, poll: float = 0.05):
    """``condition()``'s first truthy value within ``timeout`` seconds (else None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    return None


def kill_one(chaos: Chaos, kind: str, rng: random.Random, plan: subprocess.Popen) -> str | None:
    """SIGKILL one target of ``kind`` (waiting for one to exist while the plan
    runs); what was killed, or None when there was none."""
    if kind == "plan":
        os.killpg(plan.pid, signal.SIGKILL)
        return f"pid {plan.pid} (process group)"

    def find(targets):
        found = until(lambda: targets() or plan.poll() is not None, 120, poll=0.1)
        return found if isinstance(found, (dict, list)) else None

    if kind == "job":
        running = find(lambda: job_processes(chaos))
        if not running:
            return None
        job = rng.choice(sorted(running))
        pid = rng.choice(sorted(running[job]))
        role = "forked" if "forkserver" in ours(chaos.servers).get(pid, "forkserver") else "client"
        detail = f"pid {pid} (job {job[:8]}, {role})"
    else:
        pids = find(lambda: forwarders(chaos) if kind == "forwarder" else fork_servers(chaos))
        if not pids:
            return None
        pid = rng.choice(pids)
        detail = f"pid {pid}"
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return None
    return detail


def trials_started(chaos: Chaos) -> int:
    """Learn jobs that have begun to train (their metrics file exists)."""
    return len(list(chaos.workdir.glob(f"jobs/{LEARN}/*/metrics.jsonl")))


def chaotic_run(chaos: Chaos) -> None:
    """The study with one kill of each kind and EXTRA_JOB_KILLS more, in a random
    order, each once a random number of trials has started (so that every
    kill lands in the study, however fast the machine) plus a random delay;
    the plan is started again at once after it is killed, and then left to
    finish."""
    rng = random.Random(chaos.seed)
    kinds = list(KINDS) + ["job"] * EXTRA_JOB_KILLS
    rng.shuffle(kinds)
    moments = sorted(rng.sample(range(1, N_TRIALS - 4), len(kinds)))
    begin = time.monotonic()
    plan = start_plan(chaos)
    for kind, moment in zip(kinds, moments):
        reached = until(lambda: trials_started(chaos) >= moment or plan.poll() is not None, 600, poll=0.05)
        assert reached and plan.poll() is None, \
            f"the plan ended ({plan.poll()}) before trial {moment} started: {chaos.where()}"
        time.sleep(rng.uniform(0, 0.5))
        detail = kill_one(chaos, kind, rng, plan)
        if detail is not None:
            chaos.kills.append(f"{time.monotonic() - begin:.1f}s {kind} {detail} at {trials_started(chaos)} trials")
        if kind == "plan":
            chaos.plans.append(plan.wait())
            plan = start_plan(chaos)
    try:
        chaos.plans.append(plan.wait(timeout=600))
    finally:
        if plan.poll() is None:
            os.killpg(plan.pid, signal.SIGKILL)


def run_seed(seed: int, folder: Path, store_template: Path) -> Chaos:
    """Chaos, then a clean run, then the wait for the study's processes to end."""
    chaos = Chaos(seed=seed, folder=folder, workdir=folder / "ws", servers=folder / "servers")
    store = chaos.workdir / "mlflow" / "mlflow.db"  # a migrated empty store (creating one takes seconds)
    store.parent.mkdir(parents=True)
    shutil.copy(store_template, store)
    chaotic_run(chaos)
    chaos.final = run_experiment(params(chaos), chaos.workdir, env=environment(chaos))
    # the forwarder and the fork server exit once idle for IDLE_S; nothing else may be left
    until(lambda: not ours(chaos.servers), 2 * IDLE_S + 60, poll=0.5)
    chaos.leftovers = ours(chaos.servers)
    (folder / "kills.txt").write_text("\n".join(chaos.kills) + "\n")
    return chaos


def store_template(folder: Path) -> Path:
    """An MLflow SQLite store with its schema and no experiment."""
    from xpm_train.tracking import store

    uri = store.workspace_uri(folder)
    store.client(uri)
    return store.sqlite_path(uri)


# --- What the workspace holds


def optuna_trials(workdir: Path) -> list:
    """The study's trials, read by Optuna's own client from the study's storage."""
    import optuna

    from xpm_train.tune.storage import journal_path, list_studies, open_storage

    (name,) = list_studies(workdir)
    return optuna.load_study(study_name=name, storage=open_storage(journal_path(workdir, name))).get_trials()


def read_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill
            continue
    return rows
