"""The summary of a finished job: one schema, one writer, one reader.

Every task that trains or measures writes one JSON summary in its job folder
(Learn and training functions ``final.json``, Evaluate ``results.json``) and
every reader (``xpm_train.results``/``load``, Tune, export, ``xpm-train
results``) reads it through :func:`read`. Beside each task's own keys, a
summary has the same three top-level keys whatever wrote it::

    "score":        the value runs are compared by (e.g. the best validation accuracy)
    "score_metric": what it is (``val_accuracy``, ``val_mse``, ``objective``...)
    "direction":    "maximize" or "minimize": which way is better

so "the best job" and ``results --sort score`` never guess.

A score is a finite number: :func:`is_result` is the one test of "is this a
valid result value" (best epochs, a training function's objective, the
summary written), and :func:`write` refuses a summary whose score is NaN,
infinite or missing, so that such a job ends failed instead of being cached
as done with a meaningless result.
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Any, Optional

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


def score_fields(metric: str, value: Optional[float], direction: str) -> dict[str, Any]:
    """The three keys every summary holds (see the module documentation)."""
    return {"score": value, "score_metric": metric, "direction": direction}


def write(path: Path, summary: dict[str, Any]) -> None:
    """Write ``summary`` to ``path`` atomically (the job's summary file)."""
    from .atomic import atomic_write_json

    for key in ("score", "score_metric", "direction"):
        if key not in summary:
            raise ValueError(f"a summary needs '{key}' (see xpm_train.summary.score_fields)")
    check_result(summary["score"], f"the job's score ({summary['score_metric']})")
    atomic_write_json(Path(path), summary)


def read(folder: Path) -> dict[str, Any]:
    """The summary of the job in ``folder``, or ``{}`` when it has none yet."""
    for name in SUMMARY_FILES:
        path = Path(folder) / name
        if path.exists():
            return json.loads(path.read_text())
    return {}


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalar metrics flattened to one level (``best.val_accuracy``...)."""
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            flat[f"{prefix}{key}"] = value
    return flat


def direction(summary: dict[str, Any], metric: str) -> Optional[str]:
    """Which way ``metric`` (a flattened key of ``summary``) is better: the
    summary's own ``direction`` for ``score`` and for the metric the score is
    (``score_metric``: ``objective`` of a training function, ``val_mse``, and
    ``best.val_mse``...), else the known metric names."""
    from .objectives import direction_of

    declared, named = summary.get("direction"), summary.get("score_metric")
    if metric == "score":
        return declared
    if isinstance(declared, str) and isinstance(named, str) and (metric == named or metric.endswith("." + named)):
        return declared
    return direction_of(metric)
