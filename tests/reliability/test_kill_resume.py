"""SIGKILL at random moments: nothing corrupt, and the resumed training ends
with exactly the weights of an uninterrupted one (CPU).

One plan (plans/resume: a Learn with dropout, warm-up + cosine schedule and
gradient clipping, 4 epochs, every step logged) runs uninterrupted in one
workspace. In a second workspace the plan is started and its whole process
group is killed as soon as the job has started (a node crash); then
``kill_harness.py`` runs the job script again 20 times, each killed with
SIGKILL at a random step plus 0-20 ms (inside steps, validation, checkpoint
writes), checking the checkpoints after each kill; finally the same plan is
run again and must finish the job by resuming it.
"""

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

pytestmark = pytest.mark.integration
HERE = Path(__file__).resolve().parent
PARAMS = HERE / "plans" / "resume" / "params.yaml"
HARNESS = HERE / "kill_harness.py"
KILLS = 20


def learn_folder(workdir: Path) -> Path:
    folders = list((workdir / "jobs" / "xpm_train.learn.learn").glob("*"))
    assert len(folders) == 1, folders
    return folders[0]


def crash_plan_once_started(workdir: Path, *overrides: str, timeout: float = 300) -> None:
    """Start the plan (``overrides``: ``key=value`` of its configuration) and
    SIGKILL its process group once the job logged a step."""
    command = [sys.executable, "-m", "experimaestro", "run-experiment", "--workdir", str(workdir),
               *[arg for item in overrides for arg in ("-c", item)], str(PARAMS)]
    plan = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            metrics = list((workdir / "jobs").glob("*/*/metrics.jsonl"))
            if metrics and metrics[0].stat().st_size > 0:
                return
            assert plan.poll() is None, "the plan ended before the job started"
            time.sleep(0.05)
        pytest.fail("the job did not start in time")
    finally:
        os.killpg(plan.pid, signal.SIGKILL)
        plan.wait()
        kill_job_processes(workdir / "jobs")  # jobs run in their own session: still alive


