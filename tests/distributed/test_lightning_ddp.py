"""A LightningFit on several ranks through the launcher (``processes=2``, gloo on
the CPU): Lightning's DDP adopts the ranks xpm-train started, every rank trains
its shard, only rank 0 writes, the job ID is that of one process, and a job
killed after a checkpoint resumes on its 2 ranks to the weights of an
uninterrupted 2-rank run."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ddphelpers import GPUS, TWO_RANKS, cuda_devices
from helpers import REPO, run_experiment, what_ran
from lighthelpers import EXAMPLE, PLAN, events, job_folder, wait_for_checkpoint
from xpm_train.jobfolder import PROVENANCE, TAGS

pytest.importorskip("lightning.pytorch", reason="the Lightning extra is not installed: pip install -e '.[test]'")
pytestmark = pytest.mark.integration

BATCH = 4
"""Per-rank batch (Lightning's rule): epochs of ~150 steps per rank, long enough to be killed inside"""
OVERRIDES = ("hidden=[16]", "max_epochs=2", f"batch_size={BATCH}", "n_trials=0", "tracking_uri=off",
             "accelerator=cpu")
ONE = "duration=10m & cpu(cores=2)"
JOB_FILES = {".experimaestro", "checkpoints", "events.jsonl", "final.json", "lightningfit.done", "lightningfit.err",
             "lightningfit.lock", "lightningfit.out", "lightningfit.py", "locks.json", "metrics.jsonl", "params.json",
             PROVENANCE, TAGS}


def train_samples() -> int:
    sys.path.insert(0, str(EXAMPLE))
    try:
        from digits_lightning import DigitsDataModule
    finally:
        sys.path.remove(str(EXAMPLE))
    data = DigitsDataModule(batch_size=BATCH)
    data.setup("fit")
    return len(data.train_set)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory, launchers_env) -> Path:
    """The workspace of an uninterrupted LightningFit on 2 ranks."""
    workdir = tmp_path_factory.mktemp("lightning-ddp")
    start = time.monotonic()
    result = run_experiment(PLAN, workdir, *OVERRIDES, f"launcher={TWO_RANKS}", env=launchers_env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"2-rank LightningFit plan: {time.monotonic() - start:.1f}s")
    return workdir


