"""Faults of a 2-rank job (CPU, gloo): a rank killed stops the whole job (no
hang) and the job resumes from its last checkpoint; a preemption signal to the
job makes every rank stop after the same step, rank 0 checkpoint, and the
scheduler run the job again; both end with the weights of an uninterrupted
2-rank run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ddphelpers import PLAN, RUN, TWO_RANKS, events, max_difference, weights
from helpers import REPO, run_experiment

pytestmark = pytest.mark.integration


def start_plan(workdir: Path, env: dict) -> subprocess.Popen:
    command = [sys.executable, "-m", "experimaestro", "run-experiment", "--workdir", str(workdir),
               "-c", f"spec={TWO_RANKS}", *[a for item in RUN for a in ("-c", item)], str(PLAN)]
    return subprocess.Popen(command, cwd=REPO, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_for_step(workdir: Path, step: int, plan: subprocess.Popen, timeout: float = 300) -> Path:
    """The job folder, once its metrics log ``step`` (every step is logged)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for metrics in workdir.glob("jobs/xpm_train.learn.learn/*/metrics.jsonl"):
            lines = metrics.read_text().splitlines()
            if lines and max(json.loads(line)["step"] for line in lines[:-1] or lines) >= step:
                return metrics.parent
        assert plan.poll() is None, "the plan ended before the step: " + plan.stdout.read()[-3000:]
        time.sleep(0.01)
    pytest.fail(f"step {step} not reached in {timeout}s")


def ranks_of(job: Path) -> dict[int, int]:
    """{rank: pid} of the processes running the job script (read in /proc)."""
    script, found = str(job / "learn.py"), {}
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or script not in (proc / "cmdline").read_bytes().decode(errors="replace"):
                continue
            environ = dict(item.split("=", 1) for item in
                           (proc / "environ").read_bytes().decode(errors="replace").split("\0") if "=" in item)
        except OSError:
            continue
        found[int(environ.get("RANK", 0))] = int(proc.name)
    return found


def finish(plan: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    try:
        output, _ = plan.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(plan.pid, signal.SIGKILL)
        pytest.fail(f"the plan hung for {timeout}s")
    return plan.returncode, output


def test_a_killed_rank_stops_the_job_which_resumes_from_its_checkpoint(tmp_path, launchers_env,
                                                                        two_rank_reference):
    plan = start_plan(tmp_path, launchers_env)
    job = wait_for_step(tmp_path, 50, plan)  # epoch 1 (35 steps an epoch): epoch 0 is checkpointed
    ranks = ranks_of(job)
    assert sorted(ranks) == [0, 1], ranks
    killed = time.monotonic()
    os.kill(ranks[1], signal.SIGKILL)
    code, output = finish(plan)
    stopped = time.monotonic() - killed
    assert code != 0, output[-3000:]
    assert stopped < 60, f"the job took {stopped:.0f}s to stop"  # no hang: gloo fails at once
    assert not ranks_of(job), "a rank outlived the job"
    kinds = [e["event"] for e in events(job)]
    assert kinds[-1] == "error" and "checkpoint" in kinds, kinds

    result = run_experiment(PLAN, tmp_path, f"spec={TWO_RANKS}", *RUN, env=launchers_env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    resumes = [e for e in events(job) if e["event"] == "resume"]
    assert len(resumes) == 1 and resumes[0]["epoch"] >= 1
    assert max_difference(weights(job), weights(two_rank_reference)) == 0.0
    print(f"killed rank 1: the job stopped {stopped:.1f}s later")


@pytest.mark.parametrize("signame", ["SIGUSR1"])
def test_preemption_checkpoints_stops_all_ranks_and_the_job_runs_again(tmp_path, launchers_env,
                                                                       two_rank_reference, signame):
    plan = start_plan(tmp_path, launchers_env)
    job = wait_for_step(tmp_path, 50, plan)
    ranks = ranks_of(job)
    assert sorted(ranks) == [0, 1], ranks
    os.kill(ranks[0], getattr(signal, signame))  # as the local scheduler or Slurm does
    code, output = finish(plan)
    assert code == 0, output[-3000:]
    kinds = [e["event"] for e in events(job)]
    preempted = kinds.index("preempted")
    assert kinds[preempted - 1] == "checkpoint" and kinds[preempted + 1] == "resume", kinds
    assert kinds[-1] == "end"
    checkpoint = [e for e in events(job) if e["event"] == "checkpoint"][kinds[:preempted].count("checkpoint") - 1]
    assert checkpoint["batch"] > 0  # mid-epoch: after the step where the signal arrived
    # resumed mid-epoch from rank 0's checkpoint: the weights of the uninterrupted run
    assert max_difference(weights(job), weights(two_rank_reference)) == 0.0
    final = json.loads((job / "final.json").read_text())
    reference = json.loads((two_rank_reference / "final.json").read_text())
    assert final["final"] == pytest.approx(reference["final"]) and final["steps"] == reference["steps"]
