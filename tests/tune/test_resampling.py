"""A study run again (resumed after a SIGKILL of its plan, or extended with a
larger n_trials) while its sampler is still in its random start-up phase
draws new configurations: it does not replay the first run's suggestions
(each run of a study seeds its sampler apart: ``samplers.run_seed``)."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from test_processes import finish, start_plan
from tunehelpers import learn_jobs, trials, write_params

from helpers import run_experiment
from xpm_train.errors import NotFound
from xpm_train.tune.samplers import run_seed

pytestmark = pytest.mark.integration

RANDOM_PHASE = {"startup_trials": 20}
"""Every trial of these tests is sampled at random (TPE's start-up phase)"""


def configurations(rows: list[dict]) -> set[str]:
    return {json.dumps(r["params"], sort_keys=True) for r in rows}


def finished(workdir) -> int:
    """Finished trials of the study (0 while the plan has not created it)."""
    try:
        return sum(r["state"] in ("COMPLETE", "PRUNED") for r in trials(workdir))
    except (ValueError, NotFound):  # no study folder yet, or its journal holds no study yet
        return 0


def test_run_seeds_differ_per_run_and_driver():
    assert run_seed(7, 0, 0) == 7 and run_seed(7, 0, 1) == 8  # a new study: the seed itself (+ rank)
    seeds = {run_seed(7, started, rank) for started in range(1, 50) for rank in range(3)}
    assert len(seeds) == 49 * 3 and not seeds & {7, 8, 9}


def test_an_extended_study_draws_new_configurations(tmp_path):
    workdir = tmp_path / "ws"
    for n_trials in (2, 4):
        result = run_experiment(write_params(tmp_path, n_trials=n_trials, **RANDOM_PHASE), workdir)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = trials(workdir)
    assert len(rows) == 4 and len(configurations(rows)) == 4, [r["params"] for r in rows]
    assert set(learn_jobs(workdir).values()) == {1} and len(learn_jobs(workdir)) == 4


def test_a_plan_killed_mid_study_then_run_again_draws_new_configurations(tmp_path):
    workdir = tmp_path / "ws"
    params = write_params(tmp_path, n_trials=6, n_parallel=2, **RANDOM_PHASE)
    plan = start_plan(params, workdir)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and finished(workdir) < 2:  # SIGKILL once 2 trials have finished
        time.sleep(0.3)
    os.killpg(plan.pid, signal.SIGKILL)
    plan.communicate()
    killed_at = len(trials(workdir))
    assert killed_at < 6, "the plan finished before it was killed"

    code, output = finish(start_plan(params, workdir))
    assert code == 0, output[-3000:]
    rows = trials(workdir)
    assert len(rows) >= 6 and all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    assert len(configurations(rows)) == len(rows), [r["params"] for r in rows]
    assert set(learn_jobs(workdir).values()) == {1}  # nothing trained twice


def test_a_trial_whose_driver_died_before_recording_itself_is_adopted(tmp_path):
    """A plan killed between Optuna's ``ask()`` and the trial's ``driver``
    attribute (seen in the chaos test) left a RUNNING trial that no driver
    adopted: it stayed RUNNING for good. The next run claims and runs it."""
    import optuna

    from xpm_train.tune.storage import journal_path, list_studies, open_storage

    workdir = tmp_path / "ws"
    first = run_experiment(write_params(tmp_path, n_trials=2, **RANDOM_PHASE), workdir)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    (name,) = list_studies(workdir)
    orphan = optuna.load_study(study_name=name, storage=open_storage(journal_path(workdir, name))).ask()
    again = run_experiment(write_params(tmp_path, n_trials=3, **RANDOM_PHASE), workdir)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    rows = trials(workdir)
    assert len(rows) == 3 and all(r["state"] in ("COMPLETE", "PRUNED") for r in rows), rows
    assert rows[orphan.number]["job"], rows[orphan.number]  # run by the second run's driver
    assert set(learn_jobs(workdir).values()) == {1} and len(learn_jobs(workdir)) == 3
