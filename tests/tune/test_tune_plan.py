"""A study run for real by ``experimaestro run-experiment``: trials are Learn
jobs, run 2 at a time, cached by content; Tune -> Evaluate at the end.

One module-scoped study (4 trials) is shared: re-running it starts nothing,
raising n_trials to 6 trains exactly 2 new configurations.
"""

from __future__ import annotations

import json
import time

import pytest
from tunehelpers import learn_jobs, our_tracebacks, trials, write_params

from helpers import run_experiment, what_ran, xpm_train

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tune")
    workdir = folder / "ws"
    result = run_experiment(write_params(folder, n_trials=4, n_parallel=2), workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder, workdir, result


def test_first_run_trains_each_trial_once(study):
    _, workdir, result = study
    rows = trials(workdir)
    assert len(rows) == 4
    assert all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    jobs = learn_jobs(workdir)
    assert set(jobs.values()) == {1}  # every Learn started exactly once
    assert {r["job"].rsplit("/", 1)[-1] for r in rows} == set(jobs)
    assert not our_tracebacks(result.stderr)
    assert "ended with code -1" not in result.stderr  # jobs that succeeded (launchers/process.py)


def test_tune_records_the_study_and_evaluate_uses_the_best(study):
    _, workdir, result = study
    (tune,) = (workdir / "jobs" / "xpm_train.tune.task.tune").glob("*")
    summary = json.loads((tune / "results.json").read_text())
    rows = trials(workdir)
    best = max((r for r in rows if r["state"] == "COMPLETE"), key=lambda r: r["value"])
    assert summary["best_trial"] == best["number"] and summary["best_job"] == best["job"]
    assert summary["trials"] == 4 and len(json.loads((tune / "trials.json").read_text())) == 4
    assert (tune / "optimization_history.png").stat().st_size > 1000
    (evaluate,) = (workdir / "jobs" / "xpm_train.evaluate.evaluate").glob("*")
    assert json.loads((evaluate / "results.json").read_text())["accuracy"] > 0.5
    # The edge Tune -> Evaluate: Evaluate's init task is the Tune's output
    params = (evaluate / "params.json").read_text()
    assert tune.name in params
    # the plan read the Evaluate's result with xpm_train.plan.job_of
    accuracy = json.loads((evaluate / "results.json").read_text())["accuracy"]
    assert f"TEST {accuracy:.4f}" in result.stdout


def test_second_run_starts_nothing(study):
    folder, workdir, _ = study
    before = what_ran(workdir)
    start = time.monotonic()
    result = run_experiment(write_params(folder, n_trials=4, n_parallel=2), workdir)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr[-3000:]
    assert what_ran(workdir) == before
    assert len(trials(workdir)) == 4
    print(f"re-run of the finished study: {elapsed:.1f} s")  # noqa: T201


def test_more_trials_train_only_the_new_ones(study):
    folder, workdir, _ = study
    before = learn_jobs(workdir)
    evidence = what_ran(workdir)
    result = run_experiment(write_params(folder, n_trials=6, n_parallel=2), workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    after = learn_jobs(workdir)
    assert len(after) - len(before) == 2 and set(after.values()) == {1}
    now = what_ran(workdir)
    assert all(now[key] == value for key, value in evidence.items() if "learn" in key)
    assert len(trials(workdir)) == 6


def test_cli_list_and_show(study):
    _, workdir, _ = study
    listing = xpm_train("tune", "list", "--workdir", str(workdir))
    assert listing.returncode == 0, listing.stderr
    assert "tiny-" in listing.stdout and "6 trials" in listing.stdout
    shown = xpm_train("tune", "show", "tiny", "--workdir", str(workdir))
    assert shown.returncode == 0, shown.stderr
    lines = [line for line in shown.stdout.splitlines() if line.split() and line.split()[0].isdigit()]
    assert len(lines) == 6 and "best: trial" in shown.stdout
    as_json = json.loads(xpm_train("tune", "show", "tiny", "--workdir", str(workdir), "--format", "json").stdout)
    assert len(as_json["trials"]) == 6 and as_json["best"]["job"].startswith("xpm_train.learn.learn/")
    missing = xpm_train("tune", "show", "nope", "--workdir", str(workdir))
    assert missing.returncode == 1 and "no study 'nope'" in missing.stderr and "Traceback" not in missing.stderr


def test_a_trial_reproduces_bit_identically_and_leaves_the_study_alone(study, tmp_path):
    """``xpm-train reproduce`` of a trial: the same job ID in another workspace, the
    same weights bit for bit; the study (its journal) and the workspace are untouched."""
    from xpm_train.tune.storage import journal_path, list_studies

    _, workdir, _ = study
    (name,) = list_studies(workdir)
    journal = journal_path(workdir, name)
    rows, recorded, before = trials(workdir), journal.read_bytes(), what_ran(workdir)
    trial = next(row for row in rows if row["state"] == "COMPLETE")
    result = xpm_train("reproduce", trial["job"], "--workdir", str(workdir), "--into", str(tmp_path / "copy"),
                       timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert result.stdout.startswith("reproduced: bit-identical weights (4 tensors) and metrics\n"), result.stdout
    assert (tmp_path / "copy" / "jobs" / trial["job"] / "learn.done").exists()
    assert journal.read_bytes() == recorded and trials(workdir) == rows and what_ran(workdir) == before
