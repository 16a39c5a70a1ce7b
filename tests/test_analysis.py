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
