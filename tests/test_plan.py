"""xpm_train.plan: the failed-jobs summary says what is true of each job, and
job_of gives a submitted task's job."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from experimaestro.scheduler.interfaces import JobFailureStatus, JobState, JobStateError

from xpm_train import Learn, MLP, Synthetic
from xpm_train.errors import UserError
from xpm_train.plan import failed_jobs_summary, job_of

LEARN = "xpm_train.learn.learn/" + "a" * 64
EVALUATE = "xpm_train.evaluate.evaluate/" + "b" * 64


def fake_job(folder: Path, relpath: str, scheduler_state, state=None, dependencies=(), log: bool = False):
    path = folder / relpath
    path.mkdir(parents=True)
    name = relpath.split("/")[0].rsplit(".", 1)[-1]
    if log:
        (path / f"{name}.err").write_text("INFO starting\nTraceback (most recent call last):\n"
                                          '  File "x.py", line 1, in <module>\n    boom()\n'
                                          "RuntimeError: boom\nINFO cleaning up\n")
    return SimpleNamespace(relpath=Path(relpath), stderr=path / f"{name}.err", scheduler_state=scheduler_state,
                           state=state or scheduler_state,
                           dependencies=[SimpleNamespace(origin=d) for d in dependencies])


def test_a_failed_job_points_at_its_log(tmp_path):
    job = fake_job(tmp_path, LEARN, JobStateError(JobFailureStatus.FAILED), log=True)
    (line,) = failed_jobs_summary([job])
    assert line == f"  {LEARN}: failed (RuntimeError: boom); log: {job.stderr}"


def test_a_log_without_a_traceback_is_only_pointed_at(tmp_path):
    job = fake_job(tmp_path, LEARN, JobStateError(JobFailureStatus.FAILED))
    job.stderr.write_text("INFO: killed\n" * 10)
    (line,) = failed_jobs_summary([job])
    assert line == f"  {LEARN}: failed; log: {job.stderr}"


def test_a_job_whose_dependency_was_killed_is_not_run_and_has_no_log(tmp_path):
    # The case: the Learn was SIGKILLed (no .failed marker, its folder
    # still reads RUNNING), the plan marked it ERROR and its Evaluate never ran
    learn = fake_job(tmp_path, LEARN, JobState.ERROR, state=JobState.RUNNING, log=True)
    evaluate = fake_job(tmp_path, EVALUATE, JobState.ERROR, state=JobState.WAITING, dependencies=[learn])
    lines = failed_jobs_summary([learn, evaluate])
    assert f"  {EVALUATE}: not run, a job it depends on failed (xpm_train.learn.learn/aaaaaaaaaaaa)" in lines
    assert f"  {LEARN}: error (RuntimeError: boom); log: {learn.stderr}" in lines
    assert not any("evaluate.err" in line for line in lines)


def test_the_dependency_reason_is_read_from_the_plans_state(tmp_path):
    evaluate = fake_job(tmp_path, EVALUATE, JobStateError(JobFailureStatus.DEPENDENCY), state=JobState.WAITING)
    assert failed_jobs_summary([evaluate]) == [f"  {EVALUATE}: not run, a job it depends on failed"]


def test_a_job_that_failed_before_starting_names_no_log(tmp_path):
    job = fake_job(tmp_path, LEARN, JobState.ERROR)
    (line,) = failed_jobs_summary([job])
    assert "not run (error before it started: it wrote no log" in line and "learn.err" not in line


def test_job_of_a_task_that_was_not_submitted_says_so():
    learn = Learn.C(model=MLP.C(), data=Synthetic.C(split="train"))
    with pytest.raises(UserError, match="Learn was not submitted: call its .submit"):
        job_of(learn)


def test_the_summary_keeps_a_whole_message_with_its_fix(tmp_path):
    """The issue's case: the output-size error was cut mid-word ("...end with data.o...")."""
    message = ("xpm_train.objectives.ObjectiveError: Wide: the network outputs 11 values per sample (shape (11,)) "
               "but Classification needs 10 (one logit per class, 10 classes): make module(data) end with "
               "data.outputs units")
    job = fake_job(tmp_path, LEARN, JobStateError(JobFailureStatus.FAILED))
    job.stderr.write_text(f"Traceback (most recent call last):\n  File \"x.py\", line 1\n{message}\n")
    (line,) = failed_jobs_summary([job])
    assert f"failed ({message}); log:" in line


def test_a_very_long_message_is_cut_between_words_and_keeps_its_end():
    from xpm_train.plan import shortened

    words = [f"word{i}" for i in range(300)]
    error = "RuntimeError: " + " ".join(words) + ": fix it by lowering lr"
    short = shortened(error)
    assert len(short) <= 600 and short.startswith("RuntimeError: word0 ") and " [...] " in short
    assert short.endswith(": fix it by lowering lr")
    head, tail = short.split(" [...] ")
    assert error.startswith(head + " ") and error.endswith(" " + tail)  # cut at spaces only
    assert shortened("short: keep") == "short: keep"
