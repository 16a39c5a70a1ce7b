"""ASHA (Study.scheduler): trials trained rung by rung as prefix budgets,
paused and promoted; a re-run trains nothing, an extended study only new work,
and Optuna's own client reads each rung's value.

One module-scoped workspace: 9 trials (rungs of 1, 3 and 9 epochs, eta 3,
2 in parallel), the same plan again, then the study extended to twice the
trials (as experiments/asha's 27 to 54).
Apart (issue 24 item 3): a plan SIGKILLed mid-rung, then run again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from tunehelpers import write_params

from helpers import REPO, run_experiment, what_ran, xpm_train

pytestmark = pytest.mark.integration
ASHA_PARAMS = {"asha": [1, 9, 3], "n_parallel": 2, "label": "asha"}
RUNGS = [1, 3, 9]
EXTENDED = 18


def epochs_trained(workdir, resumed: bool = False) -> dict[str, int]:
    """``{Learn job: epochs it trained itself}``: the epochs in its
    ``metrics.jsonl`` less those of the job it continued (copied from it).
    ``resumed``: a job killed between logging an epoch and checkpointing it
    logs that epoch again (the work in flight): epochs are counted once."""
    def epochs_in(folder):
        rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
        return [r["epoch"] for r in rows if r.get("split") == "val"]

    trained = {}
    for folder in (workdir / "jobs" / "xpm_train.learn.learn").glob("*"):
        own = epochs_in(folder)
        if resumed:
            own = sorted(set(own))
        assert len(own) == len(set(own)), f"{folder.name} has an epoch twice: {own}"
        final = json.loads((folder / "final.json").read_text())
        prefix = final.get("continued_from")
        before = epochs_in(workdir / "jobs" / prefix) if prefix else []
        trained[folder.name] = len(own) - len(before)
    return trained


def trials_of(workdir):
    """The trials of the only study of ``workdir``, read by Optuna's own client."""
    import optuna

    from xpm_train.tune.storage import journal_path, list_studies, open_storage

    (name,) = list_studies(workdir)
    return optuna.load_study(study_name=name, storage=open_storage(journal_path(workdir, name))).get_trials()


@pytest.fixture(scope="module")
def asha(tmp_path_factory):
    folder = tmp_path_factory.mktemp("asha")
    workdir = folder / "ws"
    first = run_experiment(write_params(folder, n_trials=9, **ASHA_PARAMS), workdir)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    snapshot = {"ran": what_ran(workdir), "trained": epochs_trained(workdir), "trials": trials_of(workdir)}
    again = run_experiment(write_params(folder, n_trials=9, **ASHA_PARAMS), workdir)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    snapshot["again"] = (again, what_ran(workdir))
    extended = run_experiment(write_params(folder, n_trials=EXTENDED, **ASHA_PARAMS), workdir)
    assert extended.returncode == 0, extended.stdout[-3000:] + extended.stderr[-3000:]
    return workdir, snapshot, extended


def check_ladder(trials, trained: dict[str, int], n_trials: int, rungs: list[int] = RUNGS) -> None:
    """Each trial went up the ladder, fewer at each rung, and the
    epochs trained over all jobs are each trial's highest rung: none twice."""
    assert len(trials) == n_trials
    reached = []
    for trial in trials:
        steps = sorted(trial.intermediate_values)
        assert steps == rungs[:len(steps)] and steps, (trial.number, steps)
        reached.append(steps[-1])
        assert (trial.state.name == "COMPLETE") == (steps[-1] == rungs[-1]), (trial.number, trial.state)
        if trial.state.name == "COMPLETE":
            assert trial.value == trial.intermediate_values[rungs[-1]]
    # asynchronous: a trial is promoted when it is in the top 1/eta of its rung
    # *then* (a later, better trial does not undo it), so only fewer go up
    for k in range(1, len(rungs)):
        assert sum(r >= rungs[k] for r in reached) < sum(r >= rungs[k - 1] for r in reached)
    assert sum(r >= rungs[1] for r in reached) >= 1  # something was promoted
    assert sum(trained.values()) == sum(reached), (trained, reached)


