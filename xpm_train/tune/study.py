"""Study: what a hyper-parameter search is, hence its name.

The name is ``<label>-<hash>``, the hash covering everything that changes
the results of the search: the search space, the sampler and its seed, the
pruner, the objective and the base Learn config. ``n_trials`` and
``n_parallel`` are not part of it: raising ``n_trials`` continues the same
study.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any, Optional

from ..errors import UserError
from .pruners import MedianPruner, Pruner
from .samplers import TPE, Sampler
from .space import Space

if TYPE_CHECKING:
    from ..learn import Learn
    from .asha import ASHA

DIRECTIONS = ("maximize", "minimize")


class StudyError(UserError, ValueError):
    """A study is ill-defined (the message says what to change)."""


EVALUATE_PREFIX = "evaluate."
"""Metrics taken from the trial's Evaluate (``Study.evaluate``)"""


@dataclass
class Study:
    """A search over ``space`` around the ``base`` Learn config."""

    label: str
    """Readable prefix of the study name (letters, digits, ``-`` and ``_``)"""

    base: "Learn"
    """The Learn config whose Params the space overrides (not submitted)"""

    space: Space
    """What varies"""

    _: KW_ONLY  # the options, by name (as Optuna's create_study)

    sampler: Sampler = None  # type: ignore[assignment]
    """Optuna sampler (default: TPE with seed 0)"""

    pruner: Pruner = None  # type: ignore[assignment]
    """Optuna pruner (default: MedianPruner)"""

    metric: Optional[str] = None
    """Objective: a key of the trial's ``final.json`` (flattened with dots:
    ``best.val_mse``, ``score``, ``final.<metric>`` of a training function's
    Result), or ``evaluate.<key>`` of the trial's Evaluate (``evaluate=True``),
    e.g. ``evaluate.top5_accuracy``. None: the base's score
    (``best.val_accuracy`` for a classifying Learn, ``score`` otherwise)"""

    direction: Optional[str] = None
    """``maximize`` or ``minimize`` the metric (None: the way the metric is
    better, from the base's objective or the metric's name)"""

    evaluate: bool = False
    """Also run an Evaluate of each finished (not pruned) trial on the part of
    the data its Learn held out (:class:`xpm_train.HeldOut`): its
    ``results.json`` is then kept with the trial, and ``evaluate.<key>`` metrics
    can be the objective"""

    scheduler: Optional["ASHA"] = None
    """Train the trials rung by rung, pausing them and promoting the best
    (:class:`xpm_train.tune.ASHA`); the pruner is then not used. None: each
    trial trains its Learn's epochs, stopped by the pruner"""

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.label or ""):
            raise StudyError(f"study label {self.label!r} must be letters, digits, '-' or '_'")
        check_reports(self.base)
        self.metric, self.direction = objective_defaults(self.base, self.metric, self.direction)
        if self.direction not in DIRECTIONS:
            raise StudyError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        self.sampler = self.sampler if self.sampler is not None else TPE.C()
        self.pruner = self.pruner if self.pruner is not None else MedianPruner.C()
        self.space.validate(self.base)
        if self.metric.startswith(EVALUATE_PREFIX) and not self.evaluate:
            raise StudyError(f"metric {self.metric!r} is a result of the trials' Evaluate: set "
                             "Study(evaluate=True) (in the tune plan's params.yaml: evaluate: true)")
        if self.evaluate and getattr(self.base, "val_fraction", 0) <= 0:
            raise StudyError("Study(evaluate=True) evaluates each trial on the data its Learn holds out: "
                             "give the base Learn a val_fraction > 0")
        if self.scheduler is not None:
            self.scheduler.check(self)

    def content(self) -> dict[str, Any]:
        """Everything that defines the study (hashed into its name)."""
        return {
            "space": self.space.spec(),
            "sampler": config_description(self.sampler),
            "pruner": config_description(self.pruner),
            "metric": self.metric,
            "direction": self.direction,
            "base": config_description(self.base),
            # only when set: the names of the studies made before it existed stay
            **({"evaluate": True} if self.evaluate else {}),
            **(self.scheduler.content() if self.scheduler is not None else {}),
        }

    @property
    def name(self) -> str:
        content = json.dumps(self.content(), sort_keys=True, default=str)
        return f"{self.label}-{hashlib.sha256(content.encode()).hexdigest()[:12]}"


def objective_defaults(base, metric: Optional[str], direction: Optional[str]) -> tuple[str, str]:
    """``(metric, direction)`` of a study, defaults filled from the base: a
    training task's ``study_score()`` (:mod:`xpm_train.training`), else the
    score a plain task declares."""
    from ..reporting import declared_score
    from ..summary import known_direction
    from ..training import is_training_task

    if is_training_task(base):
        score, score_direction = base.study_score()
    else:  # a plain Task declaring the score it reports
        score, score_direction = declared_score(type(base)), None
    score_direction = score_direction or known_direction(score)
    metric = metric or score
    if direction is None:
        direction = (score_direction if metric in (score, "score", "objective")
                     else known_direction(metric.removeprefix(EVALUATE_PREFIX)))  # evaluate.<key of results.json>
    if direction is None:
        raise StudyError(f"metric {metric!r}: say whether to maximize or minimize it "
                         "(Study(direction=...), in params.yaml: direction: minimize)")
    return metric, str(direction)


def check_reports(base) -> None:
    """Refuse, before any trial runs, a base whose jobs report no result: each
    trial would train, then fail for lack of a score."""
    from ..reporting import not_reporting_hint, reports

    if not reports(base):
        name = type(base).__qualname__
        raise StudyError(f"Study(base={name}.C(...)): {not_reporting_hint(name)}, and declare that score on "
                         f"the class (a class attribute, no Param): `reports = 'accuracy'`")


def config_description(config) -> dict[str, Any]:
    """Type and experimaestro ID of a config (Meta values do not count)."""
    from ..jobfolder import config_hash, task_id

    return {"type": task_id(config), "id": config_hash(config)}
