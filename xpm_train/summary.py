"""The summary of a finished job: one schema, one writer, one reader.

Every task that trains or measures writes one JSON summary in its job folder
(Learn and training functions ``final.json``, Evaluate ``results.json``) and
every reader (``xpm_train.results``/``load``, Tune, export, ``xpm-train
results``) reads it through :func:`read`. Beside each task's own keys, a
summary has the same three top-level keys whatever wrote it::

    "score":        the value runs are compared by (e.g. the best validation accuracy)
    "score_metric": what it is (``val_accuracy``, ``val_mse``, ``objective``...)
    "direction":    "maximize" or "minimize": which way is better

and, under ``directions``, which way each of its metrics is better (flattened
keys: ``{"best.val_mse": "minimize", ...}``), declared by what measured them:
the objective (:attr:`xpm_train.objectives.Objective.directions`), a training
function's ``direction``, ``report(direction=...)``, a LightningFit's
``mode``. :func:`make` builds a :class:`Summary`, :func:`write` writes it
and :func:`read` reads it back (``directions`` in :attr:`Summary.directions`,
out of the dict); :func:`ranked` is "the best job by a metric" for
``xpm-train results --sort``, export and ExportBest, and :class:`Direction`
ranks for the studies. Nothing guesses a direction from a metric's name but
:func:`known_direction`, for what declares none (a summary written before
directions were recorded, a metric reported without one).

A score is a finite number: :func:`is_result` is the one test of "is this a
valid result value" (best epochs, a training function's objective, the
summary written), and :func:`write` refuses a summary whose score is NaN,
infinite or missing, so that such a job ends failed instead of being cached
as done with a meaningless result.
"""

from __future__ import annotations

import enum
import functools
import json
import math
import numbers
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, TypeVar

from .errors import UserError
from .jobfolder import FINAL, RESULTS

DIVERGED_FIX = ("usually the training diverged: lower the learning rate, clip the gradients (e.g. "
                "Learn.grad_clip=1.0), add a warm-up, or check the data for NaN/inf values")
"""How to fix a non-finite result, for the messages of :class:`NonFiniteResult`"""


class NonFiniteResult(UserError, ValueError):
    """A loss, score or objective that is NaN or infinite: never a result (the job fails)."""


def is_result(value: Any) -> bool:
    """Whether ``value`` can be a result: a finite real number (not a bool, None, NaN or inf)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_result(value: Any, what: str, fix: str = DIVERGED_FIX) -> float:
    """``value`` as a float, or :class:`NonFiniteResult` saying that ``what``
    (e.g. "the objective returned by f") is not one, and ``fix``."""
    if not is_result(value):
        raise NonFiniteResult(f"{what} is {value!r}, not a finite number: a job cannot be done with it (it "
                              f"would be cached and compared as its result), so the job ends failed. Fix: {fix}")
    return float(value)


SUMMARY_FILES = (FINAL, RESULTS)
"""Names of a job's summary, in the order they are looked for"""

CLASSIFICATION_METRIC = "best.val_accuracy"
"""The key of a classifying Learn's ``final.json`` that studies, Tune and
ExportBest compare by default (the value ``score`` holds; kept as the default
of their ``metric`` Params, whose IDs leave the default out)"""


T = TypeVar("T")


