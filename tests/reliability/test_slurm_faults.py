"""Faults as a real Slurm delivers them (``XPM_TRAIN_SLURM=1``), all side by side.

One module fixture restarts the host's Slurm as a 3-node cluster with QOS
preemption (``PreemptMode=REQUEUE``, QOS ``high`` preempts ``normal``) and
runs the plan ``plans/slurmfaults`` (5 small Learns slowed down by a pause per
step, one per case, each pinned to its node by its launcher):

- ``timelimit`` (n1): ``--time=1`` with ``--signal=USR1@10`` (Slurm sends it up
  to a minute early: seen 12 to 50 s after the start); nothing is done to it:
  Slurm's own signal reaches the task through ``srun``;
- ``requeue`` (n1): ``scontrol requeue`` once it logged 8 steps;
- ``preempt`` (n2): a ``--qos=high --exclusive`` job on n2 preempts it;
- ``cancel`` (n1): ``scancel`` once it logged 14 steps;
- ``nodeloss`` (n3, ``--no-requeue``): at 10 steps n3 dies (its slurmd and every
  process of the job SIGKILLed), and ``sacct`` fails from 15 s later until
  15 s after Slurm lists the node down (the launchers' ``binpath`` is a folder
  whose ``sacct`` fails while a flag file exists).

The time limit runs in a plan run of its own, beside the others. Their run
fails two jobs (cancel, nodeloss); then n3 is started again and the next run
of the plan for those two resumes both; slurmctld is stopped for 30 s once
they run again, and started again. The weights are compared with the same plan run
uninterrupted on the local launcher (no pause: ``pause`` is a Meta), with
the same single thread.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import REPO
from slurmhelpers import Shape, _script, cluster_shape, run

pytestmark = [pytest.mark.integration, pytest.mark.slurm]
HERE = Path(__file__).resolve().parent
PLAN = HERE / "plans" / "slurmfaults" / "params.yaml"
CASES = ("timelimit", "requeue", "preempt", "cancel", "nodeloss")
NODE = {"timelimit": "n1", "requeue": "n1", "cancel": "n1", "preempt": "n2", "nodeloss": "n3"}
ACT_AT = {"requeue": 8, "preempt": 8, "cancel": 14, "nodeloss": 10}
"""Logged steps after which the fault is delivered"""
PAUSE = (1.0, 2.0)
"""Seconds per step in the first and the second run"""
OUTAGE = 30.0
"""Seconds slurmctld is stopped during the second run"""
SACCT_DOWN = 15.0
"""sacct fails from 15 s after the node loss (before Slurm sees it: SlurmdTimeout is
30 s) until this many seconds after Slurm lists the node down"""
RERUN = ("cancel", "nodeloss")
"""The jobs the first run fails, which the next run resumes"""
SHAPE = Shape(nodes=3, cpus=3, extra="PreemptType=preempt/qos\nPreemptMode=REQUEUE")


@dataclass
class Outcome:
    workdir: Path
    reference: Path
    runs: list = field(default_factory=list)
    """(return code, output) of the plan's runs: the faults, the next run, the time limit's"""
    acted: dict = field(default_factory=dict)
    """case -> (time.time() of the fault, Slurm job ID it hit)"""
    slurm_jobs: list = field(default_factory=list)
    """sacct rows of the workspace's jobs"""
    outage: tuple = ()
    """(start, end) of slurmctld's outage (time.time())"""
    node_down: float = 0.0
    """When Slurm listed n3 down"""
    left: str = ""
    """squeue at the end"""
    failed: dict = field(default_factory=dict)
    """case -> (when, message) of the .failed marker the first run wrote"""

    def folder(self, case: str, workdir: Path | None = None) -> Path:
        return case_folders(workdir or self.workdir)[case]

    def events(self, case: str) -> list[dict]:
        return [json.loads(line) for line in (self.folder(case) / "events.jsonl").read_text().splitlines()]