def test_trials_train_rung_by_rung_and_no_epoch_twice(asha):
    _, snapshot, _ = asha
    check_ladder(snapshot["trials"], snapshot["trained"], 9)


def test_optunas_own_client_reads_each_rungs_value(asha):
    _, snapshot, _ = asha
    trials = snapshot["trials"]
    (best,) = [t for t in trials if t.state.name == "COMPLETE"]  # one reached the last rung
    assert sorted(best.intermediate_values) == RUNGS and best.value == best.intermediate_values[9]
    paused = [t for t in trials if t.state.name == "RUNNING"]
    assert paused and all(t.user_attrs["asha_epochs"] == max(t.intermediate_values) for t in paused)


def test_a_rerun_trains_nothing(asha):
    _, snapshot, _ = asha
    again, ran = snapshot["again"]
    assert "LAUNCHED 0" in again.stdout, again.stdout[-2000:]
    assert {k: v for k, v in ran.items() if "learn" in k} == \
        {k: v for k, v in snapshot["ran"].items() if "learn" in k}


def test_every_rung_job_keeps_its_trials_tags_after_a_rerun(asha):
    workdir, _, _ = asha
    result = xpm_train("results", "--workdir", str(workdir), "--experiment", "tune-test", "--task", "learn",
                       "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    jobs = list((workdir / "jobs" / "xpm_train.learn.learn").glob("*"))
    assert len(rows) == len(jobs) and all(isinstance(row.get("trial"), int) for row in rows), rows


def test_an_extended_study_trains_only_new_work(asha):
    workdir, snapshot, extended = asha
    trained = epochs_trained(workdir)
    assert {job: trained[job] for job in snapshot["trained"]} == snapshot["trained"]  # the first run's, as they were
    trials = trials_of(workdir)
    check_ladder(trials, trained, EXTENDED)
    # the extension's jobs trained exactly the rungs it added, counted from their metrics.jsonl
    before = {t.number: max(t.intermediate_values) for t in snapshot["trials"]}
    after = {t.number: max(t.intermediate_values) for t in trials}
    new_jobs = set(trained) - set(snapshot["trained"])
    assert new_jobs and sum(trained[job] for job in new_jobs) == sum(after.values()) - sum(before.values())
    # a trial of the first run promoted by the extension continued its paused job, not from scratch
    paused = {t.number: t.user_attrs["job"] for t in snapshot["trials"] if t.state.name == "RUNNING"}
    for trial in trials:
        if trial.number in paused and after[trial.number] > before[trial.number]:
            assert paused[trial.number] in continued_chain(workdir, trial.user_attrs["job"]), trial.number


def continued_chain(workdir, job: str) -> list[str]:
    """The jobs ``job`` continued, nearest first (``continued_from`` of each ``final.json``)."""
    chain = []
    while job:
        job = json.loads((workdir / "jobs" / job / "final.json").read_text()).get("continued_from")
        chain += [job] if job else []
    return chain


def test_a_study_too_small_for_the_ladder_says_to_raise_n_trials(tmp_path):
    params = write_params(tmp_path, n_trials=2, **ASHA_PARAMS)
    result = run_experiment(params, tmp_path / "ws")
    assert result.returncode != 0
    assert "no trial reached max_epochs=9" in result.stderr + result.stdout, result.stderr[-3000:]
    assert "raise n_trials above 2 (about eta**2=9" in result.stderr + result.stdout


@pytest.mark.parametrize("kwargs, message", [
    ({"min_epochs": 10, "max_epochs": 9}, "min_epochs=10 is above max_epochs=9"),
    ({"eta": 1}, "eta=1 must be at least 2"),
    ({"min_epochs": 0}, "min_epochs=0 must be at least 1"),
])
def test_a_ladder_that_does_not_fit_is_refused(kwargs, message):
    from xpm_train.tune import ASHA
    from xpm_train.tune.study import StudyError

    with pytest.raises(StudyError, match=message) as error:
        ASHA(**kwargs)
    assert "\n" not in str(error.value)


def test_asha_rungs_and_study_checks():
    from xpm_train import MLP, SGD, Learn, Synthetic
    from xpm_train.tune import ASHA, Float, Space, Study
    from xpm_train.tune.study import StudyError

    assert ASHA(1, 27, 3).rungs == [1, 3, 9, 27] and ASHA(2, 10, 2).rungs == [2, 4, 8, 10]
    base = Learn.C(model=MLP.C(hidden_dims=[8]), data=Synthetic.C(split="train"), optimizer=SGD.C(), epochs=2)
    space = Space([Float("optimizer.lr", 1e-4, 0.1, log=True)])
    plain = Study(label="s", base=base, space=space)
    study = Study(label="s", base=base, space=space, scheduler=ASHA(1, 9, 3))
    assert study.name != plain.name
    with pytest.raises(StudyError, match="horizon=5 differs from max_epochs=9"):
        Study(label="s", base=_with(base, horizon=5), space=space, scheduler=ASHA(1, 9, 3))


def test_asha_refuses_the_trials_of_a_training_function_even_with_a_budget():
    import sys

    from helpers import REPO
    from xpm_train.tune import ASHA, Float, NoPruner, Space, Study
    from xpm_train.tune.study import StudyError

    sys.path.insert(0, str(REPO / "tests" / "budgetplan"))
    from budgetfn import budgeted

    space = Space([Float("lr", 1e-3, 0.1, log=True)])
    with pytest.raises(StudyError, match="ASHA: trials of budgeted are not supported yet"):
        Study(label="s", base=budgeted.C(epochs=9), space=space, pruner=NoPruner.C(), scheduler=ASHA(1, 9, 3))


def _with(config, **values):
    copy = config.copy()
    for key, value in values.items():
        setattr(copy, key, value)
    return copy


KILL_RUNGS = [30, 90, 270]


def in_flight(workdir) -> bool:
    """Whether a Learn job has checkpointed and is not done (a rung is mid-way)."""
    for folder in (workdir / "jobs").glob("xpm_train.learn.learn/*"):
        events = folder / "events.jsonl"
        if events.exists() and '"checkpoint"' in events.read_text() and not list(folder.glob("*.done")):
            return True
    return False


def kill_mid_rung(params, workdir) -> bool:
    """Start the plan and SIGKILL it (its whole process group) while a rung is
    mid-way; whether it was (the plan may finish first)."""
    command = [sys.executable, "-m", "experimaestro", "run-experiment", "--workdir", str(workdir), str(params)]
    plan = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    while plan.poll() is None:
        time.sleep(0.1)
        if in_flight(workdir):
            os.killpg(plan.pid, signal.SIGKILL)
            plan.wait()
            return True
    return False


def test_a_killed_study_run_again_trains_no_epoch_twice(tmp_path):
    params = write_params(tmp_path, n_trials=9, n_parallel=2, asha=[30, 270, 3], label="asha-kill")
    for attempt in range(3):  # timing-dependent: the plan may end before a rung is caught mid-way
        workdir = tmp_path / f"ws{attempt}"
        if kill_mid_rung(params, workdir):
            break
    else:
        pytest.fail("the plan always finished before a rung could be caught mid-way")
    again = run_experiment(params, workdir)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    # what an uninterrupted study trains: each trial's highest rung, once
    check_ladder(trials_of(workdir), epochs_trained(workdir, resumed=True), 9, KILL_RUNGS)


def test_tune_show_gives_a_paused_trials_last_rung(asha):
    from tunehelpers import trials

    workdir, _, _ = asha
    by_number = {t.number: t for t in trials_of(workdir)}
    paused = [row for row in trials(workdir) if row["state"] == "RUNNING"]
    assert paused
    for row in paused:
        steps = by_number[row["number"]].intermediate_values
        assert row["epochs"] == max(steps) < 9 and row["value"] == steps[max(steps)], row
