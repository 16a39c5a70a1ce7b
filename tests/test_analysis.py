"""xpm_train.analysis: results tables and loading jobs by ID (the parts that
need no plan run; tests/integration/test_quickstart.py reads real jobs)."""

from __future__ import annotations

import json

import pandas
from experimaestro import Task
import pytest

import xpm_train
from xpm_train.analysis import CodeNotFound, format_table, integers_as_integers

HASH = "c" * 64


def test_integer_tags_stay_integers_next_to_missing_values():
    rows = [{"job": "learn/1", "trial": 3, "batch_size": 32, "accuracy": 0.5},
            {"job": "evaluate/2", "accuracy": 0.75}]
    frame = integers_as_integers(pandas.DataFrame(rows), rows)
    assert str(frame["trial"].dtype) == "Int64" and frame["accuracy"].dtype.kind == "f"
    table = format_table(frame)
    assert "32.0000" not in table and "3.0000" not in table
    assert table.splitlines()[1].split() == ["learn/1", "3", "32", "0.5000"]
    assert table.splitlines()[2].split() == ["evaluate/2", "-", "-", "0.7500"]


def test_a_float_metric_equal_to_an_integer_stays_a_float():
    rows = [{"accuracy": 1.0}, {"accuracy": 0.5}]
    assert integers_as_integers(pandas.DataFrame(rows), rows)["accuracy"].dtype.kind == "f"


def test_load_of_a_job_whose_module_is_gone_names_it(tmp_path):
    folder = tmp_path / "jobs" / "mytrain_gone.train" / HASH
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps({
        "workspace": str(tmp_path), "version": 3, "objects": [
            {"id": 1, "module": "mytrain_gone", "type": "Train", "typename": "mytrain_gone.Train",
             "identifier": HASH, "fields": {}}]}))
    with pytest.raises(CodeNotFound) as raised:
        xpm_train.load(HASH[:8], workspace=tmp_path)
    message = str(raised.value)
    assert "module 'mytrain_gone'" in message and "PYTHONPATH" in message and "pythonpath" in message
    assert "\n" not in message and raised.value.__suppress_context__


def test_sort_follows_each_jobs_declared_direction():
    """A training function's ``objective`` (and ``score``) sort in the direction
    the function declares; a metric name without one, by its name; two ways at
    once is an error."""
    from xpm_train.analysis import sort_best
    from xpm_train.errors import UserError

    def job(name, objective, direction):
        return {"job": name, "score": objective, "score_metric": "objective", "direction": direction,
                "objective": objective, "final.val_loss": objective}

    frame = pandas.DataFrame([job("a", 2.0, "minimize"), job("b", 0.5, "minimize"), job("c", None, "minimize")])
    for column in ("objective", "score", "final.val_loss"):
        assert list(sort_best(frame, column)["job"]) == ["b", "a", "c"], column
    frame = pandas.DataFrame([job("a", 2.0, "maximize"), job("b", 0.5, "maximize")])
    assert list(sort_best(frame, "objective")["job"]) == ["a", "b"]
    mixed = pandas.DataFrame([job("a", 2.0, "maximize"), job("b", 0.5, "minimize")])
    with pytest.raises(UserError, match="objective values go different ways"):
        sort_best(mixed, "objective")
    learn = pandas.DataFrame([{"job": "l1", "score_metric": "val_mse", "direction": "minimize", "best.val_mse": 0.3},
                              {"job": "l2", "score_metric": "val_mse", "direction": "minimize", "best.val_mse": 0.1}])
    assert list(sort_best(learn, "best.val_mse")["job"]) == ["l2", "l1"]


def learn_job(workspace, job_hash: str, model: str, tags: dict, accuracy: float):
    """A finished Learn job folder (params.json as experimaestro writes it, final.json) submitted with ``tags``."""
    folder = workspace / "jobs" / "xpm_train.learn.learn" / job_hash
    folder.mkdir(parents=True)
    objects = [{"id": 1, "typename": f"xpm_train.models.{model}", "identifier": "m" * 64, "fields": {}},
               {"id": 2, "typename": "xpm_train.learn.Learn", "identifier": job_hash,
                "fields": {"model": {"type": "python", "value": 1}}}]
    (folder / "params.json").write_text(json.dumps({"objects": objects}))
    (folder / "learn.done").touch()
    (folder / "final.json").write_text(json.dumps({"score": accuracy, "score_metric": "accuracy",
                                                   "direction": "maximize", "accuracy": accuracy}))
    run = workspace / "experiments" / "grid" / "20261207_100000"
    run.mkdir(parents=True, exist_ok=True)
    with (run / "jobs.jsonl").open("a") as fp:
        fp.write(json.dumps({"job_id": job_hash, "task_id": "xpm_train.learn.learn", "tags": tags}) + "\n")


def test_a_tag_named_like_a_column_keeps_both_and_where_matches_either(tmp_path):
    learn_job(tmp_path, "a" * 64, "CNN", {"model": "cnn-small", "hidden_dim": 48}, 0.9)
    learn_job(tmp_path, "b" * 64, "MLP", {"model": "MLP", "hidden_dim": 32}, 0.8)
    learn_job(tmp_path, "c" * 64, "MLP", {"accuracy": "high"}, 0.7)
    frame = xpm_train.results(tmp_path).set_index("hidden_dim", drop=False)
    assert list(frame["model"]) == ["CNN", "MLP", "MLP"]  # the config's model class, whatever the tags
    assert frame.iloc[0]["tag:model"] == "cnn-small" and pandas.isna(frame.iloc[1]["tag:model"])  # equal: once
    assert list(frame["accuracy"]) == [0.9, 0.8, 0.7] and frame.iloc[2]["tag:accuracy"] == "high"
    for where, hashes in ((["model=CNN"], ["aaaaaaaaaaaa"]), (["model=cnn-small"], ["aaaaaaaaaaaa"]),
                          (["model=MLP"], ["bbbbbbbbbbbb", "cccccccccccc"]), (["tag:model=cnn-small"], ["aaaaaaaaaaaa"]),
                          (["model=MLP", "hidden_dim=32"], ["bbbbbbbbbbbb"]), (["state=done", "accuracy=high"], ["cccccccccccc"])):
        assert [job.split("/")[1] for job in xpm_train.results(tmp_path, where=where)["job"]] == hashes, where


class Noop(Task):
    """A plain experimaestro task, to load a job of."""

    def execute(self):
        pass


def test_loading_a_job_leaves_this_process_outside_it(tmp_path):
    """experimaestro 2.7's from_task_dir points the process-wide task path at
    the loaded job and leaves it there: xpm_train.report() in a notebook that
    loaded a job then wrote into that done job's folder. load() restores it."""
    from experimaestro.taskglobals import Env

    from xpm_train.reporting import ReportError

    folder = tmp_path / "jobs" / "test_analysis.noop" / HASH
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps({
        "workspace": str(tmp_path), "version": 3, "objects": [
            {"id": 1, "module": "test_analysis", "type": "Noop", "typename": "test_analysis.Noop",
             "identifier": HASH, "fields": {}}]}))
    before = Env.instance().taskpath, Env.instance().wspath
    assert isinstance(xpm_train.load(HASH[:8], workspace=tmp_path).config, Noop)
    assert (Env.instance().taskpath, Env.instance().wspath) == before
    with pytest.raises(ReportError, match="execute"):
        xpm_train.report({"accuracy": 1.0})
    assert sorted(p.name for p in folder.iterdir()) == ["params.json"]
