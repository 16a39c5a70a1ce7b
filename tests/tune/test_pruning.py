"""Pruning across processes, for real: the Learn job of a hopeless trial stops
after its first epoch because the pruner, asked from the Learn process
through the journal, says so; it ends DONE with "pruned": true."""

from __future__ import annotations

import json

import pytest
from tunehelpers import GOOD_THEN_BAD, learn_jobs, trials, write_params

from helpers import run_experiment
from xpm_train.tune.report import load_trials
from xpm_train.tune.storage import journal_path, list_studies

pytestmark = pytest.mark.integration
EPOCHS = 4


@pytest.mark.parametrize("pruner", ["median", "halving"])
def test_a_hopeless_trial_stops_early(tmp_path, pruner):
    workdir = tmp_path / "ws"
    params = write_params(tmp_path, n_trials=2, n_parallel=1, epochs=EPOCHS, pruner=pruner, enqueue=GOOD_THEN_BAD)
    result = run_experiment(params, workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    good, bad = trials(workdir)
    assert (good["state"], good["epochs"]) == ("COMPLETE", EPOCHS)
    assert bad["state"] == "PRUNED" and bad["epochs"] < EPOCHS
    folder = workdir / "jobs" / bad["job"]
    final = json.loads((folder / "final.json").read_text())
    assert final["pruned"] is True and final["epochs"] == bad["epochs"] < EPOCHS
    assert (folder / "learn.done").exists()
    events = [json.loads(line)["event"] for line in (folder / "events.jsonl").read_text().splitlines()]
    assert events.count("pruned") == 1 and events[-1] == "end"
    # The decision was taken in the Learn process (its log), not by the plan
    assert f"trial {bad['number']}: epoch {bad['epochs']}" in (folder / "learn.err").read_text()

    # A later study (another seed: another name) that samples the same
    # configuration gets the pruned job back as PRUNED, without training.
    before, studies = learn_jobs(workdir), set(list_studies(workdir))
    again = write_params(tmp_path, "again", n_trials=2, n_parallel=1, epochs=EPOCHS, pruner=pruner,
                         enqueue=GOOD_THEN_BAD, sampler_seed=1)
    result = run_experiment(again, workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert learn_jobs(workdir) == before
    (other,) = set(list_studies(workdir)) - studies
    states = sorted(r["state"] for r in load_trials(journal_path(workdir, other), other))
    assert states == ["COMPLETE", "PRUNED"]
