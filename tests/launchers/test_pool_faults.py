"""Faults of a Slurm pool (issue 22 item 5) as a real Slurm delivers them
(``XPM_TRAIN_SLURM=1``), all side by side on one cluster.

One module fixture restarts the host's Slurm as 3 nodes of 4 CPUs with QOS
preemption (``PreemptMode=REQUEUE``, QOS ``high`` preempts ``normal``), each
pool pinned to its node (``sbatch: [--nodelist=...]``), and runs at once:

- ``timelimit`` (n1): a Learn of plans/slurmfaults longer than its pool's
  allocations (``time: 2m``, the entry's ``signal: USR1@60``): Slurm's warning
  reaches the allocation's batch shell, which passes it to the job's step; the
  Learn saves and stops, experimaestro resubmits it, it resumes in a second
  allocation;
- ``preempt`` (n2): a ``--qos=high --exclusive`` job on n2 preempts the
  allocation once the Learn logged 8 steps;
- ``nodeloss`` (n3): at 10 steps n3 dies (its slurmd and every process of the
  allocation SIGKILLed); the plan run fails that job only (``preempt``, in the
  same run, ends); n3 is started again and the next run resumes it;
- ``study`` (n1): a tiny tune study (tests/tune/plan) whose plan is SIGKILLed
  (its process group) once a trial finished while another runs; its orphaned
  allocation ends itself when idle; then the plan runs again.

Weights are compared with the same Learns run uninterrupted on the local
launcher (no pause: ``pause`` is a Meta), with the same single thread.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from slurmhelpers import PREEMPTION, Shape, add_high_qos, case_folders, cluster_shape, differing_weights, \
    finish, kill_node, left_in_queue, logged_steps, preempt, revive_node, run, start_plan
from tune.tunehelpers import learn_jobs, trials, write_params

pytestmark = [pytest.mark.integration, pytest.mark.slurm]
PLAN = Path(__file__).resolve().parents[1] / "reliability" / "plans" / "slurmfaults" / "params.yaml"
SHAPE = Shape(nodes=3, cpus=4, extra=PREEMPTION)
CASES = ("timelimit", "preempt", "nodeloss")
NODE = {"timelimit": "n1", "study": "n1", "preempt": "n2", "nodeloss": "n3"}
POOL = {"timelimit": "{time: 2m, idle: 5s, max_allocations: 2}",  # its Learn: duration=1m
        "preempt": "{time: 15m, idle: 5s}", "nodeloss": "{time: 15m, idle: 5s}",  # theirs: 10m
        "study": "{time: 5m, idle: 3s}"}
ACT_AT = {"preempt": 8, "nodeloss": 10}
"""Logged steps after which the fault is delivered"""
PAUSE = {"timelimit": 1.6, "others": 1.0}
"""Seconds per step: the time limit's Learn (40 steps) outlasts the minute
before its warning (Slurm sends it up to a minute early)"""
STUDY = dict(id="poolfaults-study", n_trials=4, n_parallel=2, epochs=300, final=False,
             launcher="duration=1m & cpu(cores=1)")


@dataclass
class Outcome:
    root: Path
    runs: dict = field(default_factory=dict)
    """name -> (return code, output) of each plan run"""
    acted: dict = field(default_factory=dict)
    """case -> (time.time() of the fault, the allocation it hit)"""
    study_killed: dict = field(default_factory=dict)
    """the study plan's SIGKILL: trials then, its allocations, how long they outlived it"""
    allocations: dict = field(default_factory=dict)
    """pool -> sacct rows (id, state, steps) of its allocations, oldest first"""
    left: str = ""
    """squeue at the end"""

    @property
    def workdir(self) -> Path:
        return self.root / "ws"

    def folder(self, case: str, reference: bool = False) -> Path:
        return case_folders(self.root / ("reference" if reference else "ws"))[case]

    def events(self, case: str) -> list[dict]:
        lines = (self.folder(case) / "events.jsonl").read_text().splitlines()
        return [e for e in map(json.loads, lines) if e["event"] in ("start", "resume", "preempted", "end")]


