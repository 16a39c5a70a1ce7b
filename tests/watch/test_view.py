"""The frame of ``xpm-train watch``: columns dropped to fit, sorting, filtering."""

import time

import pytest

from bench.watch import make_job
from xpm_train.watch.state import JobWatch
from xpm_train.watch.view import COLUMNS, frame


@pytest.fixture
def jobs(tmp_path):
    found = []
    for index, state in enumerate(["done", "running", "failed", "waiting", "done"]):
        job = JobWatch(make_job(tmp_path, index, state, epochs_done=3 if state == "running" else 10))
        job.refresh()
        found.append(job)
    return found


def header(lines):
    return lines[2].split()


def test_a_wide_terminal_shows_every_column_and_a_row_per_job(jobs):
    lines = frame(jobs, width=300, now=time.time())
    assert header(lines) == ["job", "state", "epoch", "step", "metric", "latest", "best", "samples/s", "elapsed",
                             "eta", "gpu", "mem", "gpu", "util"]
    assert len(lines) == 3 + len(jobs)
    running = next(line for line in lines if " running " in line)
    assert "3/10" in running and "120/400" in running and "val_accuracy" in running
    assert lines[0].startswith("5 jobs: 1 running, 1 waiting, 1 failed, 2 done")


@pytest.mark.parametrize("width", [1, 10, 25, 40, 60, 80])
def test_a_narrow_terminal_drops_columns_and_never_overflows(jobs, width):
    lines = frame(jobs, width=width)
    assert all(len(line) <= width for line in lines)
    if width >= 40:  # whole columns dropped, not cut: every row has a cell per header column
        kept = [name for name in COLUMNS if f" {name} " in f" {lines[2]} "]
        assert kept[:2] == ["job", "state"] and len(kept) < len(COLUMNS)
        assert " ".join(header(lines)) == " ".join(kept)
        assert all(len(line.split()) == len(kept) for line in lines[3:])


def test_sort_by_best_puts_the_best_first_and_a_filter_keeps_matching_jobs(jobs):
    lines = frame(jobs, width=200, sort="best")
    rows = lines[3:]
    values = [float(line.split()[6]) for line in rows if line.split()[6] != "-"]
    assert values == sorted(values, reverse=True) and len(values) >= 3  # val_accuracy: higher is better
    assert rows[-1].split()[1] == "waiting"  # no value: last
    only = frame(jobs, width=200, text="state=running")[3:]
    assert [line.split()[1] for line in only] == ["running"]
    part = frame(jobs, width=200, text=jobs[2].folder.name[:6])[3:]
    assert [line.split()[1] for line in part] == ["failed"]
