"""xpm_train.analysis: results tables and loading jobs by ID (the parts that
need no plan run; tests/integration/test_quickstart.py reads real jobs)."""

from __future__ import annotations

import json

import pandas
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
