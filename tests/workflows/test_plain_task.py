"""A plain experimaestro Task (the experimaestro demo's Learn) in an xpm-train
workspace: after the one-line change (xpm_train.report), results, MLflow sync
and a Study work; unchanged, sync and export say what they skip and why, and a
Study over it fails before training."""

from __future__ import annotations

import json

import pytest

from helpers import xpm_train

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """One experiment with the demo's Learn (unchanged) and two reporting ones,
    then a Study of 2 trials over the reporting one."""
    from experimaestro import experiment
    from plaindemo import Learn, ReportingLearn

    from xpm_train.tune import Float, NoPruner, Space, Study, optimize

    ws = tmp_path_factory.mktemp("plain") / "ws"
    with experiment(ws, "demo", port=None):
        Learn.C(hidden_dim=8).tag("hidden_dim", 8).submit()
        for hidden in (8, 32):
            ReportingLearn.C(hidden_dim=hidden).tag("hidden_dim", hidden).submit()
    study = Study(label="plain", base=ReportingLearn.C(hidden_dim=8), pruner=NoPruner.C(),
                  space=Space([Float("lr", 1e-3, 1e-1, log=True)]))
    with experiment(ws, "tune-plain", port=None):
        result = optimize(study, n_trials=2)
    return ws, result


def reporting_jobs(ws):
    return sorted((ws / "jobs" / "plaindemo.reportinglearn").iterdir())


def test_results_sorts_by_a_reported_metric(workspace):
    ws, _ = workspace
    result = xpm_train("results", "--workdir", str(ws), "--experiment", "demo", "--sort", "accuracy",
                       "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["task"] for row in rows] == ["plaindemo.reportinglearn"] * 2 + ["plaindemo.learn"]
    assert rows[0]["accuracy"] >= rows[1]["accuracy"] > 0 and rows[2]["accuracy"] is None
    assert {row["hidden_dim"] for row in rows} == {8, 32} and rows[0]["score_metric"] == "accuracy"
    for row in rows[:2]:
        folder = next(ws.glob(f"jobs/{row['job'].split('/')[0]}/{row['job'].split('/')[1]}*"))
        assert json.loads((folder / "final.json").read_text())["accuracy"] == pytest.approx(row["accuracy"])

def test_sync_syncs_reports_and_says_what_it_skipped(workspace, tmp_path):
    from xpm_train.tracking.sync import sync_workspace

    ws, _ = workspace
    report = sync_workspace(ws, uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert report.jobs == 4 and report.runs_created == 4  # 2 reporting jobs + 2 trials
    assert report.points_added == 8  # accuracy and loss of each
    [(reason, jobs)] = report.silent.items()
    assert jobs == [job for job in jobs if job.startswith("plaindemo.learn/")] and len(jobs) == 1
    assert "1 skipped: 1 done without reporting anything" in report.summary()
    assert "xpm_train.report" in reason


def test_a_study_over_a_reporting_task_completes(workspace):
    ws, result = workspace
    trials = sorted(p.name for p in reporting_jobs(ws))
    assert len(result.launched) == 2 and all(job.split("/")[1] in trials for job in result.launched)
    best = json.loads((ws / "jobs" / result.best_job / "final.json").read_text())
    assert best["accuracy"] == pytest.approx(result.best_value) and 0 < result.best_value <= 1
    assert set(result.best_params) == {"lr"}


def test_a_study_over_a_task_that_reports_nothing_fails_before_training():
    from plaindemo import Learn

    from xpm_train.tune import Float, Space, Study
    from xpm_train.tune.study import StudyError

    with pytest.raises(StudyError, match=r"xpm_train.report\(.*reports = 'accuracy'"):
        Study(label="silent", base=Learn.C(), space=Space([Float("lr", 1e-3, 1e-1, log=True)]))


def test_export_of_a_plain_task_says_what_export_needs(workspace, tmp_path):
    from xpm_train.export import ExportError, export

    ws, _ = workspace
    job = next((ws / "jobs" / "plaindemo.learn").iterdir())
    with pytest.raises(ExportError, match=r"plain experimaestro Task.*checkpoints/best.pt.*ctx.save_model"):
        export(job, tmp_path / "out", ws)