def launchers_file(path: Path, cluster, pools: tuple[str, ...]) -> Path:
    """Pool entries (one CPU each, the study two), each tagged with its case, on its node."""
    per_core = cluster.memory_mb // SHAPE.cpus
    entries = []
    for pool in pools:
        cores = 2 if pool == "study" else 1
        entries.append(
            f"  - name: {pool}\n    type: slurm\n    tags: [{pool}]\n    partition: {cluster.partition}\n"
            f"    cpu: {{cores: {cores}, memory: {cores * per_core}MiB}}\n    max_time: 1h\n"
            f"    poll_interval: 0.5\n    binpath: {cluster.binpath}\n"
            f"    sbatch: [--nodelist={NODE[pool]}]\n    pool: {POOL[pool]}\n")
    path.write_text("launchers:\n" + "".join(entries))
    return path


def allocation_of(pool: str) -> str:
    """The running allocation of ``pool`` (the newest)."""
    out = run(["squeue", "-h", "-n", f"xpm-pool-{pool}", "-t", "R", "-o", "%i"]).stdout.split()
    return max(out, key=int) if out else ""


def study_allocations() -> list[str]:
    return run(["squeue", "-h", "-n", "xpm-pool-study", "-o", "%i"]).stdout.split()


def interrupted(workdir: Path) -> bool:
    """A trial finished and another runs: the moment to SIGKILL the study's plan."""
    try:
        states = [t["state"] for t in trials(workdir)]
    except (ValueError, OSError):  # no study yet: no study folder, or a journal that holds
        return False  # none yet (NotFound, an OSError: xpm_train.tune.report.load_trials)
    return "RUNNING" in states and any(s in ("COMPLETE", "PRUNED") for s in states)


def sacct_allocations(pool: str) -> list[dict]:
    out = run(["sacct", "-n", "-X", "-P", "--starttime=now-1days", "--name", f"xpm-pool-{pool}",
               "--format=JobID,State,NodeList"]).stdout
    rows = [line.split("|") for line in out.splitlines()]
    found = []
    for jobid, state, nodes in rows:
        steps = run(["sacct", "-n", "-P", "-j", jobid, "--format=JobID,JobName,State"]).stdout
        found.append({"id": jobid, "state": state, "nodes": nodes,
                      "steps": [line.split("|") for line in steps.splitlines()]})
    return sorted(found, key=lambda a: int(a["id"]))


class Driver:
    """Starts the plans, delivers the faults when their moment comes, starts
    the runs that follow; :meth:`step` once in a while until :meth:`done`."""

    def __init__(self, outcome: Outcome, env: dict, study_env: dict, study_params: Path):
        self.outcome, self.env, self.study_env, self.study_params = outcome, env, study_env, study_params
        self.plans: dict = {}
        root = outcome.root
        self.start("timelimit", PLAN, outcome.workdir, env, f"pause={PAUSE['timelimit']}",
                   "id=poolfaults-timelimit", 'cases=["timelimit"]')
        self.start("faults", PLAN, outcome.workdir, env, f"pause={PAUSE['others']}", "id=poolfaults",
                   'cases=["preempt", "nodeloss"]')
        self.start("study", study_params, root / "study", study_env)

    def start(self, name: str, params: Path, workdir: Path, env: dict, *overrides: str) -> None:
        log = self.outcome.root / f"{name}.log"
        self.plans[name] = (start_plan(params, workdir, env, log, *overrides), log)

    def done(self) -> bool:
        return not self.plans

    def step(self) -> None:
        outcome = self.outcome
        folders = case_folders(outcome.workdir)
        for case, at in ACT_AT.items():
            if case in outcome.acted or case not in folders or logged_steps(folders[case]) < at:
                continue
            allocation = allocation_of(case)
            if case == "preempt":
                preempt(NODE[case])
            else:
                kill_node(SHAPE, NODE[case], [allocation])
            outcome.acted[case] = (time.time(), allocation)
        killed = outcome.study_killed
        if "study" in self.plans and not killed and interrupted(outcome.root / "study"):
            os.killpg(self.plans["study"][0].pid, signal.SIGKILL)
            killed.update(at=time.time(), trials=trials(outcome.root / "study"), allocations=study_allocations())
        if killed and "gone" not in killed and not set(killed["allocations"]) & set(study_allocations()):
            killed["gone"] = time.time() - killed["at"]  # the orphaned allocation went: run the plan again
            self.start("study-again", self.study_params, outcome.root / "study", self.study_env)
        for name, (plan, log) in list(self.plans.items()):
            if plan.poll() is None:
                continue
            outcome.runs[name] = finish(plan, log, 1)
            del self.plans[name]
            if name == "faults":  # it failed the lost node's job: n3 again, and the next run
                revive_node(SHAPE, NODE["nodeloss"])
                self.start("again", PLAN, outcome.workdir, self.env, f"pause={PAUSE['others']}",
                           "id=poolfaults-again", 'cases=["nodeloss"]')

    def stop(self) -> None:
        for name, (plan, log) in self.plans.items():
            self.outcome.runs[name] = finish(plan, log, 0)


