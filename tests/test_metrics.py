"""The jsonl logger is the source of truth; sinks get batches at sync()."""

import json

from helpers import log_redone_run
from xpm_train.metrics import MetricsLogger, read_jsonl, read_metrics


class RecordingSink:
    def __init__(self):
        self.batches, self.events, self.closed = [], [], False

    def metrics(self, points):
        self.batches.append(points)

    def event(self, event):
        self.events.append(event["event"])

    def close(self):
        self.closed = True


def test_points_written_then_forwarded_by_batch(tmp_path):
    sink = RecordingSink()
    with MetricsLogger(tmp_path / "m.jsonl", tmp_path / "e.jsonl", [sink]) as log:
        log.event("start")
        for step in range(3):
            log.log(epoch=0, step=step, split="train", loss=1.0 / (step + 1))
        assert sink.batches == []  # nothing forwarded on the training step
        log.sync()
        log.log(epoch=1, step=3, split="val", accuracy=0.5)
    points = read_jsonl(tmp_path / "m.jsonl")
    assert [p["step"] for p in points] == [0, 1, 2, 3]
    assert [len(b) for b in sink.batches] == [3, 1]
    assert sink.events == ["start"] and sink.closed
    assert all({"epoch", "step", "split", "elapsed"} <= set(p) for p in points)


def test_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"step": 1}) + "\n" + '{"step": 2, "lo')
    assert read_jsonl(path) == [{"step": 1}]


def lifecycle_events(tmp_path, body, kind="start"):
    from xpm_train.metrics import lifecycle

    log = MetricsLogger(tmp_path / "metrics.jsonl", tmp_path / "events.jsonl")
    try:
        with lifecycle(log, None, kind, device="cpu") as job:
            body(job)
    finally:
        events = [{k: v for k, v in e.items() if k != "time"} for e in read_jsonl(tmp_path / "events.jsonl")]
    return events


def test_the_start_event_records_the_gpus_and_host_of_a_process_given_gpus(tmp_path, monkeypatch):
    """``xpm-train watch`` shows the memory and use of these GPUs (:mod:`xpm_train.watch.gpus`)."""
    import socket

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert lifecycle_events(tmp_path / "cpu", lambda job: None)[0] == {"event": "start", "device": "cpu"}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,GPU-abcd")
    assert lifecycle_events(tmp_path / "gpu", lambda job: None, kind="resume")[0] == {
        "event": "resume", "device": "cpu", "gpus": "2,GPU-abcd", "host": socket.gethostname()}


def test_lifecycle_frames_a_job_with_start_and_end(tmp_path):
    assert lifecycle_events(tmp_path, lambda job: job.end(wall_time=1.5)) == [
        {"event": "start", "device": "cpu"}, {"event": "end", "wall_time": 1.5}]
    assert lifecycle_events(tmp_path / "resumed", lambda job: None, kind="resume") == [
        {"event": "resume", "device": "cpu"}, {"event": "end"}]


def test_lifecycle_writes_the_error_but_not_for_a_preemption(tmp_path):
    import pytest
    from experimaestro import GracefulTimeout

    def fail(job):
        raise ValueError("bad batch")

    def preempted(job):
        raise GracefulTimeout("stopped by SIGTERM")

    with pytest.raises(ValueError):
        lifecycle_events(tmp_path, fail)
    assert read_jsonl(tmp_path / "events.jsonl")[-1]["error"] == "ValueError: bad batch"
    with pytest.raises(GracefulTimeout):
        lifecycle_events(tmp_path / "preempted", preempted)
    assert [e["event"] for e in read_jsonl(tmp_path / "preempted" / "events.jsonl")] == ["start"]


def test_the_reader_drops_the_points_redone_after_a_resume(tmp_path):
    log_redone_run(tmp_path)
    assert len(read_jsonl(tmp_path / "metrics.jsonl")) == 16  # as written: epoch 1 twice
    points = read_metrics(tmp_path / "metrics.jsonl")
    assert [p["step"] for p in points if p["split"] == "train_step"] == [2, 4, 6, 8, 10, 12]
    val = [(p["step"], p["accuracy"], p["loss"]) for p in points if p["split"] == "val"]
    assert val == [(4, 0.5, 1.0), (8, 0.9, 0.5), (12, 0.95, 0.25)]  # the resumed run's values
    assert all({"epoch", "step", "split", "elapsed"} <= set(p) for p in points)


def test_the_reader_keeps_other_values_of_the_same_point(tmp_path):
    """Two writes at one (split, epoch, step) with different metrics (Lightning's
    step and epoch values) are both kept; only a metric written again is replaced."""
    path = tmp_path / "m.jsonl"
    lines = [{"epoch": 0, "step": 3, "split": "train", "loss_step": 1.0},
             {"epoch": 0, "step": 3, "split": "train", "loss_epoch": 2.0},
             {"epoch": 0, "step": 3, "split": "train", "loss_step": 0.5, "lr": 0.1}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"epoch": 0, "st')
    assert read_metrics(path) == [lines[1], lines[2]]
    assert read_metrics(tmp_path / "none.jsonl") == []


def test_every_reader_of_metrics_goes_through_it(tmp_path, monkeypatch):
    """Tune's per-epoch scores, load(...).history() and the curves see each step
    once (the MLflow sync: tests/tracking/test_sink.py)."""
    from xpm_train.analysis import LoadedJob
    from xpm_train.analysis import JobInfo
    from xpm_train.tracking import plots
    from xpm_train.tune.loop import epoch_values

    log_redone_run(tmp_path)
    assert epoch_values(tmp_path / "metrics.jsonl", "val_accuracy") == {1: 0.5, 2: 0.9, 3: 0.95}

    job = LoadedJob(info=JobInfo(task="xpm_train.learn.learn", hash="a" * 64, path=tmp_path, state="done"),
                    config=None, metrics={})
    history = job.history()
    assert len(history) == 12 and list(history[history.split == "val"].accuracy) == [0.5, 0.9, 0.95]

    drawn = {}
    monkeypatch.setattr(plots, "_save", lambda figure, out: drawn.update(
        {line.get_label(): list(line.get_xdata()) for axis in figure.axes for line in axis.lines}) or out)
    plots.compare_curves([("job", tmp_path)], "val_accuracy", tmp_path / "cmp.png")
    assert drawn == {"job": [1, 2, 3]}
    plots.job_curves(tmp_path)
    assert drawn["val_accuracy"] == [1, 2, 3] and drawn["train_step_loss"] == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
