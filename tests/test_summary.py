"""The one test of "is this a result" and the summary writer that refuses a
non-finite score."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pytest

from xpm_train import summary
from xpm_train.errors import UserError
from xpm_train.extend import Objective


@pytest.mark.parametrize("value, ok", [
    (0.5, True), (0, True), (np.float32(2.0), True), (-1e30, True),
    (float("nan"), False), (math.inf, False), (-math.inf, False), (None, False), (True, False), ("1", False),
])
def test_is_result(value, ok):
    assert summary.is_result(value) is ok


@pytest.mark.parametrize("score", [float("nan"), math.inf, None])
def test_a_non_finite_score_is_never_written(tmp_path, score):
    path = tmp_path / "final.json"
    with pytest.raises(summary.NonFiniteResult, match="val_mse.*not a finite number.*ends failed.*learning rate"):
        summary.write(path, {**summary.score_fields("val_mse", score, "minimize"), "final": {}})
    assert not path.exists() and list(tmp_path.iterdir()) == []
    assert issubclass(summary.NonFiniteResult, UserError)


def test_a_finite_score_is_written(tmp_path):
    summary.write(tmp_path / "final.json", summary.score_fields("val_mse", 0.25, "minimize"))
    assert summary.read(tmp_path)["score"] == 0.25


# --- Directions: declared by what measured, carried by the summary (issue 27 item 1)

class Quantile(Objective):
    """A user objective with metrics of its own: ``pinball`` (its score) and ``width``, both better low."""

    score: ClassVar[str] = "pinball"
    directions: ClassVar[dict] = {"loss": "minimize", "pinball": "minimize", "width": "minimize"}


def quantile_jobs(workspace, values):
    """Finished Learn job folders whose final.json Learn's writer (runstate.summary) wrote for :class:`Quantile`."""
    from xpm_train.runstate import RunState, summary as learn_summary

    folders = []
    for name, (pinball, width) in zip("abc", values):
        folder = workspace / "jobs" / "xpm_train.learn.learn" / (name * 64)
        folder.mkdir(parents=True)
        (folder / "learn.done").touch()
        run = RunState()
        run.consider(0, {"pinball": pinball, "width": width, "loss": pinball}, Quantile.C())
        summary.write(folder / "final.json", learn_summary(run, True, 1.0, Quantile.C()))
        folders.append(folder)
    return folders


def test_a_metric_of_a_user_objective_ranks_in_its_declared_direction(tmp_path, monkeypatch):
    """``results --sort`` and export's best job follow the directions the
    objective declares, for names xpm-train does not know (no table to edit)."""
    import xpm_train
    from xpm_train.analysis import sort_best
    from xpm_train.export import best_job

    folders = quantile_jobs(tmp_path, [(0.3, 0.5), (0.1, 0.7), (0.2, 0.4)])
    frame = xpm_train.results(tmp_path)
    assert [job[-1] for job in sort_best(frame, "best.val_width")["job"]] == ["c", "a", "b"]
    assert [job[-1] for job in sort_best(frame, "best.val_pinball")["job"]] == ["b", "c", "a"]
    assert [job[-1] for job in sort_best(frame, "score")["job"]] == ["b", "c", "a"]

    # export's and ExportBest's best job, among the trainings' folders
    monkeypatch.setattr("xpm_train.jobfolder.job_id", lambda folder: folder.name)
    monkeypatch.setattr("xpm_train.jobfolder.job_path", lambda workspace, job: folders[0].parent / job)
    assert best_job(folders, "best.val_pinball", tmp_path) == folders[1]
    assert best_job(folders, "best.val_width", tmp_path) == folders[2]
    read = summary.read(folders[0])
    assert read.direction("best.val_width") == "minimize" and read.direction("final.val_width") == "minimize"
    assert "directions" not in read and "directions" in (folders[0] / "final.json").read_text()
    assert not any(key.startswith("directions") for key in summary.flatten(read))


def test_directions_rank_and_refuse_what_is_not_one():
    assert summary.Direction.of("minimize") is summary.MINIMIZE and str(summary.MAXIMIZE) == "maximize"
    with pytest.raises(ValueError, match="'maximize' or 'minimize'"):
        summary.Direction.of("max")
    rows = [{"v": 2.0}, {"v": float("nan")}, {"v": 1.0}, {"v": None}]
    assert summary.MINIMIZE.ranked(rows, lambda r: r["v"]) == [{"v": 1.0}, {"v": 2.0}]
    assert summary.MAXIMIZE.best(rows, lambda r: r["v"]) == {"v": 2.0}
    assert summary.MAXIMIZE.better(1.0, None) and not summary.MAXIMIZE.better(float("nan"), 0.0)


def test_an_objective_declares_the_direction_of_its_score():
    from typing import ClassVar

    from xpm_train.extend import Objective

    class OnlyItsScore(Objective):  # written before directions: its score's direction
        score: ClassVar[str] = "pinball"
        direction: ClassVar[str] = "minimize"

    assert OnlyItsScore.directions == {"loss": "minimize", "pinball": "minimize"}
    with pytest.raises(TypeError, match="lacks its score 'f1'"):
        class Undeclared(Objective):
            score: ClassVar[str] = "f1"


def test_a_cold_reader_knows_the_declared_directions_without_importing_their_declarers():
    """summary.known_direction reads xpm_train/directions.py, the table the
    objectives, distillation and training functions declare from: a process
    that only reads summaries (a job, watch) knows the same directions as the
    plan, and importing summary ties no circle through objectives/custom/distill."""
    import subprocess
    import sys

    probe = ("import sys; from xpm_train.summary import known_direction as d; "
             "print([str(d(m)) for m in ('best.val_kl', 'objective', 'val_r2', 'eval_top5_accuracy')], "
             "sorted(m for m in ('xpm_train.objectives', 'xpm_train.custom', 'xpm_train.distill', 'experimaestro', "
             "'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == "['minimize', 'maximize', 'maximize', 'maximize'] []".split()


def test_the_declarers_take_their_directions_from_the_one_table():
    from xpm_train import directions
    from xpm_train.custom import TrainingFunction, training_function
    from xpm_train.distill import Distillation
    from xpm_train.objectives import Classification, Reconstruction, Regression

    for declaring, table in ((Classification, directions.CLASSIFICATION), (Regression, directions.REGRESSION),
                             (Reconstruction, directions.RECONSTRUCTION), (Distillation, directions.DISTILLATION)):
        assert declaring.directions == table
        assert all(summary.known_direction(f"best.val_{name}") == way for name, way in table.items())
    assert TrainingFunction.direction == directions.FUNCTION_OBJECTIVE == summary.known_direction("objective")
    assert __import__("inspect").signature(training_function).parameters["direction"].default == "maximize"
