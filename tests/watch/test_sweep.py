"""Which jobs ``xpm-train watch`` shows: workspace, experiment, tags, study."""

import json

import pytest

from bench.watch import make_job
from xpm_train.errors import NotFound
from xpm_train.watch.sweep import Sweep


def run_folder(workspace, experiment, tags_by_hash):
    run = workspace / "experiments" / experiment / "20261207_120000"
    run.mkdir(parents=True)
    (run / "jobs.jsonl").write_text("".join(json.dumps({"job_id": h, "task_id": "xpm_train.learn.learn", "tags": t})
                                            + "\n" for h, t in tags_by_hash.items()))
    (workspace / "experiments" / experiment / "current").symlink_to(run.name)


def test_an_experiment_shows_its_jobs_and_where_keeps_a_tag(tmp_path):
    folders = [make_job(tmp_path, index, "done") for index in range(4)]
    run_folder(tmp_path, "sweep", {folders[0].name: {"lr": 0.1}, folders[1].name: {"lr": 0.01}})
    assert len(Sweep(tmp_path).refresh()) == 4
    assert {job.folder for job in Sweep(tmp_path, experiment="sweep").refresh()} == set(folders[:2])
    assert [job.folder for job in Sweep(tmp_path, where=["lr=0.01"]).refresh()] == [folders[1]]
    with pytest.raises(NotFound, match="no experiment 'other' .*known: sweep"):
        Sweep(tmp_path, experiment="other")


def test_a_study_shows_its_trials_and_watch_waits_while_one_runs(tmp_path):
    import optuna

    from xpm_train.tune.storage import open_storage, write_description

    folders = [make_job(tmp_path, index, "done") for index in range(3)]
    journal = write_description(tmp_path, "s1", {"direction": "maximize", "metric": "best.val_accuracy"})
    study = optuna.create_study(study_name="s1", storage=open_storage(journal), direction="maximize")
    for folder in folders[:2]:
        trial = study.ask()
        trial.set_user_attr("job", f"xpm_train.learn.learn/{folder.name}")
        study.tell(trial, 0.5)
    sweep = Sweep(tmp_path, study="s")  # a unique prefix
    shown = sweep.refresh()
    assert sorted(job.trial for job in shown) == [0, 1] and {job.folder for job in shown} == set(folders[:2])
    assert sweep.finished(shown)
    study.ask()  # a trial in flight: the study goes on
    assert not sweep.finished(sweep.refresh())
    with pytest.raises(NotFound, match="no study 'nope'"):
        Sweep(tmp_path, study="nope")
