"""Two runs at once on one workspace never run a job twice.

- The same plan twice: experimaestro's experiment lock makes the second wait
  ("Experiment is locked ... waiting"), then it finds the job done.
- Two experiments (different ids) submitting the same job: the job lock makes
  one wait for the other's job, which both then share.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from helpers import REPO

pytestmark = pytest.mark.integration
PARAMS = REPO / "tests" / "reliability" / "plans" / "resume" / "params.yaml"


def start(params, workdir) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "experimaestro", "run-experiment", "--workdir", str(workdir), str(params)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def job_events(workdir) -> list[str]:
    (events,) = list((workdir / "jobs").glob("xpm_train.learn.learn/*/events.jsonl"))
    return [json.loads(line)["event"] for line in events.read_text().splitlines()]


@pytest.mark.parametrize("second_id", ["resume", "resume-twin"])
def test_two_runs_at_once_run_the_job_once(tmp_path, second_id):
    workdir = tmp_path / "ws"
    second = PARAMS
    if second_id != "resume":
        second = tmp_path / "twin.yaml"
        second.write_text(f"imports: [{PARAMS}]\nid: {second_id}\n")
    first_run = start(PARAMS, workdir)
    time.sleep(0.5)
    second_run = start(second, workdir)
    outputs = [run.communicate(timeout=600)[0] for run in (first_run, second_run)]
    assert first_run.returncode == 0 and second_run.returncode == 0, outputs
    events = job_events(workdir)
    assert events.count("start") == 1 and "resume" not in events and events[-1] == "end", events
    assert len(list((workdir / "jobs").glob("xpm_train.learn.learn/*"))) == 1
    if second_id == "resume":
        assert any("Experiment is locked" in out for out in outputs), outputs[1][-2000:]
