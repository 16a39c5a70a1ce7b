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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from .pruners import MedianPruner, Pruner
from .samplers import TPE, Sampler
from .space import Space

if TYPE_CHECKING:
    from ..learn import Learn

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

    sampler: Sampler = None  # type: ignore[assignment]
    """Optuna sampler (default: TPE with seed 0)"""

    pruner: Pruner = None  # type: ignore[assignment]
    """Optuna pruner (default: MedianPruner)"""

    metric: str = "best.val_accuracy"
    """Objective: a key of the Learn's ``final.json`` (flattened with dots),
    or ``evaluate.<key>`` of the trial's Evaluate (``evaluate=True``), e.g.
    ``evaluate.top5_accuracy``"""

    direction: str = "maximize"
    """``maximize`` or ``minimize`` the metric"""

    evaluate: bool = False
    """Also run an Evaluate of each finished (not pruned) trial on the part of
    the data its Learn held out (:class:`xpm_train.HeldOut`): its
    ``results.json`` is then kept with the trial, and ``evaluate.<key>`` metrics
    can be the objective"""

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.label or ""):
            raise StudyError(f"study label {self.label!r} must be letters, digits, '-' or '_'")
        if self.direction not in DIRECTIONS:
            raise StudyError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        self.sampler = self.sampler if self.sampler is not None else TPE.C()
        self.pruner = self.pruner if self.pruner is not None else MedianPruner.C()
        self.space.validate(self.base)
        if self.metric.startswith(EVALUATE_PREFIX) and not self.evaluate:
            raise StudyError(f"metric {self.metric!r} is a result of the trials' Evaluate: set "
                             "Study(evaluate=True) (in the tune plan's params.yaml: evaluate: true)")
        if self.evaluate and self.base.val_fraction <= 0:
            raise StudyError("Study(evaluate=True) evaluates each trial on the data its Learn holds out: "
                             "give the base Learn a val_fraction > 0")

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
        }

    @property
    def name(self) -> str:
        content = json.dumps(self.content(), sort_keys=True, default=str)
        return f"{self.label}-{hashlib.sha256(content.encode()).hexdigest()[:12]}"


def config_description(config) -> dict[str, Any]:
    """Type and experimaestro ID of a config (Meta values do not count)."""
    return {"type": str(type(config).__xpmtype__.identifier),
            "id": config.__identifier__().all.hex()}
