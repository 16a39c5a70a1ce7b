"""Faults as a real Slurm delivers them (``XPM_TRAIN_SLURM=1``), all side by side.

One module fixture restarts the host's Slurm as a 4-node cluster with QOS
preemption (``PreemptMode=REQUEUE``, QOS ``high`` preempts ``normal``) and
runs the plan ``plans/slurmfaults`` (9 small jobs slowed down by a pause per
step, one per case, each pinned to its nodes by its launcher):

- ``timelimit`` (a Learn, n1), ``function`` (a training function, n4),
  ``lightning`` (a LightningFit, n4) and ``ddp-timelimit`` (a 2-rank Learn,
  one rank on n1 and one on n4): ``--time=1`` with ``--signal=USR1@10``
  (Slurm sends it up to a minute early: seen 12 to 50 s after the start);
  nothing is done to them: Slurm's own signal reaches the tasks through ``srun``;
- ``requeue`` (n1): ``scontrol requeue`` once it logged 8 steps;
- ``preempt`` (n2): a ``--qos=high --exclusive`` job on n2 preempts it;
- ``cancel`` (n1): ``scancel`` once it logged 14 steps;
- ``nodeloss`` (n3) and ``ddp-nodeloss`` (a 2-rank Learn on n1 and n3), both
  ``--no-requeue``: once both logged 10 steps n3 dies (its slurmd and every
  process of the jobs on n3 SIGKILLed: the whole single-node job, rank 1 of
  the other), and ``sacct`` fails from 15 s later until
  15 s after Slurm lists the node down (the launchers' ``binpath`` is a folder
  whose ``sacct`` fails while a flag file exists).

The time limits run in a plan run of their own, beside the others. Their run
fails three jobs (cancel, nodeloss, ddp-nodeloss); then n3 is started again
and the next run of the plan for those three resumes them; slurmctld is
stopped for 30 s once they run again, and started again. The weights are compared with the same plan run
uninterrupted on the local launcher (no pause: ``pause`` is a Meta), with
the same single thread.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from xpm_train import jobfolder

from slurmhelpers import PREEMPTION, Shape, _script, add_high_qos, case_folders, cluster_shape, \
    differing_weights, finish, kill_node, left_in_queue, logged_steps, node_state, preempt, revive_node, run, \
    start_plan

pytestmark = [pytest.mark.integration, pytest.mark.slurm]
HERE = Path(__file__).resolve().parent
PLAN = HERE / "plans" / "slurmfaults" / "params.yaml"
CASES = ("timelimit", "requeue", "preempt", "cancel", "nodeloss", "function", "lightning", "ddp-timelimit",
         "ddp-nodeloss")
TIMELIMIT = ("timelimit", "function", "lightning", "ddp-timelimit")
"""The cases of the time-limit run"""
NODE = {"timelimit": "n1", "requeue": "n1", "cancel": "n1", "preempt": "n2", "nodeloss": "n3", "function": "n4",
        "lightning": "n4", "ddp-timelimit": "n1,n4", "ddp-nodeloss": "n1,n3"}
ACT_AT = {"requeue": 8, "preempt": 8, "cancel": 14, "nodeloss": 10}
"""Logged steps after which the fault is delivered (the node loss: once
``nodeloss`` and ``ddp-nodeloss`` both logged them)"""
LOST = ("nodeloss", "ddp-nodeloss")
"""The jobs on n3 when it dies"""
PAUSE = (1.0, 2.0)
"""Seconds per step in the first and the second run"""
OUTAGE = 30.0
"""Seconds slurmctld is stopped during the second run"""
SACCT_DOWN = 15.0
"""sacct fails from 15 s after the node loss (before Slurm sees it: SlurmdTimeout is
30 s) until this many seconds after Slurm lists the node down"""
RERUN = ("cancel", "nodeloss", "ddp-nodeloss")
"""The jobs the first run fails, which the next run resumes"""
DDP = "ddp=cpu(cores=1, mem=400M) & nodes=2"
"""The 2-rank cases' resources on Slurm (the reference: 2 local processes)"""
SHAPE = Shape(nodes=4, cpus=5, extra=PREEMPTION)


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
    failed_seen: dict = field(default_factory=dict)
    """case -> when that marker was seen (time.time())"""

    def folder(self, case: str, workdir: Path | None = None) -> Path:
        return case_folders(workdir or self.workdir)[case]

    def events(self, case: str) -> list[dict]:
        return [json.loads(line) for line in (self.folder(case) / "events.jsonl").read_text().splitlines()]