class Direction(str, enum.Enum):
    """Which way a metric is better. A ``str``: it is written and compared as
    ``"maximize"``/``"minimize"`` (summaries, studies, Optuna)."""

    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def of(cls, value: Any, what: str = "direction") -> "Direction":
        """``value`` (``"maximize"``, ``"minimize"`` or a Direction) as a Direction;
        ``ValueError`` saying ``what`` takes otherwise."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"{what} must be 'maximize' or 'minimize', got {value!r}") from None

    def better(self, value: float, than: Optional[float]) -> bool:
        """Whether ``value`` beats ``than`` (None: anything does); a value that
        is no result (NaN, inf) never does, and any result beats one."""
        if not is_result(value):
            return False
        if than is None or not is_result(than):
            return True
        return value > than if self is Direction.MAXIMIZE else value < than

    def ranked(self, items: Iterable[T], value: Callable[[T], Any]) -> list[T]:
        """``items`` with a result value (:func:`is_result`), best first."""
        kept = [item for item in items if is_result(value(item))]
        return sorted(kept, key=value, reverse=self is Direction.MAXIMIZE)

    def best(self, items: Iterable[T], value: Callable[[T], Any]) -> Optional[T]:
        """The item of the best result value (None: none has one)."""
        ranked = self.ranked(items, value)
        return ranked[0] if ranked else None


MAXIMIZE, MINIMIZE = Direction.MAXIMIZE, Direction.MINIMIZE

SCORE_KEYS = ("score", "score_metric", "direction")
"""The three keys every summary holds (see the module documentation)"""

DIRECTIONS = "directions"
"""The key of a summary file holding the direction of each metric it has
(flattened keys); :func:`read` takes it out into :attr:`Summary.directions`"""

PARTS = ("best", "final")
"""The parts of a training's summary holding metrics by split (``best.val_accuracy``)"""


def key(split: str, metric: str) -> str:
    """The name of ``metric`` measured on ``split`` (``val_accuracy``; the
    metric itself for no split): the one spelling of summaries, the
    ``score_metric`` and ``xpm-train watch``."""
    return f"{split}_{metric}" if split else metric


def split_directions(directions: Mapping[str, Direction], splits: Iterable[str],
                     parts: Iterable[str] = ()) -> dict[str, Direction]:
    """``directions`` of metrics (``{"mse": MINIMIZE}``) as the keys a summary
    has for them on ``splits`` (``val_mse``), also under ``parts``
    (``best.val_mse``): what a writer declares of the metrics it writes."""
    keys = {key(split, metric): Direction.of(way) for split in splits for metric, way in directions.items()}
    return {**keys, **{f"{part}.{name}": way for part in parts for name, way in keys.items()}}


class Summary(dict):
    """A job's summary: the dict of its file (the score keys and the task's
    own), and the direction of each metric it holds (:attr:`directions`,
    flattened keys), declared by what measured them (the objective, a
    training function's ``direction``, ``report(direction=...)``)."""

    def __init__(self, content: Mapping[str, Any] = (), directions: Mapping[str, Any] = ()):
        super().__init__(content)
        self.directions: dict[str, Direction] = {name: Direction.of(way) for name, way in dict(directions).items()}
        declared, named = self.get("direction"), self.get("score_metric")
        if declared in tuple(Direction):
            self.directions.setdefault("score", Direction(declared))
            if isinstance(named, str):
                self.directions.setdefault(named, Direction(declared))

    def direction(self, metric: str) -> Optional[Direction]:
        """Which way ``metric`` (a flattened key: ``score``, ``best.val_mse``,
        ``objective``...) is better, as this summary declares it; for a
        summary that declares none for it (written before directions were
        recorded), the metrics of xpm-train's objectives (:func:`known_direction`)."""
        declared = self.directions.get(metric)
        if declared is None and self.get("score_metric") is not None:
            named = self.get("score_metric")
            if any(metric == f"{part}.{named}" for part in PARTS):
                declared = self.directions.get(named)
        return declared if declared is not None else known_direction(metric)

    def flat(self) -> dict[str, Any]:
        """Its scalar metrics flattened to one level (:func:`flatten`)."""
        return flatten(self)

    def content(self) -> dict[str, Any]:
        """What its file holds."""
        return {**self, DIRECTIONS: {name: str(way) for name, way in self.directions.items()}}


def make(score_metric: str, score: Optional[float], direction: Any,
         directions: Mapping[str, Any] = (), **content: Any) -> Summary:
    """The summary of a job: its score (``score_metric`` of ``direction``),
    the task's own keys (``content``) and the direction of its metrics
    (``directions``, flattened keys: :func:`split_directions`)."""
    return Summary({**score_fields(score_metric, score, Direction.of(direction).value), **content}, directions)


def score_fields(metric: str, value: Optional[float], direction: str) -> dict[str, Any]:
    """The three keys every summary holds (see the module documentation)."""
    return {"score": value, "score_metric": metric, "direction": str(direction)}


