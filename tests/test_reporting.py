"""xpm_train.report: what a plain Task's job folder gets, and what is refused."""

import json
import math

import pytest
from experimaestro import Param, Task

from xpm_train import reporting
from xpm_train.reporting import ReportError


def test_each_report_is_a_point_and_the_last_one_the_summary(tmp_path):
    from xpm_train.summary import read

    reporting.write_report(tmp_path, {"accuracy": 0.5, "loss": 1.2}, "accuracy", "maximize")
    reporting.write_report(tmp_path, {"accuracy": 0.75, "loss": 0.8}, "accuracy", "maximize")
    points = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(p["step"], p["split"], p["accuracy"]) for p in points] == [(0, "", 0.5), (1, "", 0.75)]
    assert read(tmp_path) == {"score": 0.75, "score_metric": "accuracy", "direction": "maximize",
                              "accuracy": 0.75, "loss": 0.8}


def test_report_outside_a_running_job_is_refused():
    import xpm_train

    with pytest.raises(ReportError, match="execute"):
        xpm_train.report({"accuracy": 1.0})


@pytest.mark.parametrize("metrics, message", [
    ({"loss": math.nan}, "not a finite number"), ({"score": 1.0}, "summary key"), ({"loss": "low"}, "numbers"), ({}, "non-empty"),
])
def test_values_that_are_no_result_are_refused(metrics, message):
    from xpm_train.summary import NonFiniteResult

    with pytest.raises((ReportError, NonFiniteResult), match=message):
        reporting.checked_metrics(metrics)


def test_the_score_and_its_direction():
    class Declared:
        reports = "f1"

    assert reporting.score_of({"loss": 1.0}, None, None) == "loss"
    assert reporting.score_of({"f1": 0.5, "loss": 1.0}, None, Declared()) == "f1"
    with pytest.raises(ReportError, match="score='f1'"):
        reporting.score_of({"f1": 0.5, "loss": 1.0}, None, None)
    with pytest.raises(ReportError, match="declares reports = 'f1'"):
        reporting.score_of({"f1": 0.5, "loss": 1.0}, "loss", Declared())
    assert reporting.direction_for("val_loss", None) == "minimize"
    with pytest.raises(ReportError, match="direction='maximize'"):
        reporting.direction_for("f1", None)


class Silent(Task):
    """A plain task reporting nothing"""

    x: Param[int]
    """A value"""


class Declared(Silent):
    """The same, declaring the score it reports"""

    reports = "accuracy"


def test_which_tasks_report():
    from xpm_train import MLP, Digits, Learn

    assert reporting.own_kind(Learn.C(data=Digits.C(), model=MLP.C())) == "learn"
    assert not reporting.reports(Silent.C(x=1)) and reporting.reports(Declared.C(x=1))
