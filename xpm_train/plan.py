"""Helpers for experiment plans (``experiments/<name>/experiment.py``).

- :func:`positive`, :func:`non_empty`, :func:`fraction`: validators for the
  fields of a plan's ``@configuration`` class, so that ``epochs: -1`` or an
  empty grid is refused before anything is submitted.
- :func:`finish`: waits for the jobs, then fails the plan (non-zero exit) with
  a summary of the failed jobs and their log paths; experimaestro 2.7 itself
  exits 0 when jobs fail.
- :func:`job_of`: the job of a task the plan submitted (its folder, state,
  tags and results), e.g. to print a result after :func:`finish`.
- :func:`print_table`: the results of this experiment's jobs as a table.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import attrs

if TYPE_CHECKING:
    from .analysis import JobInfo

logger = logging.getLogger("xpm_train.plan")


def positive(instance, attribute, value):
    """attrs validator: a number (or every number of a list) > 0."""
    for item in value if isinstance(value, (list, tuple)) else [value]:
        if not item > 0:
            raise ValueError(f"'{attribute.name}' must be > 0, got {item!r}")


def fraction(instance, attribute, value):
    """attrs validator: a number (or every number of a list) in [0, 1)."""
    for item in value if isinstance(value, (list, tuple)) else [value]:
        if not 0 <= item < 1:
            raise ValueError(f"'{attribute.name}' must be in [0, 1), got {item!r}")


def non_empty(instance, attribute, value):
    """attrs validator: a grid axis with at least one value."""
    if len(value) == 0:
        raise ValueError(f"'{attribute.name}' is an empty list: give at least one value")


def grid(default: list, *validators) -> Any:
    """A grid axis of a plan configuration: a non-empty list of values."""
    return attrs.field(factory=lambda: list(default), validator=[non_empty, *validators])


def failed_jobs_summary(jobs: Iterable) -> list[str]:
    """One line per failed job: what happened to it, and its log when it has one."""
    return sorted(f"  {job.relpath}: {failure_of(job)}" for job in jobs)


def failure_of(job) -> str:
    """What happened to a failed job, in words true for its state: a job that
    never ran is said so, with the jobs it waited for, and has no log to point at.

    experimaestro 2.7 keeps two states: ``scheduler_state`` (what the plan
    decided: a dependency failed) and ``state`` (what the job folder says: a
    job SIGKILLed while running has no ``.failed`` marker and still reads
    RUNNING); the failure reason is read from the first."""
    from experimaestro.scheduler.jobs import JobFailureStatus

    from . import jobfolder

    reason = getattr(scheduler_state(job), "failure_reason", None)
    log = Path(job.stderr)
    failed = failed_dependencies(job)
    if reason == JobFailureStatus.DEPENDENCY or (failed and not log.exists()):
        return "not run, a job it depends on failed" + (f" ({', '.join(failed)})" if failed else "")
    why = reason.name.lower() if reason is not None else "error"
    folder = getattr(job, "path", None)
    said = str((jobfolder.failure(Path(folder)) or {}).get("message", "")) if folder else ""
    slurm = f"; {said}" if said.startswith("Slurm job ") else ""  # (xpm_train.launchers.slurmstate)
    if not log.exists():
        return f"not run ({why} before it started: it wrote no log; see the plan's output above){slurm}"
    error = last_exception(log)
    return (f"{why} ({error}); log: {log}" if error else f"{why}; log: {log}") + slurm


def last_exception(log: Path, tail: int = 1 << 16) -> str | None:
    """The exception line (``ValueError: ...``) of the last traceback in ``log``
    (None: the log shows no traceback), :func:`shortened`."""
    with log.open("rb") as fp:
        fp.seek(max(0, log.stat().st_size - tail))
        lines = fp.read().decode(errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if not starts:
        return None
    # the first line after the traceback that is not indented is the exception
    error = next((line for line in lines[starts[-1] + 1:] if line and not line[0].isspace()), None)
    return error if error is None else shortened(error)


def shortened(error: str, limit: int = 600) -> str:
    """``error`` whole when it has at most ``limit`` characters (the messages
    of xpm-train do: what, why and how to fix); a longer one keeps its
    beginning (what failed) and its end (how to fix it), each cut at a word
    boundary, joined by `` [...] ``: never a word cut in two."""
    if len(error) <= limit:
        return error
    keep = (limit - len(" [...] ")) // 2
    head = error[:keep + 1].rsplit(" ", 1)[0] if " " in error[:keep + 1] else error[:keep]
    tail = error[-keep - 1:].split(" ", 1)[1] if " " in error[-keep - 1:] else error[-keep:]
    return f"{head} [...] {tail}"


def scheduler_state(job):
    """The plan's view of ``job`` (``scheduler_state``), else its folder's (``state``)."""
    return getattr(job, "scheduler_state", None) or getattr(job, "state", None)


def failed_dependencies(job) -> list[str]:
    """``<task>/<hash prefix>`` of the jobs ``job`` depends on that ended in error."""
    failed = []
    for dependency in getattr(job, "dependencies", ()):
        origin = getattr(dependency, "origin", None)
        state = scheduler_state(origin) if origin is not None else None
        if state is not None and state.is_error():
            relpath = Path(origin.relpath)
            failed.append(f"{relpath.parent.name}/{relpath.name[:12]}")
    return sorted(failed)


def finish(helper) -> None:
    """Wait for every job of the plan; raise experimaestro's ``FailedExperiment``
    (the CLI then exits 1) when any failed."""
    from experimaestro import FailedExperiment

    xp = helper.xp
    xp.wait()
    record_run_tags(xp)
    failed = list(xp.failedJobs.values())
    if failed:
        lines = failed_jobs_summary(failed)
        raise FailedExperiment(
            f"{len(failed)} job(s) failed:\n" + "\n".join(lines)
            + "\nFix the cause shown in the log, then run the same command again:"
            " finished jobs are reused."
        )


def record_run_tags(xp) -> None:
    """Keep the tags of every run on disk in the job folders (:mod:`xpm_train.tags`):
    experimaestro may remove a run when this one ends, and its tags with it."""
    from .tags import record

    try:
        record(Path(xp.workspace.path))
    except Exception as error:  # noqa: BLE001 - tags never fail a plan
        logger.warning("could not record the jobs' tags: %s", error)


def job_of(task) -> "JobInfo":
    """The job of ``task``, a task this plan submitted: ``.path`` (its folder),
    ``.state``, ``.tags`` and ``.metrics()`` (its ``results.json`` or
    ``final.json``). Results are there once the job ended: after
    :func:`finish`, e.g. ``job_of(evaluate).metrics()["accuracy"]``."""
    from .analysis import job_info
    from .errors import UserError

    job = getattr(getattr(task, "__xpm__", None), "job", None)
    if job is None:
        raise UserError(f"{type(task).__xpmtype__.value_type.__name__} was not submitted: call its .submit(...) before job_of(...)")
    return job_info(Path(job.path), dict(task.tags()))


def print_table(helper, task: str = "evaluate", sort: str | None = None) -> None:
    """Print the results of this experiment's ``task`` jobs (tags + metrics)."""
    from .analysis import format_table, results, sort_best

    xp = helper.xp
    frame = results(xp.workspace.path, experiment=xp.name)
    if frame.empty:
        print("No results yet.")  # noqa: T201
        return
    frame = frame[frame["task"].str.endswith(task)]
    if sort and sort in frame:
        frame = sort_best(frame, sort)
    print(format_table(frame))  # noqa: T201