def test_both_ranks_train_through_lightning_ddp_and_only_rank_0_writes(two_ranks, launchers_env):
    folder = job_folder(two_ranks)
    kinds = [e["event"] for e in events(folder)]
    start, = [e for e in events(folder) if e["event"] == "start"]
    assert start["ranks"] == 2  # Lightning's trainer.world_size
    # rank 1 joined Lightning's process group (its own log line, in the job's .err)
    err = (folder / "lightningfit.err").read_text()
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in err and "marking as slave process" in err
    # Lightning's DistributedSampler split each epoch: a rank did half of the steps of one process
    final = json.loads((folder / "final.json").read_text())
    assert final["steps"] == 2 * math.ceil(math.ceil(train_samples() / 2) / BATCH)
    assert final["epochs"] == 2 and 0 < final["best"]["val_accuracy"] <= 1 and "test_accuracy" in final["test"]
    # only rank 0 wrote: one start and one end, one line per logged point, no file of Lightning's own
    assert kinds.count("start") == 1 and kinds.count("end") == 1 and kinds.count("checkpoint") == 2, kinds
    points = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    keys = [(p["epoch"], p["step"], p["split"]) for p in points]
    assert len(keys) == len(set(keys)) and {p["split"] for p in points} >= {"train", "val", "test"}
    assert {p.name for p in folder.iterdir()} == JOB_FILES
    assert {p.name for p in (folder / "checkpoints").iterdir()} <= {"last.ckpt", "last.ckpt.prev", "best.pt"}
    from xpm_train import checkpoint

    saved = checkpoint.load(folder / "checkpoints" / "last.ckpt")["xpm_train"]
    assert len(saved["rng_ranks"]) == 2  # every rank's random state, for an identical resume

    # the number of ranks is resources: with one process the plan finds the same job, done
    before = what_ran(two_ranks)
    result = run_experiment(PLAN, two_ranks, *OVERRIDES, f"launcher={ONE}", env=launchers_env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert what_ran(two_ranks) == before


def start_plan(workdir: Path, env: dict) -> subprocess.Popen:
    command = [sys.executable, "-m", "experimaestro", "run-experiment", "--workdir", str(workdir)]
    for item in (*OVERRIDES, f"launcher={TWO_RANKS}"):
        command += ["-c", item]
    return subprocess.Popen([*command, str(PLAN)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env={**os.environ, **env})


def test_a_killed_two_rank_job_resumes_to_the_weights_of_an_uninterrupted_one(two_ranks, launchers_env, tmp_path):
    import torch

    from reliability.test_kill_resume import kill_job_processes
    from xpm_train import checkpoint

    workdir = tmp_path / "ws"
    plan = start_plan(workdir, launchers_env)
    try:
        wait_for_checkpoint(workdir, plan)
    finally:
        os.killpg(plan.pid, signal.SIGKILL)  # the plan, then rank 0 and rank 1 (its follower)
        plan.wait()
        kill_job_processes(workdir / "jobs")
    job = job_folder(workdir)
    assert not (job / "lightningfit.done").exists()

    result = run_experiment(PLAN, workdir, *OVERRIDES, f"launcher={TWO_RANKS}", env=launchers_env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    resumed = [e for e in events(job) if e["event"] == "resume"]
    assert len(resumed) == 1 and resumed[0]["epoch"] < 2 and resumed[0]["ranks"] == 2, events(job)
    assert [e["event"] for e in events(job)][-1] == "end"
    reference = job_folder(two_ranks)
    expected, actual = (checkpoint.load(f / "checkpoints" / "last.ckpt")["state_dict"] for f in (reference, job))
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    ref_final, got_final = (json.loads((f / "final.json").read_text()) for f in (reference, job))
    assert (got_final["final"], got_final["best"], got_final["steps"]) == \
        (ref_final["final"], ref_final["best"], ref_final["steps"])


def rank_0_pids(jobs: Path) -> list[int]:
    """The processes running the job script as the job (what experimaestro
    signals), not as a follower rank (those have ``RANK`` set)."""
    pids, followers = [], 0
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode() if proc.name.isdigit() else ""
            if str(jobs) in command and "lightningfit.py" in command:
                environ = (proc / "environ").read_bytes().split(b"\0")
                if any(item.startswith(b"RANK=") for item in environ):
                    followers += 1
                else:
                    pids.append(int(proc.name))
        except OSError:
            continue
    assert pids and followers == 1, (pids, followers)
    return pids


def test_sigterm_to_rank_0_stops_both_ranks_and_the_job_resumes_identically(two_ranks, launchers_env, tmp_path):
    """Locally only rank 0 is signalled: the ranks agree after each step, all
    stop with GracefulTimeout, experimaestro runs the job again in the same plan."""
    import torch

    from reliability.test_kill_resume import kill_job_processes
    from xpm_train import checkpoint

    workdir = tmp_path / "ws"
    plan = start_plan(workdir, launchers_env)
    try:
        wait_for_checkpoint(workdir, plan)
        for pid in rank_0_pids(workdir / "jobs"):
            os.kill(pid, signal.SIGTERM)
        _, stderr = plan.communicate(timeout=600)
    finally:
        if plan.poll() is None:
            os.killpg(plan.pid, signal.SIGKILL)
        kill_job_processes(workdir / "jobs")
    assert plan.returncode == 0, stderr[-3000:]
    job = job_folder(workdir)
    kinds = [e["event"] for e in events(job)]
    preempted = [e for e in events(job) if e["event"] == "preempted"]
    assert len(preempted) == 1 and preempted[0]["signal"] == "SIGTERM", kinds
    assert kinds.count("resume") == 1 and kinds[-1] == "end", kinds
    reference = job_folder(two_ranks)
    expected, actual = (checkpoint.load(f / "checkpoints" / "last.ckpt")["state_dict"] for f in (reference, job))
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name


def test_a_pruned_trial_stops_every_rank(tmp_path, local_launchers, monkeypatch):
    """Rank 0 asks the trial; the decision is broadcast, so rank 1 stops at the
    same epoch (alone, it would wait for rank 0 until the collective timeout)."""
    from experimaestro import experiment

    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.syspath_prepend(str(REPO / "tests" / "workflows"))
    from digits_configs import DigitsClassifier, DigitsData
    from trials import PruneAfter

    from xpm_train import find_launcher
    from xpm_train.lightning import LightningFit

    # hidden=12: not the job of tests/lightning (one scheduler per pytest process refuses a second submit)
    fit = LightningFit.C(module=DigitsClassifier.C(hidden=12), datamodule=DigitsData.C(), max_epochs=3,
                         accelerator="cpu", trial=PruneAfter.C(epoch=0))
    with experiment(tmp_path / "ws", "prune", port=None) as xp:
        xp.workspace.python_path.append(str(EXAMPLE))
        fit.submit(launcher=find_launcher(TWO_RANKS))
    folder = job_folder(tmp_path / "ws")
    final = json.loads((folder / "final.json").read_text())
    kinds = [e["event"] for e in events(folder)]
    assert final["pruned"] is True and final["epochs"] == 1 and "pruned" in kinds, (final, kinds)
    start, = [e for e in events(folder) if e["event"] == "start"]
    assert start["ranks"] == 2


@pytest.mark.gpu
@pytest.mark.skipif(cuda_devices() < 2, reason="needs 2 CUDA GPUs")
def test_lightning_fit_on_two_gpus(tmp_path):
    """nccl, one GPU per rank (``cuda:<local rank>`` in each, pinned by the launcher)."""
    path = tmp_path / "launchers.yaml"
    path.write_text(GPUS)
    env = {"XPM_TRAIN_LAUNCHERS": str(path), "XPM_TRAIN_GPU_LOCK_DIR": str(tmp_path / "locks")}
    overrides = [o for o in OVERRIDES if not o.startswith("accelerator=")]
    result = run_experiment(PLAN, tmp_path / "ws", *overrides, "accelerator=gpu",
                            "launcher=cuda(mem=1G)*2 & processes=2", env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    folder = job_folder(tmp_path / "ws")
    start, = [e for e in events(folder) if e["event"] == "start"]
    assert start["ranks"] == 2
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in (folder / "lightningfit.err").read_text()
    final = json.loads((folder / "final.json").read_text())
    assert final["steps"] == 2 * math.ceil(math.ceil(train_samples() / 2) / BATCH)