def kill_job_processes(jobs: Path) -> None:
    """SIGKILL every process running a job script under ``jobs`` (found in /proc:
    the plan may die before it records the job's pid), and wait until they are gone."""
    victims = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(jobs) in command:
            victims.append(int(proc.name))
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # Gone means reaped: experimaestro takes a zombie whose pid is in the job's
    # .pid file for a live job, waits on it and then fails the job (no .done, no
    # .failed). An orphan's zombie lasts until init reaps it, which is not at once
    # on every host; only a zombie of this process would never go, so it counts as gone.
    deadline = time.monotonic() + 30
    while victims and time.monotonic() < deadline:
        victims = [pid for pid in victims if not _gone(pid)]
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    """True once ``pid`` no longer exists, or is a zombie only this process could reap."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(errors="ignore")
    except OSError:
        return True
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    zombie = fields.get("State", "").startswith("Z")
    return zombie and fields.get("PPid", "").strip() == str(os.getpid())


def final_weights(folder: Path):
    from xpm_train import checkpoint

    return checkpoint.load(folder / "checkpoints" / "last.pt")["model"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reference")
    result = run_experiment(PARAMS, workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return learn_folder(workdir)


def test_sigkill_at_random_steps_resumes_to_identical_weights(reference, tmp_path):
    import torch

    workdir = tmp_path / "ws"
    crash_plan_once_started(workdir)
    job = learn_folder(workdir)
    assert job.name == reference.name  # same task ID
    total_steps = json.loads((reference / "final.json").read_text())["steps"]

    harness = subprocess.run(
        [sys.executable, str(HARNESS), "learn", str(job / "learn.py"), str(KILLS), "1234", str(total_steps)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert harness.returncode == 0, harness.stderr[-3000:]
    report = json.loads(harness.stdout.splitlines()[-1])
    assert not report["finished_early"], report
    assert len(report["injections"]) == KILLS
    assert report["corrupt"] == []
    # The kills landed all along the run (several epochs, checkpoints taken)
    assert len({i["checkpoint_epoch"] for i in report["injections"]}) >= 3, report

    result = run_experiment(PARAMS, workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (job / "learn.done").exists()
    events = [json.loads(line)["event"] for line in (job / "events.jsonl").read_text().splitlines()]
    assert events.count("resume") >= 10 and events[-1] == "end"
    assert not list((job / "checkpoints").glob(".*tmp*")), "stale temporary files left"

    expected, actual = final_weights(reference), final_weights(job)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    ref_final = json.loads((reference / "final.json").read_text())
    got_final = json.loads((job / "final.json").read_text())
    assert got_final["final"] == ref_final["final"] and got_final["best"] == ref_final["best"]


def test_sigkill_inside_checkpoint_writes_never_corrupts(tmp_path):
    harness = subprocess.run([sys.executable, str(HARNESS), "checkpoint", str(tmp_path), "30", "99"],
                             cwd=REPO, capture_output=True, text=True, timeout=600)
    assert harness.returncode == 0, harness.stderr[-3000:]
    report = json.loads(harness.stdout.splitlines()[-1])
    assert len(report["injections"]) == 30
    assert report["corrupt"] == [] and report["bad_content"] == []
    versions = report["injections"]
    assert None not in versions, versions  # an intact checkpoint after every kill
    assert versions == sorted(versions), versions  # never an older one than found before
    assert versions[-1] > 0  # the children did write (the kills landed during writes)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGUSR1"])
def test_preemption_signal_checkpoints_mid_epoch_and_resumes_identically(reference, tmp_path, signame):
    """Slurm's preemption warning (``--signal=USR1@60``) or a SIGTERM: Learn saves a
    mid-epoch checkpoint after the current step and exits within seconds; runs
    resumed from those checkpoints end with the uninterrupted weights."""
    import torch

    workdir = tmp_path / "ws"
    crash_plan_once_started(workdir)
    job = learn_folder(workdir)
    total_steps = json.loads((reference / "final.json").read_text())["steps"]
    harness = subprocess.run(
        [sys.executable, str(HARNESS), "learn", str(job / "learn.py"), "3", "77", str(total_steps), signame],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert harness.returncode == 0, harness.stderr[-3000:]
    report = json.loads(harness.stdout.splitlines()[-1])
    assert len(report["injections"]) == 3 and report["corrupt"] == []
    for injection in report["injections"]:
        assert injection["exit_seconds"] < 10
        # the checkpoint is the step where the signal arrived, not the last epoch end
        assert injection["checkpoint_step"] >= injection["target_step"], injection
    events = [json.loads(line) for line in (job / "events.jsonl").read_text().splitlines()]
    assert sum(e["event"] == "preempted" and e.get("signal") == signame for e in events) == 3

    result = run_experiment(PARAMS, workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    expected, actual = final_weights(reference), final_weights(job)
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_checkpoint_falls_back_to_previous_and_ends_identically(reference, tmp_path, damage):
    """A truncated or bit-flipped ``last.pt`` is detected by its checksum: the run
    resumes from ``last.pt.prev`` with a ``corrupt_checkpoint`` event, and still
    ends with the uninterrupted weights."""
    import torch

    workdir = tmp_path / "ws"
    crash_plan_once_started(workdir)
    job = learn_folder(workdir)
    total_steps = json.loads((reference / "final.json").read_text())["steps"]
    # one kill late in the run: last.pt and last.pt.prev both exist
    harness = subprocess.run(
        [sys.executable, str(HARNESS), "learn", str(job / "learn.py"), "1", "5", str(total_steps)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "XPM_TRAIN_KILL_AFTER": str(total_steps - 3)},
    )
    assert harness.returncode == 0, harness.stderr[-3000:]
    last = job / "checkpoints" / "last.pt"
    assert last.exists() and (job / "checkpoints" / "last.pt.prev").exists()
    data = bytearray(last.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    last.write_bytes(bytes(data))

    result = run_experiment(PARAMS, workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    events = [json.loads(line) for line in (job / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "corrupt_checkpoint" and e["path"].endswith("last.pt") for e in events)
    expected, actual = final_weights(reference), final_weights(job)
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
