"""The incremental reader of ``xpm-train watch``: only appended bytes are parsed."""

import json

from bench.watch import epoch_lines, make_job
from xpm_train.metrics import read_metrics
from xpm_train.watch.state import JobWatch, Tail


def test_a_refresh_reads_only_the_appended_bytes_and_keeps_a_torn_line_for_later(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(epoch_lines(0, 0.5))
    tail = Tail(path)
    restarted, first = tail.read()
    size = path.stat().st_size
    assert not restarted and len(first) == 6 and tail.bytes_read == size == tail.offset
    assert tail.read() == (False, []) and tail.bytes_read == size  # nothing new: nothing read
    added = json.dumps({"epoch": 1, "step": 50, "split": "val", "accuracy": 0.7})
    with path.open("a") as fp:
        fp.write(added[:10])  # a line being written
    assert tail.read() == (False, []) and tail.offset == size
    with path.open("a") as fp:
        fp.write(added[10:] + "\n")
    restarted, records = tail.read()
    assert records == [json.loads(added)] and tail.offset == path.stat().st_size
    assert tail.bytes_read == size + 10 + len(added) + 1  # the torn part read twice, the rest once


def test_a_truncated_or_replaced_file_is_read_again_from_its_start(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(epoch_lines(0, 0.5) + epoch_lines(1, 0.6))
    tail = Tail(path)
    tail.read()
    path.write_text(epoch_lines(0, 0.4))  # shorter: truncated and rewritten
    restarted, records = tail.read()
    assert restarted and [r["split"] for r in records] == ["train_step"] * 4 + ["train", "val"]
    replacement = tmp_path / "new.jsonl"
    replacement.write_text(epoch_lines(0, 0.3) + epoch_lines(1, 0.35))
    replacement.replace(path)  # another file (inode) of a larger size
    restarted, records = tail.read()
    assert restarted and len(records) == 12


def test_a_running_job_shows_its_progress_latest_and_best_score_then_its_summary(tmp_path):
    folder = make_job(tmp_path, 1, "running", epochs_done=2)
    job = JobWatch(folder)
    job.refresh()
    assert (job.state, job.epoch, job.epochs, job.step, job.steps) == ("running", 2, 10, 80, 400)
    assert job.metric == "val_accuracy" and job.direction == "maximize"
    assert job.latest == job.best == read_metrics(folder / "metrics.jsonl")[-1]["accuracy"]
    assert job.eta() is not None and job.samples_per_s == 1280 * 2 / 4.0
    with (folder / "metrics.jsonl").open("a") as fp:
        fp.write(epoch_lines(2, 0.1))  # worse than before
    read = job.metrics.bytes_read
    job.refresh()
    assert job.metrics.bytes_read - read == len(epoch_lines(2, 0.1))
    assert (job.epoch, job.latest) == (3, 0.1) and job.best > 0.1
    (folder / "learn.pid").unlink()
    (folder / "learn.done").write_text("")
    (folder / "final.json").write_text(json.dumps({"score": 0.9, "score_metric": "val_accuracy",
                                                   "direction": "maximize", "epochs": 3}))
    job.refresh()
    assert job.ended and job.final and job.best == 0.9 and job.eta() is None


def test_a_value_logged_again_after_a_resume_replaces_the_earlier_one_as_read_metrics_does(tmp_path):
    folder = make_job(tmp_path, 2, "running", epochs_done=2)
    job = JobWatch(folder)
    job.refresh()
    best_before = job.best
    with (folder / "metrics.jsonl").open("a") as fp:  # resumed at epoch 1: its val point is logged again, lower
        fp.write(epoch_lines(1, 0.2))
    job.refresh()
    kept = [p["accuracy"] for p in read_metrics(folder / "metrics.jsonl") if p["split"] == "val"]
    assert job.best == max(kept) < best_before


def test_a_done_job_first_seen_is_read_from_its_summary_without_parsing_its_logs(tmp_path):
    folder = make_job(tmp_path, 3, "done")
    summary = json.loads((folder / "final.json").read_text())
    (folder / "final.json").write_text(json.dumps({**summary, "steps": 400}))
    job = JobWatch(folder)
    job.refresh()
    assert job.metrics.bytes_read == 0 and job.final and (job.step, job.steps) == (400, 400)
    assert (job.state, job.best, job.epoch, job.metric) == ("done", json.loads(
        (folder / "final.json").read_text())["score"], 10, "val_accuracy")
    job.refresh()
    assert job.metrics.bytes_read == 0