def slurm_id(folder: Path) -> str | None:
    pid = jobfolder.marker(folder, "pid")
    try:
        return str(json.loads(pid.read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


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
        sbatch = [f"--nodelist={NODE[case]}", f"--comment={case}"] + (["--no-requeue"] if case in LOST else [])
        extra = f"sbatch: {json.dumps(sbatch)}\nbinpath: {binpath}"
        if case in TIMELIMIT:
            extra += "\nsignal: USR1@10"
        entries.append(cluster.launcher_yaml(case, tags=(case,), extra=extra).replace(
            f"    binpath: {cluster.binpath}\n", ""))
    path.write_text("launchers:\n" + "".join(entries))
    return path


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
            if case in outcome.acted or folder is None or logged_steps(folder) < at:
                continue
            jobid = slurm_id(folder)
            if case == "requeue":
                run(["scontrol", "requeue", jobid])
            elif case == "preempt":
                preempt(NODE[case])
            elif case == "cancel":
                run(["scancel", jobid])
            else:
                other = folders.get("ddp-nodeloss")
                if other is None or logged_steps(other) < at:
                    continue
                kill_node(SHAPE, "n3", [jobid, slurm_id(other)])
                outcome.acted["ddp-nodeloss"] = (time.time(), slurm_id(other))
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
            failed = jobfolder.marker(folders[case], "failed") if case in folders else None
            if case not in outcome.failed and failed and failed.exists() and "Slurm job" in failed.read_text():
                outcome.failed[case] = (failed.stat().st_mtime, json.loads(failed.read_text())["message"])
                outcome.failed_seen[case] = time.time()
        time.sleep(0.2)
    flag.unlink(missing_ok=True)


def controller_outage(outcome: Outcome, plan: subprocess.Popen, timeout: float = 180) -> None:
    """Stop slurmctld for ``OUTAGE`` s once the second run's jobs logged a step, then start it."""
    deadline = time.monotonic() + timeout
    folders = case_folders(outcome.workdir)
    before = {case: logged_steps(folders[case]) for case in RERUN}
    while plan.poll() is None and time.monotonic() < deadline:
        if all(logged_steps(folders[case]) > before[case] for case in before):
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
    reference = start_plan(PLAN, outcome.reference, {"XPM_TRAIN_LAUNCHERS": str(local)}, root / "reference.log",
                           "pause=0.0")
    with cluster_shape(SHAPE) as cluster:
        add_high_qos()
        flag = root / "sacct-down"
        binpath = binpath_with_failing_sacct(root / "bin", flag)
        env = {"XPM_TRAIN_LAUNCHERS": str(launchers_file(root / "launchers.yaml", cluster, binpath)),
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # (sbatch exports them) as the reference
        # the time limit in a plan run of its own (an experiment ID of its own: its
        # resubmissions go on while the others' runs come and go)
        timelimit = start_plan(PLAN, outcome.workdir, env, root / "timelimit.log", f"pause={PAUSE[0]}", DDP,
                               "id=slurmfaults-timelimit", f"cases={json.dumps(TIMELIMIT)}")
        first = start_plan(PLAN, outcome.workdir, env, root / "first.log", f"pause={PAUSE[0]}", DDP,
                           f"cases={json.dumps([case for case in CASES if case not in TIMELIMIT])}")
        deliver(outcome, first, flag)
        outcome.runs.append(finish(first, root / "first.log", 10))
        revive_node(SHAPE, NODE["nodeloss"])
        second = start_plan(PLAN, outcome.workdir, env, root / "second.log", f"pause={PAUSE[1]}", DDP,
                            "id=slurmfaults-again", f"cases={json.dumps(list(RERUN))}")
        outage = threading.Thread(target=controller_outage, args=(outcome, second))
        outage.start()
        outcome.runs.append(finish(second, root / "second.log", 300))
        outcome.runs.append(finish(timelimit, root / "timelimit.log", 300))
        outage.join()
        outcome.slurm_jobs = cluster.sacct_jobs(outcome.workdir, count=2 * len(CASES))
        outcome.left = left_in_queue()
    assert finish(reference, root / "reference.log", 120)[0] == 0, (root / "reference.log").read_text()[-3000:]
    return outcome


def assert_identical(outcome: Outcome, case: str) -> None:
    differing = differing_weights(outcome.folder(case), outcome.folder(case, outcome.reference))
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


@pytest.mark.parametrize("case", TIMELIMIT)
def test_slurm_s_time_limit_signal_reaches_the_task_which_resumes_to_identical_weights(faults, case):
    """--time=1 --signal=USR1@10: SIGUSR1 arrives through srun (on both nodes
    of the 2-rank Learn), the job saves and stops (a Learn at the next step,
    the training function at its next checkpoint, Lightning after the step
    from its last epoch's checkpoint), the plan submits it again, it resumes
    and ends as if uninterrupted. A training function writes ``start`` each
    time (``resume`` for the others)."""
    events = stops(faults, case)
    print(report(faults, case))
    assert faults.runs[2][0] == 0, faults.runs[2][1][-3000:]
    kinds = ["run" if e["event"] in ("start", "resume") else e["event"] for e in events]
    assert kinds[:3] == ["run", "preempted", "run"] and kinds[-2:] == ["run", "end"], report(faults, case)
    assert all(after == "run" for before, after in zip(kinds, kinds[1:]) if before == "preempted")
    signals = {e.get("signal") for e in events if e["event"] == "preempted"}
    # (a rank whose SIGUSR1 came a moment after the other's stops for the other's)
    assert signals == {"SIGUSR1"} or (case.startswith("ddp-") and signals <= {"SIGUSR1", None}), signals
    jobs = slurm_jobs_of(faults, case)
    assert len(jobs) == kinds.count("run"), report(faults, case)
    if case.startswith("ddp-"):
        assert {job["nodes"] for job in jobs} == {"n[1,4]"}, report(faults, case)
    assert_identical(faults, case)


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


def test_a_lost_node_fails_a_two_node_ddp_job_in_bounded_time_and_the_next_run_resumes(faults):
    """n3 dies under rank 1 of a 2-rank Learn (rank 0 on n1): rank 0's next
    collective fails at once, Slurm ends the job NODE_FAIL once it declares n3
    down (SlurmdTimeout, 30 s), the plan's summary names the node failure
    with the task's own error, nothing hangs (the plan ends, squeue is empty),
    and the next run resumes both ranks from the last checkpoint."""
    code, output = faults.runs[0]
    killed, jobid = faults.acted["ddp-nodeloss"]
    print(report(faults, "ddp-nodeloss"))
    line, = summary_lines(output, faults.folder("ddp-nodeloss"))
    assert f"Slurm job {jobid}: NODE_FAIL on n[1,3] (sacct)" in line, line
    noticed = faults.failed_seen["ddp-nodeloss"]
    print(f"the 2-node job failed in the plan {noticed - killed:.0f}s after the node loss "
          f"(Slurm listed n3 down {faults.node_down - killed:.0f}s after)")
    assert 0 < noticed - killed < 90
    events = stops(faults, "ddp-nodeloss")
    assert [e["event"] for e in events] == ["start", "resume", "end"], report(faults, "ddp-nodeloss")
    assert ACT_AT["nodeloss"] - events[1]["step"] <= 8  # at most one epoch lost (its last checkpoint)
    first, second = slurm_jobs_of(faults, "ddp-nodeloss")
    assert first["state"] == "NODE_FAIL" and second["state"] == "COMPLETED", report(faults, "ddp-nodeloss")
    assert faults.left == "", faults.left
    assert_identical(faults, "ddp-nodeloss")


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
