"""A failed job is run again by the next run of the plan (same job ID): its
data was missing, the user fetches it and runs the same command again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import run_experiment

pytestmark = pytest.mark.integration
PARAMS = Path(__file__).resolve().parent / "plans" / "rerun" / "params.yaml"


def test_failed_job_is_run_again_by_the_next_plan_run(tmp_path):
    from xpm_train.data import write_idx_dataset

    data, workdir = tmp_path / "mnist", tmp_path / "ws"
    data.mkdir()
    first = run_experiment(PARAMS, workdir, f"data_folder={data}")
    assert first.returncode != 0
    assert "1 job(s) failed" in first.stderr + first.stdout, first.stderr[-3000:]
    (job,) = (workdir / "jobs" / "xpm_train.learn.learn").iterdir()
    assert (job / "learn.failed").exists() and not (job / "learn.done").exists()
    assert "raw file(s) missing" in (job / "learn.err").read_text()

    write_idx_dataset(data, n_train=200, n_test=50)
    second = run_experiment(PARAMS, workdir, f"data_folder={data}")
    assert second.returncode == 0, second.stderr[-3000:]
    assert [p.name for p in (workdir / "jobs" / "xpm_train.learn.learn").iterdir()] == [job.name]
    assert (job / "learn.done").exists() and not (job / "learn.failed").exists()
    events = [json.loads(line)["event"] for line in (job / "events.jsonl").read_text().splitlines()]
    assert events[0] == "start" and events[-1] == "end"
    assert json.loads((job / "final.json").read_text())["epochs"] == 1
