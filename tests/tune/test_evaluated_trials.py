"""``Study(evaluate=True)``: each finished trial's Learn is followed by an
Evaluate on the data it held out, and an ``evaluate.*`` metric is the objective."""

from __future__ import annotations

import json

import pytest
from tunehelpers import learn_jobs, our_tracebacks, trials, write_params

from helpers import run_experiment, what_ran

pytestmark = pytest.mark.integration


def test_each_finished_trial_is_evaluated_on_the_held_out_data(tmp_path):
    params = write_params(tmp_path, n_trials=3, n_parallel=2, evaluate=True, metric="evaluate.accuracy",
                          label="evaluated")
    workdir = tmp_path / "ws"
    result = run_experiment(params, workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not our_tracebacks(result.stderr)

    rows = trials(workdir)
    assert len(rows) == 3 and set(learn_jobs(workdir).values()) == {1}
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    assert complete, rows
    for row in rows:
        if row["state"] != "COMPLETE":  # a pruned trial is not evaluated
            assert row["evaluation"] is None
            continue
        evaluation = workdir / "jobs" / row["evaluation"]
        results = json.loads((evaluation / "results.json").read_text())
        assert row["value"] == results["accuracy"]  # the objective is the Evaluate's
        # ... which measured the Learn's best weights on its validation part
        final = json.loads((workdir / "jobs" / row["job"] / "final.json").read_text())
        assert results["accuracy"] == final["best"]["val_accuracy"]
        assert results["samples"] == 64  # 25% of the 256 Synthetic training images
        assert row["job"].rsplit("/", 1)[-1] in (evaluation / "params.json").read_text()

    # Run again: the study is complete, every job cached
    before = what_ran(workdir)
    again = run_experiment(params, workdir)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert what_ran(workdir) == before
