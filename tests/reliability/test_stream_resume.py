"""The streaming path, killed at random steps: it resumes at the exact batch and
ends (CPU) with exactly the weights of an uninterrupted run *in memory*, so
streaming and holding the data give the same training, and resuming costs nothing.

The plan is plans/resume with ``streaming=true`` (a Meta: the very job of the
in-memory reference), its records prepared under ``$XPM_TRAIN_PREPARED``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import REPO, run_experiment
from test_kill_resume import HARNESS, PARAMS, crash_plan_once_started, final_weights, learn_folder

pytestmark = pytest.mark.integration
KILLS = 4


def events(job):
    return [json.loads(line) for line in (job / "events.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def in_memory(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("in-memory")
    result = run_experiment(PARAMS, workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return learn_folder(workdir)


def test_streamed_run_killed_at_random_steps_ends_as_in_memory(in_memory, tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("XPM_TRAIN_PREPARED", str(tmp_path / "prepared"))
    workdir = tmp_path / "ws"
    # A first run of 1 epoch prepares the records and streams them (another
    # job, epochs being a Param; the records are shared with the next one)
    result = run_experiment(PARAMS, tmp_path / "ws-1", "streaming=true", "epochs=1")
    assert result.returncode == 0, result.stderr[-3000:]
    (prepared,) = (tmp_path / "prepared").iterdir()
    assert (prepared / "header.json").exists()
    first = events(learn_folder(tmp_path / "ws-1"))[0]
    assert first["event"] == "start" and first["data"] == "stream", first

    crash_plan_once_started(workdir, "streaming=true")
    job = learn_folder(workdir)
    assert job.name == in_memory.name  # streaming is a Meta: the same task ID
    start = events(job)[0]  # what ran: this job found the records the first one prepared
    assert start["event"] == "start" and start["data_reason"].endswith(f"records in {prepared} (prepared before)")
    assert "chunk(s) decoded now" in first["data_reason"], first
    total_steps = json.loads((in_memory / "final.json").read_text())["steps"]
    harness = subprocess.run(
        [sys.executable, str(HARNESS), "learn", str(job / "learn.py"), str(KILLS), "4321", str(total_steps)],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert harness.returncode == 0, harness.stderr[-3000:]
    report = json.loads(harness.stdout.splitlines()[-1])
    assert not report["finished_early"] and len(report["injections"]) == KILLS and report["corrupt"] == []
    # Preemption (SIGUSR1): checkpoints in the middle of epochs, so the runs resume mid-epoch
    harness = subprocess.run(
        [sys.executable, str(HARNESS), "learn", str(job / "learn.py"), "2", "99", str(total_steps), "SIGUSR1"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert harness.returncode == 0, harness.stderr[-3000:]
    report = json.loads(harness.stdout.splitlines()[-1])
    assert len(report["injections"]) == 2 and report["corrupt"] == []

    result = run_experiment(PARAMS, workdir, "streaming=true")
    assert result.returncode == 0, result.stderr[-3000:]
    log = events(job)
    resumes = [e for e in log if e["event"] == "resume"]
    assert len(resumes) >= 3 and all(e["data"] == "stream" for e in resumes), log
    assert any(e["batch"] > 0 for e in resumes), "no resume in the middle of an epoch"
    assert list((tmp_path / "prepared").iterdir()) == [prepared]  # prepared once, shared

    expected, actual = final_weights(in_memory), final_weights(job)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    got, ref = (json.loads((folder / "final.json").read_text()) for folder in (job, in_memory))
    assert got["final"] == ref["final"] and got["best"] == ref["best"]
