"""A job's tags are those of every run that submitted it, kept in its folder
(experimaestro removes runs, and their jobs.jsonl with them)."""

import json
import shutil

from xpm_train import tags
from xpm_train.jobfolder import TAGS


def submit(workspace, experiment, run, jobs):
    """A run folder as experimaestro 2.7 writes it: jobs.jsonl, `current` -> the latest run."""
    folder = workspace / "experiments" / experiment / run
    folder.mkdir(parents=True)
    lines = [json.dumps({"job_id": job, "task_id": "t.t", "tags": job_tags}) for job, job_tags in jobs.items()]
    (folder / "jobs.jsonl").write_text("\n".join(lines) + "\n")
    current = folder.parent / "current"
    current.unlink(missing_ok=True)
    current.symlink_to(run)
    for job in jobs:
        (workspace / "jobs" / "t.t" / job).mkdir(parents=True, exist_ok=True)
    return folder


def test_the_tags_of_every_run_survive_the_removal_of_a_run(tmp_path):
    first = submit(tmp_path, "grid", "20261207_100000", {"a" * 64: {"hidden_dim": 48, "lr": 0.1}})
    submit(tmp_path, "grid", "20261207_110000", {"a" * 64: {"lr": 0.2}, "b" * 64: {"hidden_dim": 32}})
    expected = {"a" * 64: {"hidden_dim": 48, "lr": 0.2}, "b" * 64: {"hidden_dim": 32}}
    assert tags.record(tmp_path) == expected  # the later run's lr wins
    shutil.rmtree(first)  # "Removing failed run (experiment succeeded)"
    assert tags.record(tmp_path) == expected
    kept = json.loads((tmp_path / "jobs" / "t.t" / ("a" * 64) / TAGS).read_text())
    assert kept == {"grid/20261207_100000": {"hidden_dim": 48, "lr": 0.1}, "grid/20261207_110000": {"lr": 0.2}}


def test_runs_are_ordered_in_time_across_experiments_and_modifiers(tmp_path):
    submit(tmp_path, "b", "20261207_100000.1", {"c" * 64: {"seed": 2}})
    submit(tmp_path, "a", "20261207_100000", {"c" * 64: {"seed": 1}})
    submit(tmp_path, "a", "20261207_090000", {"c" * 64: {"seed": 0, "model": "MLP"}})
    assert tags.record(tmp_path)["c" * 64] == {"seed": 2, "model": "MLP"}


def test_a_torn_line_being_written_is_skipped(tmp_path):
    run = submit(tmp_path, "grid", "20261207_100000", {"d" * 64: {"x": 1}})
    with (run / "jobs.jsonl").open("a") as fp:
        fp.write('{"job_id": "eeee')
    assert tags.run_tags(run) == {"d" * 64: {"x": 1}}


def test_the_tags_of_one_job_among_many(tmp_path):
    jobs = {f"{i:064x}": {"seed": i} for i in range(50)}
    submit(tmp_path, "grid", "20261207_100000", jobs)
    folder = tmp_path / "jobs" / "t.t" / f"{7:064x}"
    assert tags.record_job(folder) == {"seed": 7}
    assert tags.run_tags(tmp_path / "experiments" / "grid" / "current", {f"{7:064x}"}) == {f"{7:064x}": {"seed": 7}}
    assert len(tags.record(tmp_path)) == 50
