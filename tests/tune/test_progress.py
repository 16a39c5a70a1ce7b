"""The driver's progress line, printed in the plan's log as trials finish."""

import optuna

from xpm_train.tune.driver import progress_line


def test_progress_line_counts_states_and_best():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for value in (0.5, 0.9):
        trial = study.ask()
        study.tell(trial, value)
    pruned = study.ask()
    pruned.report(0.1, 0)
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    failed = study.ask()
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    assert progress_line(study, 1, 20) == (
        "trial 1 COMPLETE 0.9000 | 4/20 finished (2 complete, 1 pruned, 1 failed), best 0.9000")
    assert progress_line(study, 2, 20).startswith("trial 2 PRUNED 0.1000 | 4/20")  # its last report
