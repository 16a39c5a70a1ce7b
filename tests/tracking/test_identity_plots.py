"""Identity of a run (tags, params, git state) and learning curves, from job
folders only (no MLflow)."""

from __future__ import annotations

import json
import subprocess

import pytest
from jobsim import make_job

from xpm_train.metrics import MetricsLogger
from xpm_train.tracking.identity import JobIdentity, flat_params, git_state
from xpm_train.tracking.plots import compare_curves, job_curves, series
from xpm_train.tracking.runs import lifecycle_status, metric_records


def log_epochs(folder, epochs=3, steps_per_epoch=4, accuracy=0.5):
    with MetricsLogger(folder / "metrics.jsonl", folder / "events.jsonl") as log:
        step = 0
        for epoch in range(epochs):
            step += steps_per_epoch
            log.log(epoch=epoch, step=step - 2, split="train_step", loss=2.0)
            log.log(epoch=epoch, step=step, split="train", loss=1.0, accuracy=accuracy)
            log.log(epoch=epoch, step=step, split="val", loss=1.1, accuracy=accuracy + epoch / 10)


def test_flat_params_and_tags(workspace):
    folder = make_job(workspace, "d" * 64, tags={"lr": 0.1},
                      tracking={"tracking_uri": "sqlite:///x", "experiment_id": "1"})
    params = flat_params(folder)
    assert params == {"model": "MLP", "model.hidden_dims": "[8]", "model.dropout": "0.0",
                      "epochs": "3", "seed": "0", "device": "cpu", "schedule": "null"}
    identity = JobIdentity(folder=folder, tags={"lr": 0.1}, experiment="sim", git_commit="c0ffee",
                           host="node1", launcher="slurm:42")
    tags = identity.run_tags("7")
    assert tags["xpm.job_id"] == f"xpm_train.learn.learn/{'d' * 64}" and tags["lr"] == "0.1"
    assert tags["mlflow.source.git.commit"] == "c0ffee" and tags["xpm.git_dirty"] == "false"
    assert (tags["xpm.launcher"], tags["xpm.host"], tags["mlflow.runName"]) == ("slurm:42", "node1", "learn-dddddddd")


def test_git_state_commit_and_dirty_flag(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    assert git_state(tmp_path) == ("", False)
    git("init", "-q")
    (tmp_path / "a.txt").write_text("1")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    commit, dirty = git_state(tmp_path)
    assert len(commit) == 40 and not dirty
    (tmp_path / "untracked.txt").write_text("x")
    assert git_state(tmp_path) == (commit, False)
    (tmp_path / "a.txt").write_text("2")
    assert git_state(tmp_path) == (commit, True)


def test_metric_records_and_status():
    points = [{"epoch": 0, "step": 5, "split": "val", "loss": 1.0, "accuracy": 0.5, "elapsed": 2.0,
               "flag": True, "note": "x"}]
    records = metric_records(points, start_time=100.0)
    assert records == [("val_loss", 1.0, 5, 102000), ("val_accuracy", 0.5, 5, 102000)]
    assert lifecycle_status([{"event": "start"}, {"event": "end"}]) == "FINISHED"
    assert lifecycle_status([{"event": "start"}, {"event": "preempted"}, {"event": "resume"}]) == "RUNNING"
    assert lifecycle_status([{"event": "start"}, {"event": "error"}]) == "FAILED"


def test_curves_of_a_job_and_of_several(workspace, tmp_path):
    one = make_job(workspace, "e" * 64)
    two = make_job(workspace, "f" * 64)
    log_epochs(one, accuracy=0.5)
    log_epochs(two, accuracy=0.7)
    xs, ys = series(json_points(one), "val_accuracy")
    assert xs == [1, 2, 3] and ys == pytest.approx([0.5, 0.6, 0.7])
    assert series(json_points(one), "train_step_loss")[0] == [0.5, 1.5, 2.5]

    png = job_curves(one)
    assert png == one / "curves.png" and png.read_bytes()[:4] == b"\x89PNG"
    out = compare_curves([("lr=0.1", one), ("lr=0.3", two)], "val_accuracy", tmp_path / "cmp.png")
    assert out.stat().st_size > 1000
    with pytest.raises(ValueError, match="available: .*val_accuracy"):
        compare_curves([("a", one)], "val_acc", tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_no_curve_from_a_single_point(workspace):
    folder = make_job(workspace, "9" * 64)
    with MetricsLogger(folder / "metrics.jsonl", folder / "events.jsonl") as log:
        log.log(epoch=0, step=0, split="eval", accuracy=0.9)
    assert job_curves(folder) is None and not (folder / "curves.png").exists()


def json_points(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_the_legend_of_jobs_with_many_long_tags_lies_inside_the_saved_figure(workspace, tmp_path, monkeypatch):
    from matplotlib.image import imread

    from xpm_train.tracking import plots

    figures = []
    save = plots._save
    monkeypatch.setattr(plots, "_save", lambda figure, out: figures.append(figure) or save(figure, out))
    jobs = []
    for index in range(6):
        folder = make_job(workspace, f"{index}" * 64)
        log_epochs(folder, accuracy=0.5 + index / 20)
        tags = {"model": "ResNet", "hidden_dims": "[512, 256, 128]", "learning_rate": 0.001 * (index + 1),
                "optimizer": "AdamW(weight_decay=0.01)", "augment": "flip+crop+cutout", "seed": index}
        jobs.append((" ".join(f"{k}={v}" for k, v in tags.items()), folder))
    out = plots.compare_curves(jobs, "val_accuracy", tmp_path / "tags.png")

    [figure] = figures
    renderer = figure.canvas.get_renderer()
    legend = (figure.legends[0] if figure.legends else figure.axes[0].get_legend()).get_window_extent(renderer)
    height, width = imread(out).shape[:2]
    assert (width, height) == (round(figure.bbox.width), round(figure.bbox.height))  # the whole figure is saved
    assert 0 <= legend.x0 and legend.x1 <= width and 0 <= legend.y0 and legend.y1 <= height, (legend, width, height)
    axes = figure.axes[0].get_window_extent(renderer)
    assert axes.height > height / 4 and not legend.overlaps(axes)  # the curves keep room, the legend hides none
