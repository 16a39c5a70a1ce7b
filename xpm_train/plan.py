"""Helpers for experiment plans (``experiments/<name>/experiment.py``).

- :func:`positive`, :func:`non_empty`, :func:`fraction`: validators for the
  fields of a plan's ``@configuration`` class, so that ``epochs: -1`` or an
  empty grid is refused before anything is submitted.
- :func:`finish`: waits for the jobs, then fails the plan (non-zero exit) with
  a summary of the failed jobs and their log paths; experimaestro 2.7 itself
  exits 0 when jobs fail.
- :func:`print_table`: the results of this experiment's jobs as a table.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

import attrs

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
    """One line per failed job: what failed, why, where its log is."""
    from experimaestro.scheduler.jobs import JobFailureStatus

    lines = []
    for job in jobs:
        reason = getattr(job.state, "failure_reason", None)
        if reason == JobFailureStatus.DEPENDENCY or (not Path(job.stderr).exists() and failed_dependency(job)):
            lines.append(f"  {job.relpath}: not run, a job it depends on failed")
        else:
            why = reason.name.lower() if reason is not None else "error"
            lines.append(f"  {job.relpath}: {why}; log: {job.stderr}")
    return sorted(lines)


def failed_dependency(job) -> bool:
    """Whether a job that ``job`` depends on ended in error (then ``job`` never ran;
    experimaestro 2.7 does not always record that reason)."""
    for dependency in getattr(job, "dependencies", ()):
        origin = getattr(dependency, "origin", None)
        state = getattr(origin, "state", None)
        if state is not None and state.is_error():
            return True
    return False


def finish(helper) -> None:
    """Wait for every job of the plan; raise experimaestro's ``FailedExperiment``
    (the CLI then exits 1) when any failed."""
    from experimaestro import FailedExperiment

    xp = helper.xp
    xp.wait()
    failed = list(xp.failedJobs.values())
    if failed:
        lines = failed_jobs_summary(failed)
        raise FailedExperiment(
            f"{len(failed)} job(s) failed:\n" + "\n".join(lines)
            + "\nFix the cause shown in the log, then run the same command again:"
            " finished jobs are reused."
        )


def print_table(helper, task: str = "evaluate", sort: str | None = None) -> None:
    """Print the results of this experiment's ``task`` jobs (tags + metrics)."""
    from .analysis import format_table, results

    xp = helper.xp
    frame = results(xp.workspace.path, experiment=xp.name)
    if frame.empty:
        print("No results yet.")  # noqa: T201
        return
    frame = frame[frame["task"].str.endswith(task)]
    if sort and sort in frame:
        frame = frame.sort_values(sort, ascending=False)
    print(format_table(frame))  # noqa: T201