def write(path: Path, summary: Mapping[str, Any]) -> None:
    """Write ``summary`` (a :class:`Summary`, or its dict) to ``path`` atomically (the job's summary file)."""
    from .atomic import atomic_write_json

    for name in SCORE_KEYS:
        if name not in summary:
            raise ValueError(f"a summary needs '{name}' (see xpm_train.summary.make)")
    check_result(summary["score"], f"the job's score ({summary['score_metric']})")
    summary = summary if isinstance(summary, Summary) else Summary(summary)
    atomic_write_json(Path(path), summary.content())


def read(folder: Path) -> Summary:
    """The summary of the job in ``folder`` (empty when it has none yet)."""
    for name in SUMMARY_FILES:
        path = Path(folder) / name
        if path.exists():
            return from_content(json.loads(path.read_text()))
    return Summary()


def from_content(content: Mapping[str, Any]) -> Summary:
    """A summary file's dict as a :class:`Summary` (empty for a file that holds no dict)."""
    if not isinstance(content, Mapping):
        return Summary()
    content = dict(content)
    directions = content.pop(DIRECTIONS, None)
    return Summary(content, directions if isinstance(directions, dict) else {})


def flatten(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalar metrics flattened to one level (``best.val_accuracy``...);
    a summary file's ``directions`` are no metrics."""
    flat = {}
    for name, value in metrics.items():
        if not prefix and name == DIRECTIONS:
            continue
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{name}."))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            flat[f"{prefix}{name}"] = value
    return flat


def direction(summary: Mapping[str, Any], metric: str) -> Optional[Direction]:
    """Which way ``metric`` of ``summary`` (a :class:`Summary`, or a row of
    ``xpm_train.results()``: its flattened keys) is better: :meth:`Summary.direction`."""
    return (summary if isinstance(summary, Summary) else Summary(summary)).direction(metric)


def ranked(summaries: Iterable[T], metric: str, summary_of: Callable[[T], Mapping[str, Any]] = lambda s: s) -> list[T]:
    """The best job by a metric, for everyone (``xpm-train results --sort``,
    export's and ExportBest's best job): ``summaries`` (or items whose
    :class:`Summary` ``summary_of`` gives) that have a result for ``metric``
    (a flattened key), best first, in the direction each declares for it.
    Jobs that disagree on the direction raise :class:`~xpm_train.errors.UserError`."""
    values = [(item, value) for item, value in ((item, metric_value(summary_of(item), metric)) for item in summaries)
              if is_result(value)]
    way = direction_among([summary_of(item) for item, _ in values], metric) or Direction.MAXIMIZE
    return [item for item, _ in way.ranked(values, lambda entry: entry[1])]


def metric_value(summary: Mapping[str, Any], metric: str) -> Any:
    """The value of ``metric`` (a flattened key) in ``summary`` (or a flat row)."""
    return summary[metric] if metric in summary else flatten(summary).get(metric)


def direction_among(summaries: Iterable[Mapping[str, Any]], metric: str) -> Optional[Direction]:
    """The direction ``summaries`` (that have ``metric``) declare for it
    (:meth:`Summary.direction`); None when none does;
    :class:`~xpm_train.errors.UserError` when they disagree."""
    ways = {direction(summary, metric) for summary in summaries} - {None}
    if len(ways) > 1:
        raise UserError(f"these jobs' {metric} values go different ways (some maximize, some minimize): keep "
                        "one kind with --task or --where, or sort by another column")
    return ways.pop() if ways else None


def known_direction(metric: str) -> Optional[Direction]:
    """The direction of a metric of xpm-train's objectives, under any of the
    names a summary or a log gives it (``mse``, ``val_mse``, ``best.val_mse``:
    composed by :func:`key` and :func:`split_directions`, not parsed); None
    for another name. For what declares no direction: a summary written
    before directions were recorded, a metric given to ``report()`` without
    one, a log line read before the job's summary exists."""
    return known_directions().get(metric)


@functools.cache
def known_directions() -> dict[str, Direction]:
    from .directions import DECLARED

    return split_directions(DECLARED, ("", *KNOWN_SPLITS), PARTS)


KNOWN_SPLITS = ("train", "val", "eval", "test")
"""The splits xpm-train's tasks measure on (``eval``: Evaluate; ``test``: a user's)"""
