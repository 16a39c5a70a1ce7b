"""The fork server SIGKILLed in the middle of a plan: the jobs it forked end
normally, the next ones start cold and then warm again from a new server,
the plan ends with every job done and the same results as a cold plan."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import REPO, run_experiment
from xpm_train.warm import forkclient
from xpm_train.locks import held

pytestmark = pytest.mark.integration
PARAMS = REPO / "bench" / "plans" / "learn" / "params.yaml"
PLAN = ("count=6", "data=synthetic", "epochs=3", "device=cpu", "synthetic_samples=2048")


def jobs_server(env) -> dict:
    """The files of the fork server that forked the plan's jobs: the one live
    server in the plan's own servers folder. (Not the key this process would
    compute: the plan's jobs key their server on their own environment and
    process attributes, which an earlier test of the session may have made
    differ from this process's.)"""
    folder = Path(env[forkclient.DIR_ENV])
    live = [pid.with_suffix("") for pid in folder.glob("*.pid") if held(str(pid.with_suffix(".lock")))]
    assert len(live) == 1, f"one live server expected in {folder}: {sorted(p.name for p in folder.iterdir())}"
    return {name: f"{live[0]}.{name}" for name in ("sock", "lock", "pid", "log")}


def finals(workdir: Path) -> dict[str, dict]:
    found = {}
    for folder in sorted((workdir / "jobs" / "xpm_train.learn.learn").iterdir()):
        assert (folder / "learn.done").exists(), folder
        final = json.loads((folder / "final.json").read_text())
        found[folder.name] = {k: v for k, v in final.items() if "time" not in k and "samples_per_s" not in k}
    return found


def test_killing_the_fork_server_mid_plan_loses_no_job(tmp_path):
    env = dict(os.environ)
    env.pop(forkclient.ENABLE_ENV, None)
    env[forkclient.DIR_ENV] = str(tmp_path / "servers")  # the plan's jobs start the only server there
    workdir = tmp_path / "warm"
    command = [sys.executable, "-m", "experimaestro", "run-experiment", "--workdir", str(workdir)]
    for item in PLAN:
        command += ["-c", item]
    plan = subprocess.Popen([*command, str(PARAMS)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not list(workdir.glob("jobs/*/*/metrics.jsonl")):  # a forked job trains
            assert plan.poll() is None, plan.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "no job started"
            time.sleep(0.05)
        files = jobs_server(env)
        server = int(Path(files["pid"]).read_text())
        os.kill(server, signal.SIGKILL)
        out, _ = plan.communicate(timeout=900)
    finally:
        if plan.poll() is None:
            os.killpg(plan.pid, signal.SIGKILL)
    assert plan.returncode == 0, out[-3000:]

    log = Path(files["log"]).read_text()
    forked_by_killed = [line for line in log.splitlines() if f"warm[{server}] job " in line]
    assert forked_by_killed, "the killed server forked no job of the plan"
    errs = {folder.name: (folder / "learn.err").read_text()
            for folder in (workdir / "jobs" / "xpm_train.learn.learn").iterdir()}
    assert all(err.count("xpm-train: normal start") <= 1 for err in errs.values())
    assert any("normal start" not in err for err in errs.values())

    cold = tmp_path / "cold"
    result = run_experiment(PARAMS, cold, *PLAN, env={forkclient.ENABLE_ENV: "0"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert finals(workdir) == finals(cold)  # forked or not, killed server or not: same results