@pytest.fixture(scope="module")
def pool_faults(tmp_path_factory):
    root = tmp_path_factory.mktemp("poolfaults")
    outcome = Outcome(root)
    local = root / "local.yaml"
    local.write_text("launchers:\n  - {name: here, type: local, tags: [" + ", ".join(CASES) + "], "
                     "cpu: {cores: 2, memory: 4G}, max_time: 1h}\n")
    reference = start_plan(PLAN, root / "reference", {"XPM_TRAIN_LAUNCHERS": str(local)},
                           root / "reference.log", "pause=0.0", f"cases={json.dumps(list(CASES))}")
    with cluster_shape(SHAPE) as cluster:
        add_high_qos()
        env = {"XPM_TRAIN_LAUNCHERS": str(launchers_file(root / "launchers.yaml", cluster, CASES)),
               "XPM_TRAIN_POOL_DIR": str(root / "registry"), "XPM_TRAIN_TOKENS_DIR": str(root / "tokens"),
               "XPM_TRAIN_WARM_WAIT_S": "300",  # a node's server preloads slowly on a busy CI host
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # as the reference
        study_launchers = launchers_file(root / "study-launchers.yaml", cluster, ("study",))
        study_env = {**env, "XPM_TRAIN_LAUNCHERS": str(study_launchers)}
        driver = Driver(outcome, env, study_env, write_params(root, "study", **STUDY))
        deadline = time.monotonic() + 400
        try:
            while not driver.done() and time.monotonic() < deadline:
                driver.step()
                time.sleep(0.2)
        finally:
            driver.stop()
        outcome.left = left_in_queue(30)  # the last allocations end themselves when idle
        for pool in (*CASES, "study"):
            outcome.allocations[pool] = sacct_allocations(pool)
    assert finish(reference, root / "reference.log", 120)[0] == 0, (root / "reference.log").read_text()[-3000:]
    return outcome


def assert_identical(outcome: Outcome, case: str) -> None:
    differing = differing_weights(outcome.folder(case), outcome.folder(case, reference=True))
    assert not differing, f"{case}: weights differ from the uninterrupted run in {differing}"


def report(outcome: Outcome, case: str) -> str:
    """The case's events and allocations, as a failure shows them."""
    events = outcome.events(case)
    at = outcome.acted.get(case, (events[0]["time"],))[0]  # (the fault, else the start)
    rows = [f"{e['event']} {e.get('signal', '')} step={e.get('step', '')} t={e['time'] - at:+.1f}s" for e in events]
    shown = [(a["id"], a["state"], a["nodes"], [s[1:] for s in a["steps"][1:]]) for a in outcome.allocations[case]]
    return f"{case}: {rows}; allocations: {shown}"


def pool_log(outcome: Outcome, pool: str, allocation: str) -> str:
    return next(outcome.root.glob(f"*/pools/xpm-pool-{pool}-{allocation}.out")).read_text()


def test_an_allocation_s_time_limit_warning_reaches_its_step_which_resumes_to_identical_weights(pool_faults):
    """signal: USR1@60 on a pool of 2-minute allocations: the batch shell gets
    it (B:USR1@60) and passes it to the Learn's step (not to the fork server's,
    which died of it before); the Learn saves and stops, and
    experimaestro's resubmission goes to a new allocation (the first has too
    little time left for its duration), where it resumes."""
    print(report(pool_faults, "timelimit"))
    code, output = pool_faults.runs["timelimit"]
    assert code == 0, output[-3000:]
    events = pool_faults.events("timelimit")
    kinds = [e["event"] for e in events]
    # (the resumed run may meet its own allocation's warning: Slurm sends it
    # 60 to 90 s before the end of a 2-minute allocation)
    runs = 1 + kinds.count("resume")
    assert kinds == ["start"] + ["preempted", "resume"] * (runs - 1) + ["end"] and runs >= 2, report(
        pool_faults, "timelimit")
    assert {e["signal"] for e in events if e["event"] == "preempted"} == {"SIGUSR1"}
    allocations = pool_faults.allocations["timelimit"]
    assert len(allocations) == runs, report(pool_faults, "timelimit")  # each run in an allocation of its own
    for allocation in allocations[:-1]:
        assert "time-limit warning: USR1 to step " in pool_log(pool_faults, "timelimit", allocation["id"])
    assert [s[2] for s in allocations[-1]["steps"] if s[1].startswith("learn-")] == ["COMPLETED"], report(
        pool_faults, "timelimit")
    assert_identical(pool_faults, "timelimit")


def test_a_preempted_allocation_s_job_saves_and_resumes_in_another_allocation(pool_faults):
    """A --qos=high --exclusive job preempts the allocation: SIGTERM reaches
    the Learn, which saves and stops; the allocation is not requeued
    (--no-requeue: PREEMPTED in sacct), the resubmitted job resumes in a new one."""
    print(report(pool_faults, "preempt"))
    events = pool_faults.events("preempt")
    assert [e["event"] for e in events] == ["start", "preempted", "resume", "end"], report(pool_faults, "preempt")
    assert events[1]["signal"] == "SIGTERM"
    first, second = pool_faults.allocations["preempt"]
    assert first["id"] == pool_faults.acted["preempt"][1]
    assert first["state"] == "PREEMPTED" and second["state"] == "COMPLETED", report(pool_faults, "preempt")
    assert_identical(pool_faults, "preempt")


def test_a_lost_node_fails_only_its_job_and_the_next_run_resumes_it(pool_faults):
    """n3 dies under the allocation: its job fails (NODE_FAIL), the job of the
    same plan run on n2 ends well; the next run resumes from the last checkpoint."""
    print(report(pool_faults, "nodeloss"))
    code, output = pool_faults.runs["faults"]
    assert code != 0
    failed = [line for line in output.splitlines() if line.startswith("  xpm_train.learn.learn/")]
    assert [line.split(":")[0].strip() for line in failed] == [
        f"xpm_train.learn.learn/{pool_faults.folder('nodeloss').name}"], failed
    # (srun exits 0 when its node fails: the job is failed with Slurm's word, not taken for done)
    assert f"Slurm job {pool_faults.acted['nodeloss'][1]}: NODE_FAIL on n3 (sacct)" in failed[0], failed
    assert (pool_faults.folder("preempt") / "learn.done").exists()
    assert pool_faults.allocations["nodeloss"][0]["state"] == "NODE_FAIL", report(pool_faults, "nodeloss")
    code, output = pool_faults.runs["again"]
    assert code == 0, output[-3000:]
    events = pool_faults.events("nodeloss")
    assert [e["event"] for e in events] == ["start", "resume", "end"], report(pool_faults, "nodeloss")
    assert ACT_AT["nodeloss"] - events[1]["step"] <= 8  # at most an epoch lost (its last checkpoint)
    assert_identical(pool_faults, "nodeloss")


def test_a_sigkilled_study_s_allocation_goes_when_idle_and_the_rerun_trains_no_trial_twice(pool_faults):
    """The study's plan SIGKILLed (process group) with a trial finished and one
    running: its steps finish, its allocation ends itself (idle: 3s); the next
    run finds the finished trials, takes up the interrupted ones, and no
    Learn starts twice."""
    killed = pool_faults.study_killed
    print({k: v for k, v in killed.items() if k != "trials"}, [t["state"] for t in killed.get("trials", [])])
    states = [t["state"] for t in killed["trials"]]
    assert killed["allocations"], killed
    assert "RUNNING" in states and {"COMPLETE", "PRUNED"} & set(states), states
    assert killed["gone"] < 60, killed
    for allocation in killed["allocations"]:
        row, = [a for a in pool_faults.allocations["study"] if a["id"] == allocation]
        assert row["state"] == "COMPLETED", row
        assert "idle for 3s: releasing the allocation" in pool_log(pool_faults, "study", allocation)
    code, output = pool_faults.runs["study-again"]
    assert code == 0, output[-3000:]
    workdir = pool_faults.root / "study"
    rows = trials(workdir)
    assert len(rows) == STUDY["n_trials"] and all(r["state"] in ("COMPLETE", "PRUNED") for r in rows), rows
    starts = learn_jobs(workdir)
    assert set(starts.values()) == {1}, starts  # no trial trained twice
    assert {r["job"].rsplit("/", 1)[-1] for r in rows} == set(starts)


def test_no_allocation_is_left(pool_faults):
    assert pool_faults.left == "", pool_faults.left
