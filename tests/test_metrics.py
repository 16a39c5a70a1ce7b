"""The jsonl logger is the source of truth; sinks get batches at sync()."""

import json

from xpm_train.metrics import MetricsLogger, read_jsonl


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
