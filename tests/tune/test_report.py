"""Reading a study back while its plan has only begun to write it: the
journal file exists (another process opened it) but holds no line of the
study yet. ``xpm-train watch`` polls the study from the plan's first second:
Optuna's bare ``KeyError('Record does not exist.')`` must be our NotFound,
which the watcher reads as "not started" (seen in CI: a test polling a
study right after its plan started)."""

from __future__ import annotations

import pytest

from xpm_train.errors import NotFound
from xpm_train.tune.report import load_trials
from xpm_train.tune.storage import journal_path, open_storage
from xpm_train.watch.sweep import study_trials


@pytest.fixture
def opened_journal(tmp_path):
    """A workspace whose journal of study ``s`` is open but has no line yet."""
    path = journal_path(tmp_path, "s")
    path.parent.mkdir(parents=True)
    open_storage(path)  # what the plan does before it creates the study
    path.touch()
    return tmp_path, path


def test_a_study_not_in_its_journal_yet_has_not_started(opened_journal):
    workspace, path = opened_journal
    with pytest.raises(NotFound, match="study 's' is not in .* yet: it has not started"):
        load_trials(path, "s")
    assert study_trials(workspace, "s") == ({}, True)  # the watcher waits for it


def test_a_created_study_reads_back(opened_journal):
    import optuna

    workspace, path = opened_journal
    optuna.create_study(study_name="s", storage=open_storage(path)).enqueue_trial({"x": 1})
    (row,) = load_trials(path, "s")
    assert row["state"] == "WAITING" and row["number"] == 0
