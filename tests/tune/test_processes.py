"""Plans that stop or run side by side: two plans driving the same study at
once, and a plan interrupted (SIGINT) then started again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from tunehelpers import learn_jobs, our_tracebacks, trials, write_params

from helpers import REPO

pytestmark = pytest.mark.integration


def start_plan(params, workdir) -> subprocess.Popen:
    command = [sys.executable, "-m", "experimaestro", "run-experiment", "--workdir", str(workdir), str(params)]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finish(process: subprocess.Popen, timeout: float = 900) -> tuple[int, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out + err


def test_two_plans_drive_the_same_study_at_once(tmp_path):
    workdir = tmp_path / "ws"
    plans = [start_plan(write_params(tmp_path, name, id=f"tune-{name}", n_trials=4, n_parallel=2), workdir)
             for name in ("a", "b")]
    results = [finish(p) for p in plans]
    for code, output in results:
        assert code == 0, output[-3000:]
        assert not our_tracebacks(output), our_tracebacks(output)
    rows = trials(workdir)
    assert 4 <= len(rows) <= 4 + 2  # each driver may have asked before seeing the other's last trial
    assert all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    starts = learn_jobs(workdir)
    assert set(starts.values()) == {1}  # no configuration trained twice
    assert {r["job"].rsplit("/", 1)[-1] for r in rows} == set(starts)


def checkpointed(workdir) -> bool:
    """Whether a Learn job of ``workdir`` has saved a checkpoint (it can resume)."""
    return any('"checkpoint"' in events.read_text()
               for events in (workdir / "jobs").glob("xpm_train.learn.learn/*/events.jsonl"))


def interrupt_mid_study(params, workdir) -> list[dict]:
    """Start the plan, SIGINT it while trials are in flight (one has checkpointed);
    returns the trials left RUNNING."""
    plan = start_plan(params, workdir)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # stop once a trial's Learn has checkpointed
        time.sleep(0.5)
        if checkpointed(workdir) and (workdir / "tune").exists():
            if any(r["state"] == "RUNNING" for r in trials(workdir)):
                break
    os.killpg(plan.pid, signal.SIGINT)
    try:
        plan.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(plan.pid, signal.SIGKILL)
        plan.communicate()
    return [r for r in trials(workdir) if r["state"] == "RUNNING"]


def test_an_interrupted_plan_resumes_its_trials(tmp_path):
    # long trials (a job runs ~100 epochs/s on one thread) so that some are in
    # flight when the plan is interrupted; timing-dependent, so up to 3 tries
    params = write_params(tmp_path, n_trials=4, n_parallel=2, epochs=1500)
    for attempt in range(3):
        workdir = tmp_path / f"ws{attempt}"
        interrupted = interrupt_mid_study(params, workdir)
        if interrupted:
            break
    interrupted = [r for r in trials(workdir) if r["state"] == "RUNNING"]
    assert interrupted, "the plan finished before it could be interrupted"

    code, output = finish(start_plan(params, workdir))
    assert code == 0, output[-3000:]
    rows = trials(workdir)
    assert len(rows) == 4 and all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    starts = learn_jobs(workdir)
    assert set(starts.values()) == {1}  # resumed from checkpoints, never started over
    assert {r["job"].rsplit("/", 1)[-1] for r in rows} == set(starts)
