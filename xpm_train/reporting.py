"""Results of a plain experimaestro Task: :func:`report`, and which tasks report.

xpm-train's own tasks (Learn, LightningFit, training functions) write their
job folder themselves. A plain ``experimaestro.Task`` gets the same job folder
files by calling :func:`report` in its ``execute()``::

    import xpm_train

    class Learn(Task):
        reports = "accuracy"   # only needed for a Study over this task
        ...
        def execute(self):
            ...                # train, measure
            xpm_train.report({"accuracy": accuracy, "loss": loss}, score="accuracy")

Each call appends one point to ``metrics.jsonl`` (:class:`~xpm_train.metrics.MetricsLogger`:
the MLflow sync and the plots read it) and rewrites the job's summary
``final.json`` (:mod:`xpm_train.summary`: the metrics at its top level, plus
``score``/``score_metric``/``direction``) with the values of this call, so
that ``xpm-train results``, ``show``, ``load`` and Tune read the last values
reported. Call it once at the end, or after every epoch.

A Study needs to know before any trial runs that its trials will report:
:func:`reports` is true for xpm-train's own training tasks and for a task
class that declares the score it reports (``reports = "accuracy"``, a class
attribute: no Param, no change of job ID).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from .errors import UserError
from .summary import DIRECTIONS, SCORE_KEYS

RESERVED = (*SCORE_KEYS, DIRECTIONS)
"""Summary keys that a reported metric cannot be named (:mod:`xpm_train.summary`)"""


class ReportError(UserError, ValueError):
    """:func:`report` was called with values it cannot record (the message says which)."""


def report(metrics: dict[str, float], score: Optional[str] = None, direction: Optional[str] = None, *,
           step: Optional[int] = None) -> dict[str, Any]:
    """Record ``metrics`` (``{name: number}``) as the result of the running task.

    ``score``: the metric runs are compared by (default: the task class's
    ``reports`` declaration, else the only metric); ``direction``:
    ``maximize`` or ``minimize`` it (default: from its name, e.g. accuracy
    is maximized, loss minimized); ``step``: the point's step and epoch
    (default: the number of points reported before). Returns the summary
    written. Called outside a running job, raises :class:`ReportError`.
    """
    from .provenance import record_start
    from .tags import record_job

    folder, task = running_job()
    values = checked_metrics(metrics)
    score = score_of(values, score, task)
    direction = direction_for(score, direction)
    record_job(folder)  # the run's tags, before experimaestro may remove the run
    record_start(folder, task)  # which code and environment made the result (once per job)
    return write_report(folder, values, score, direction, step)


def write_report(folder: Path, values: dict[str, float], score: str, direction: str,
                 step: Optional[int] = None) -> dict[str, Any]:
    """Append the point to ``folder``'s ``metrics.jsonl`` and write its summary."""
    from . import summary
    from .jobfolder import EVENTS, FINAL, METRICS
    from .metrics import MetricsLogger, read_jsonl

    if step is None:
        step = len(read_jsonl(folder / METRICS))
    with MetricsLogger(folder / METRICS, folder / EVENTS) as log:
        log.elapsed_offset = process_seconds()
        log.log(epoch=step, step=step, split="", **values)
    final = summary.make(score, values[score], direction, {}, **values)
    summary.write(folder / FINAL, final)
    return final


def running_job() -> tuple[Path, Any]:
    """The folder and config of the job running in this process."""
    from experimaestro.taskglobals import Env

    env = Env.instance()
    if env.taskpath is None:
        raise ReportError("xpm_train.report() records the result of a running experimaestro job: call it in "
                          "a task's execute() (submitted by a plan), not in the plan or a script")
    return Path(env.taskpath), env.current_task


def checked_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """``metrics`` as ``{str: float}``; refuses non-numbers, reserved names and non-finite values
    (:class:`~xpm_train.summary.NonFiniteResult`)."""
    from .summary import check_result

    if not isinstance(metrics, dict) or not metrics:
        raise ReportError(f"xpm_train.report() takes a non-empty dict {{name: number}}, got {metrics!r}")
    values = {}
    for name, value in metrics.items():
        if name in RESERVED:
            raise ReportError(f"metric '{name}' is a summary key ({', '.join(RESERVED)}): rename it")
        if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
            raise ReportError(f"metric '{name}' is {type(value).__name__}: report numbers (e.g. loss.item())")
        values[str(name)] = check_result(float(value), f"metric '{name}' given to xpm_train.report")
    return values


def score_of(values: dict[str, float], score: Optional[str], task: Any) -> str:
    """The name of the score among ``values`` (see :func:`report`)."""
    declared = declared_score(type(task)) if task is not None else None
    if score is not None and declared is not None and score != declared:
        raise ReportError(f"report(score={score!r}) but {type(task).__qualname__} declares reports = "
                          f"{declared!r}: a Study reads {declared!r}; make them the same")
    score = score or declared
    if score is None:
        if len(values) > 1:
            raise ReportError(f"say which metric runs are compared by: report(..., score={next(iter(values))!r})")
        score = next(iter(values))
    if score not in values:
        raise ReportError(f"score {score!r} is not among the reported metrics ({', '.join(values)})")
    return score


def direction_for(score: str, direction: Optional[str]) -> "Direction":
    """``direction``, else the direction of a metric of xpm-train's
    objectives (:func:`xpm_train.summary.known_direction`)."""
    from .summary import Direction, known_direction

    direction = direction or known_direction(score)
    if direction is None:
        raise ReportError(f"is a higher {score!r} better? say report(..., direction='maximize') "
                          "(or 'minimize')")
    try:
        return Direction.of(direction)
    except ValueError as error:
        raise ReportError(str(error)) from None


def process_seconds() -> float:
    """Seconds since this process started (the ``elapsed`` of a reported point)."""
    import time

    try:
        import psutil

        return max(0.0, time.time() - psutil.Process().create_time())
    except Exception:  # noqa: BLE001 - no psutil: elapsed from the first report
        return 0.0


def declared_score(task_class: type) -> Optional[str]:
    """The score a plain task class declares (``reports = "accuracy"``), or None."""
    declared = getattr(task_class, "reports", None)
    return declared if isinstance(declared, str) and declared else None


def own_kind(config) -> Optional[str]:
    """The ``training_kind`` of a :class:`~xpm_train.training.TrainingTask`
    (``learn``, ``lightning``, ``function``, an adapter's); None for another task."""
    from .training import is_training_task

    return type(config).training_kind if is_training_task(config) else None


def reports(config) -> bool:
    """Whether the jobs of ``config`` write a summary a Study can read: a
    training task (:mod:`xpm_train.training`), or a task class declaring ``reports``."""
    return own_kind(config) is not None or declared_score(type(config)) is not None


def not_reporting_hint(name: str) -> str:
    """What to add to the task ``name`` so that it reports (for error messages)."""
    return (f"{name} is a plain experimaestro Task that reports no result: call "
            "xpm_train.report({'accuracy': accuracy, 'loss': loss}, score='accuracy') at the end of its "
            "execute() (docs/extending.md, 'A plain experimaestro Task')")