def case_folders(workdir: Path) -> dict[str, Path]:
    folders = {}
    for folder in (workdir / "jobs" / "xpm_train.learn.learn").glob("*"):
        tags = folder / "tags.json"
        cases = {run.get("case") for run in json.loads(tags.read_text()).values()} if tags.exists() else ()
        for case in cases:  # (its tags, per run of the plan)
            folders[case] = folder
    return folders


def steps(folder: Path) -> int:
    metrics = folder / "metrics.jsonl"
    return metrics.read_text().count('"train_step"') if metrics.exists() else 0


def slurm_id(folder: Path) -> str | None:
    pid = folder / "learn.pid"
    try:
        return str(json.loads(pid.read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def start_plan(workdir: Path, pause: float, env: dict, log: Path, *overrides: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "experimaestro", "run-experiment", "--workdir", str(workdir),
               *[arg for item in (f"pause={pause}", *overrides) for arg in ("-c", item)], str(PLAN)]
    return subprocess.Popen(command, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env={**os.environ, **env}, start_new_session=True)


def finish(plan: subprocess.Popen, log: Path, timeout: float) -> tuple[int, str]:
    try:
        code = plan.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(plan.pid, signal.SIGKILL)
        code = plan.wait()
    return code, log.read_text()


def binpath_with_failing_sacct(folder: Path, flag: Path) -> Path:
    """Slurm's commands, whose ``sacct`` fails while ``flag`` exists."""
    folder.mkdir()
    for name in ("sbatch", "squeue", "scancel", "scontrol", "sinfo"):
        (folder / name).symlink_to(f"/usr/bin/{name}")
    sacct = folder / "sacct"
    sacct.write_text(f"#!/bin/sh\nif [ -e {flag} ]; then\n"
                     "  echo 'sacct: error: Problem talking to the database: Connection refused' >&2\n"
                     "  exit 1\nfi\nexec /usr/bin/sacct \"$@\"\n")
    sacct.chmod(0o755)
    return folder


def launchers_file(path: Path, cluster, binpath: Path) -> Path:
    entries = []
    for case in CASES:
        # (--comment: options of their own, so that no two cases go out as one job array)
        sbatch = [f"--nodelist={NODE[case]}", f"--comment={case}"] + (["--no-requeue"] if case == "nodeloss" else [])
        extra = f"sbatch: {json.dumps(sbatch)}\nbinpath: {binpath}"
        if case == "timelimit":
            extra += "\nsignal: USR1@10"
        entries.append(cluster.launcher_yaml(case, tags=(case,), extra=extra).replace(
            f"    binpath: {cluster.binpath}\n", ""))
    path.write_text("launchers:\n" + "".join(entries))
    return path


def kill_node(node: str, jobid: str) -> None:
    """SIGKILL ``node``'s slurmd and every process of Slurm job ``jobid`` (the node dies)."""
    var = Path(SHAPE.folder()) / "var"
    victims = [int((var / "pids" / f"slurmd-{node}.pid").read_text())]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if command.startswith(f"slurmstepd: [{jobid}.") or f"SLURM_JOB_ID={jobid}".encode() in environ:
            victims.append(int(proc.name))
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def revive_node(node: str, timeout: float = 60) -> None:
    """Start ``node``'s slurmd again (detached: stop_slurm.sh stops it by its pid file)."""
    var = Path(SHAPE.folder()) / "var"
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


def deliver(outcome: Outcome, plan: subprocess.Popen, flag: Path, timeout: float = 240) -> None:
    """The faults of the first run, each once its job logged ``ACT_AT`` steps;
    ``sacct`` fails from 15 s after the node loss to ``SACCT_DOWN`` s after Slurm
    lists the node down. Returns when the run ends."""
    deadline = time.monotonic() + timeout
    sacct_back = None
    while plan.poll() is None and time.monotonic() < deadline:
        folders = case_folders(outcome.workdir)
        for case, at in ACT_AT.items():
            folder = folders.get(case)
            if case in outcome.acted or folder is None or steps(folder) < at:
                continue
            jobid = slurm_id(folder)
            if case == "requeue":
                run(["scontrol", "requeue", jobid])
            elif case == "preempt":
                run(["sbatch", "--parsable", "--qos=high", f"--nodelist={NODE[case]}", "--exclusive",
                     "--mem=100M", "-o", "/dev/null", "--wrap", "sleep 2"])
            elif case == "cancel":
                run(["scancel", jobid])
            else:
                kill_node(NODE[case], jobid)
            outcome.acted[case] = (time.time(), jobid)
        killed = outcome.acted.get("nodeloss", (0.0,))[0]
        if killed and not outcome.node_down and "down" in node_state(NODE["nodeloss"]):
            outcome.node_down = time.time()
            sacct_back = time.monotonic() + SACCT_DOWN
        if killed and not sacct_back and "cancel" in outcome.failed and time.time() > killed + 15:
            flag.touch()  # (after the cancel was settled: that needs sacct)
        if sacct_back and time.monotonic() > sacct_back:
            flag.unlink(missing_ok=True)
        for case in RERUN:
            failed = folders[case] / "learn.failed" if case in folders else None
            if case not in outcome.failed and failed and failed.exists() and "Slurm job" in failed.read_text():
                outcome.failed[case] = (failed.stat().st_mtime, json.loads(failed.read_text())["message"])
        time.sleep(0.2)
    flag.unlink(missing_ok=True)


def controller_outage(outcome: Outcome, plan: subprocess.Popen, timeout: float = 180) -> None:
    """Stop slurmctld for ``OUTAGE`` s once the second run's jobs logged a step, then start it."""
    deadline = time.monotonic() + timeout
    folders = case_folders(outcome.workdir)
    before = {case: steps(folders[case]) for case in RERUN}
    while plan.poll() is None and time.monotonic() < deadline:
        if all(steps(folders[case]) > before[case] for case in before):
            break
        time.sleep(0.2)
    else:
        return
    pid = int((Path(SHAPE.folder()) / "var" / "pids" / "slurmctld.pid").read_text())
    start = time.time()
    os.kill(pid, signal.SIGTERM)
    while Path(f"/proc/{pid}").exists():
        time.sleep(0.1)
    time.sleep(max(0.0, start + OUTAGE - time.time()))
    _script("start_slurm.sh", SHAPE.env())  # starts slurmctld again (the rest is running)
    outcome.outage = (start, time.time())


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    root = tmp_path_factory.mktemp("slurmfaults")
    local = root / "local.yaml"
    local.write_text("launchers:\n  - {name: here, type: local, tags: [" + ", ".join(CASES) + "], "
                     "cpu: {cores: 2, memory: 4G}, max_time: 1h}\n")
    outcome = Outcome(root / "ws", root / "reference")
    reference = start_plan(outcome.reference, 0.0, {"XPM_TRAIN_LAUNCHERS": str(local)}, root / "reference.log")
    with cluster_shape(SHAPE) as cluster:
        run(["sacctmgr", "-i", "add", "qos", "high"], check=False)
        run(["sacctmgr", "-i", "modify", "qos", "high", "set", "Preempt=normal", "Priority=100"])
        flag = root / "sacct-down"
        binpath = binpath_with_failing_sacct(root / "bin", flag)
        env = {"XPM_TRAIN_LAUNCHERS": str(launchers_file(root / "launchers.yaml", cluster, binpath)),
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # (sbatch exports them) as the reference
        # the time limit in a plan run of its own (an experiment ID of its own: its
        # resubmissions go on while the others' runs come and go)
        timelimit = start_plan(outcome.workdir, PAUSE[0], env, root / "timelimit.log",
                               "id=slurmfaults-timelimit", 'cases=["timelimit"]')
        first = start_plan(outcome.workdir, PAUSE[0], env, root / "first.log",
                           f"cases={json.dumps([case for case in CASES if case != 'timelimit'])}")
        deliver(outcome, first, flag)
        outcome.runs.append(finish(first, root / "first.log", 10))
        revive_node(NODE["nodeloss"])
        second = start_plan(outcome.workdir, PAUSE[1], env, root / "second.log",
                            "id=slurmfaults-again", f"cases={json.dumps(list(RERUN))}")
        outage = threading.Thread(target=controller_outage, args=(outcome, second))
        outage.start()
        outcome.runs.append(finish(second, root / "second.log", 300))
        outcome.runs.append(finish(timelimit, root / "timelimit.log", 300))
        outage.join()
        outcome.slurm_jobs = cluster.sacct_jobs(outcome.workdir, count=10)
        outcome.left = run(["squeue", "-h"]).stdout.strip()
    assert finish(reference, root / "reference.log", 120)[0] == 0, (root / "reference.log").read_text()[-3000:]
    return outcome


def last_weights(folder: Path) -> dict:
    from xpm_train import checkpoint

    return checkpoint.load(folder / "checkpoints" / "last.pt")["model"]


def assert_identical(outcome: Outcome, case: str) -> None:
    import torch

    ours, uninterrupted = (last_weights(outcome.folder(case, w)) for w in (outcome.workdir, outcome.reference))
    assert ours.keys() == uninterrupted.keys()
    differing = [k for k in ours if not torch.equal(ours[k], uninterrupted[k])]
    assert not differing, f"{case}: weights differ from the uninterrupted run in {differing}"
    assert json.loads((outcome.folder(case) / "final.json").read_text())["final"] == json.loads(
        (outcome.folder(case, outcome.reference) / "final.json").read_text())["final"]


def slurm_jobs_of(outcome: Outcome, case: str) -> list[dict]:
    folder = outcome.folder(case)
    return [job for job in outcome.slurm_jobs if Path(job["workdir"]) == folder]


def stops(outcome: Outcome, case: str) -> list[dict]:
    return [e for e in outcome.events(case) if e["event"] in ("start", "resume", "preempted", "end")]


def summary_lines(output: str, folder: Path) -> list[str]:
    """The lines of the plan's failure summary about the job in ``folder``."""
    return [line for line in output.splitlines() if line.startswith(f"  {folder.parent.name}/{folder.name}:")]


def report(outcome: Outcome, case: str) -> str:
    """The case's events and Slurm jobs, as a failure shows them."""
    rows = [f"{e['event']} {e.get('signal', '')} step={e.get('step', '')} t={e['time'] - outcome.acted.get(case, (e['time'],))[0]:+.1f}s"
            for e in stops(outcome, case)]
    return f"{case}: {rows}; Slurm: {[(j['id'], j['state'], j['nodes']) for j in slurm_jobs_of(outcome, case)]}"


def test_slurm_s_time_limit_signal_reaches_the_task_which_resumes_to_identical_weights(faults):
    """--time=1 --signal=USR1@30: SIGUSR1 arrives through srun, the Learn saves
    and stops, the plan submits it again, it resumes and ends as if uninterrupted."""
    events = stops(faults, "timelimit")
    print(report(faults, "timelimit"))
    assert faults.runs[2][0] == 0, faults.runs[2][1][-3000:]
    assert [e["event"] for e in events][:3] == ["start", "preempted", "resume"], report(faults, "timelimit")
    assert {e.get("signal") for e in events if e["event"] == "preempted"} == {"SIGUSR1"}
    assert events[-1]["event"] == "end"
    jobs = slurm_jobs_of(faults, "timelimit")
    assert len(jobs) == 1 + sum(e["event"] == "resume" for e in events), report(faults, "timelimit")
    assert_identical(faults, "timelimit")


@pytest.mark.parametrize("case", ["requeue", "preempt"])
def test_a_requeued_or_preempted_job_resumes_once_to_identical_weights(faults, case):
    """scontrol requeue, and preemption by a higher-priority job (REQUEUE mode):
    SIGTERM reaches the task, it saves and stops; the copy Slurm requeued is
    cancelled and the plan's new job resumes: one job runs at a time."""
    events = stops(faults, case)
    print(report(faults, case))
    assert [e["event"] for e in events] == ["start", "preempted", "resume", "end"], report(faults, case)
    assert events[1]["signal"] == "SIGTERM"
    first, second = slurm_jobs_of(faults, case)
    # sacct shows the requeued copy CANCELLED, or (when the plan's scancel
    # reached it before Slurm had queued it again: seen in CI) the record of
    # its run, REQUEUED / PREEMPTED; what matters is that it never ran again
    # (the events: one resume, by the plan's new job) and is not left queued
    assert first["id"] == faults.acted[case][1]
    assert first["state"].split()[0] in ("CANCELLED", "REQUEUED", "PREEMPTED"), report(faults, case)
    assert first["id"] not in faults.left.split(), faults.left
    said = f"Slurm job {first['id']} was requeued"
    assert any(said in output and "it is cancelled" in output for _, output in faults.runs), said
    assert second["state"] == "COMPLETED"
    assert_identical(faults, case)


def test_scancel_is_reported_cancelled_with_slurm_s_reason_and_the_next_run_resumes(faults):
    code, output = faults.runs[0]
    jobid = faults.acted["cancel"][1]
    print(report(faults, "cancel"))
    assert code != 0
    line, = summary_lines(output, faults.folder("cancel"))
    assert f"Slurm job {jobid}: CANCELLED by 0 on n1 (sacct); its task saved a checkpoint" in line, line
    events = stops(faults, "cancel")
    assert [e["event"] for e in events] == ["start", "preempted", "resume", "end"], report(faults, "cancel")
    assert len(slurm_jobs_of(faults, "cancel")) == 2
    assert_identical(faults, "cancel")


def test_a_lost_node_fails_its_job_in_bounded_time_and_the_next_run_resumes(faults):
    """n3 dies under a job: Slurm declares it down after SlurmdTimeout (30 s),
    the job ends NODE_FAIL, the plan's summary says so (although sacct failed
    when it left the queue), and the next run resumes from the last checkpoint."""
    code, output = faults.runs[0]
    killed, jobid = faults.acted["nodeloss"]
    print(report(faults, "nodeloss"))
    line, = summary_lines(output, faults.folder("nodeloss"))
    noticed = faults.failed["nodeloss"][0]
    assert f"Slurm job {jobid}: NODE_FAIL on n3 (sacct)" in line, line
    failed_after = faults.node_down - killed
    print(f"node down {failed_after:.0f}s after the kill, the job failed in the plan {noticed - killed:.0f}s after")
    assert 0 < failed_after < noticed - killed < 90
    events = stops(faults, "nodeloss")
    assert [e["event"] for e in events] == ["start", "resume", "end"], report(faults, "nodeloss")
    assert ACT_AT["nodeloss"] - events[1]["step"] <= 8  # at most one epoch lost (its last checkpoint)
    assert_identical(faults, "nodeloss")


def test_a_controller_outage_and_failing_sacct_are_said_and_nothing_runs_twice(faults):
    code, output = faults.runs[1]
    assert faults.outage, "the second run's jobs never ran"
    print(f"slurmctld down {faults.outage[1] - faults.outage[0]:.0f}s")
    assert code == 0, output[-3000:]
    assert "Slurm does not answer" in output and "Slurm answers again after" in output
    assert "Slurm does not answer (sacct failed" in faults.runs[0][1]
    for case in CASES:
        starts = [e for e in stops(faults, case) if e["event"] in ("start", "resume")]
        assert len(slurm_jobs_of(faults, case)) == len(starts), report(faults, case)
    assert faults.left == "", faults.left
