"""OptunaTrial in worker processes: reports go to the journal file and the
pruner's answer comes back, with several processes writing at once."""

from __future__ import annotations

import json
import subprocess
import sys

import optuna
import pytest

from xpm_train.tune import Hyperband, MedianPruner, SuccessiveHalving
from xpm_train.tune.storage import open_storage

WORKER = """
import json, sys
from xpm_train.tune import OptunaTrial, {pruner_type}
args = json.loads(sys.argv[1])
trial = OptunaTrial.C(journal=args["journal"], study_name="s", number=args["number"],
                      pruner={pruner_type}.C(**args["pruner"])).instance()
print(json.dumps([trial.should_prune(epoch, value) for epoch, value in enumerate(args["values"])]))
"""


def start_worker(journal, number, values, pruner) -> subprocess.Popen:
    code = WORKER.format(pruner_type=type(pruner).__xpmtype__.value_type.__name__)
    args = {"journal": str(journal), "number": number, "values": values,
            "pruner": {k: getattr(pruner, k) for k in ("n_startup_trials", "n_warmup_steps", "min_resource",
                                                       "reduction_factor", "max_resource") if hasattr(pruner, k)}}
    return subprocess.Popen([sys.executable, "-c", code, json.dumps(args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def answers(process: subprocess.Popen) -> list[bool]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def study_with_history(journal, pruner, history: dict[int, float], running: int):
    """A study with one finished trial (``history``) and ``running`` trials in flight."""
    study = optuna.create_study(study_name="s", storage=open_storage(journal), direction="maximize",
                                pruner=pruner.create())
    done = study.ask()
    for step, value in history.items():
        done.report(value, step)
        done.should_prune()  # as a Learn does: rung-based pruners record the rungs it reached
    study.tell(done, max(history.values()))
    return study, [study.ask().number for _ in range(running)]


@pytest.mark.parametrize("pruner", [MedianPruner.C(n_startup_trials=1), SuccessiveHalving.C(reduction_factor=2),
                                    Hyperband.C(max_resource=4, reduction_factor=2)],
                         ids=["median", "halving", "hyperband"])
def test_the_worker_reports_and_the_pruner_answers(tmp_path, pruner):
    journal = tmp_path / "journal.log"
    study, (bad, good) = study_with_history(journal, pruner, {1: 0.8, 2: 0.9, 3: 0.95, 4: 0.96}, running=2)
    bad_answers = answers(start_worker(journal, bad, [0.1, 0.1, 0.1, 0.1], pruner))
    good_answers = answers(start_worker(journal, good, [0.9, 0.95, 0.97, 0.98], pruner))
    assert True in bad_answers and not any(good_answers)
    reported = {t.number: t.intermediate_values for t in study.get_trials()}
    assert reported[good] == {1: 0.9, 2: 0.95, 3: 0.97, 4: 0.98}  # steps are epochs done
    assert reported[bad][1] == 0.1


def test_a_finished_trial_is_not_reported_to(tmp_path):
    journal = tmp_path / "journal.log"
    pruner = MedianPruner.C(n_startup_trials=1)
    study, (number,) = study_with_history(journal, pruner, {1: 0.9}, running=1)
    study.tell(number, state=optuna.trial.TrialState.FAIL)
    assert answers(start_worker(journal, number, [0.1], pruner)) == [False]
    assert study.get_trials()[number].intermediate_values == {}


def test_four_workers_write_the_journal_at_once(tmp_path):
    journal = tmp_path / "journal.log"
    pruner = MedianPruner.C(n_startup_trials=100)  # never prunes: every step is reported
    study, numbers = study_with_history(journal, pruner, {1: 0.5}, running=4)
    values = [[round(0.01 * (n + 1) + 0.001 * step, 4) for step in range(30)] for n in numbers]
    workers = [start_worker(journal, n, v, pruner) for n, v in zip(numbers, values)]
    assert all(not any(answers(w)) for w in workers)
    reopened = optuna.load_study(study_name="s", storage=open_storage(journal))
    for number, expected in zip(numbers, values):
        stored = reopened.get_trials()[number].intermediate_values
        assert stored == {step + 1: value for step, value in enumerate(expected)}
