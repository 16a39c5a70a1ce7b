"""A LightningFit job killed (SIGKILL of the plan and the job) or preempted
(SIGTERM / SIGUSR1 to the job) resumes from its last epoch's checkpoint and
ends, on the CPU, with exactly the weights of an uninterrupted run."""

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
from lighthelpers import PLAN, events, job_folder, wait_for_checkpoint
from reliability.test_kill_resume import kill_job_processes

pytest.importorskip("lightning.pytorch", reason="the Lightning extra is not installed: pip install -e '.[test]'")
pytestmark = pytest.mark.integration

# one job; small batches: epochs of ~300 steps, long enough to be interrupted inside
OVERRIDES = ("hidden=[16]", "max_epochs=2", "batch_size=4", "n_trials=0", "tracking_uri=off")


def final_weights(folder: Path):
    from xpm_train import checkpoint

    return checkpoint.load(folder / "checkpoints" / "last.ckpt")["state_dict"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reference")
    result = run_experiment(PLAN, workdir, *OVERRIDES)
    assert result.returncode == 0, result.stderr[-3000:]
    return job_folder(workdir)


def start_plan(workdir: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "experimaestro", "run-experiment", "--workdir", str(workdir)]
    for item in OVERRIDES:
        command += ["-c", item]
    return subprocess.Popen([*command, str(PLAN)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def assert_same_weights(reference: Path, job: Path) -> None:
    import torch

    expected, actual = final_weights(reference), final_weights(job)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    ref_final, got_final = (json.loads((f / "final.json").read_text()) for f in (reference, job))
    assert got_final["final"] == ref_final["final"] and got_final["best"] == ref_final["best"]
    assert got_final["steps"] == ref_final["steps"]


def test_sigkill_after_a_checkpoint_resumes_to_identical_weights(reference, tmp_path):
    workdir = tmp_path / "ws"
    plan = start_plan(workdir)
    try:
        job = wait_for_checkpoint(workdir, plan)
    finally:
        os.killpg(plan.pid, signal.SIGKILL)
        plan.wait()
        kill_job_processes(workdir / "jobs")
    assert job.name == reference.name and not (job / "lightningfit.done").exists()

    result = run_experiment(PLAN, workdir, *OVERRIDES)
    assert result.returncode == 0, result.stderr[-3000:]
    kinds = [e["event"] for e in events(job)]
    assert kinds.count("resume") == 1 and kinds[-1] == "end", kinds
    resumed = next(e for e in events(job) if e["event"] == "resume")
    assert resumed["epoch"] < 2  # it resumed inside the run, not after its end
    assert_same_weights(reference, job)


def job_pids(jobs: Path) -> list[int]:
    """Processes running a job script under ``jobs`` (from /proc)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(jobs) in command and "lightningfit.py" in command:
                pids.append(int(proc.name))
    return pids


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGUSR1"])
def test_preemption_stops_within_seconds_and_the_job_resumes_identically(reference, tmp_path, signame):
    """The job stops after the current step (GracefulTimeout): experimaestro
    runs it again, from the last epoch's checkpoint, in the same plan."""
    workdir = tmp_path / "ws"
    plan = start_plan(workdir)
    try:
        job = wait_for_checkpoint(workdir, plan)
        pids = job_pids(workdir / "jobs")
        assert pids, "no job process found"
        sent = time.monotonic()
        for pid in pids:
            os.kill(pid, getattr(signal, signame))
        while any(Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
                  for pid in pids if Path(f"/proc/{pid}/status").exists()) and time.monotonic() - sent < 60:
            time.sleep(0.05)
        stopped = time.monotonic() - sent
        _, stderr = plan.communicate(timeout=600)
    finally:
        if plan.poll() is None:
            os.killpg(plan.pid, signal.SIGKILL)
        kill_job_processes(workdir / "jobs")
    assert plan.returncode == 0, stderr[-3000:]
    assert stopped < 15, f"the job took {stopped:.1f} s to stop"
    kinds = [e["event"] for e in events(job)]
    preempted = [e for e in events(job) if e["event"] == "preempted"]
    assert len(preempted) == 1 and preempted[0]["signal"] == signame, kinds
    assert kinds.count("resume") == 1 and kinds[-1] == "end", kinds
    assert_same_weights(reference, job)


def test_a_signal_before_the_fit_starts_is_kept_and_stops_it_after_a_step(tmp_path):
    """SIGUSR1 while the job sets up (Lightning imports, the module is built:
    Slurm warns up to a minute early) is caught from the job's start, not
    fatal: the fit stops after its first step with GracefulTimeout (the
    scheduler submits it again)."""
    from experimaestro import GracefulTimeout
    from test_learn import run
    from tinyconfigs import SignalledTiny, TinyData

    from xpm_train.lightning import LightningFit

    before = signal.getsignal(signal.SIGUSR1)
    fit = LightningFit.C(module=SignalledTiny.C(), datamodule=TinyData.C(), max_epochs=1, accelerator="cpu")
    with pytest.raises(GracefulTimeout, match="stopped by SIGUSR1 at step 1"):
        run(tmp_path / "job", fit)
    assert signal.getsignal(signal.SIGUSR1) == before
    kinds = [e["event"] for e in events(tmp_path / "job")]
    assert kinds == ["start", "preempted"], kinds
