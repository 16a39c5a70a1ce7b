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

from .pruners import MedianPruner, Pruner
from .samplers import TPE, Sampler
from .space import Space

if TYPE_CHECKING:
    from ..learn import Learn

DIRECTIONS = ("maximize", "minimize")


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
    """Objective: a key of the Learn's ``final.json`` (flattened with dots)"""

    direction: str = "maximize"
    """``maximize`` or ``minimize`` the metric"""

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.label or ""):
            raise ValueError(f"study label {self.label!r} must be letters, digits, '-' or '_'")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        self.sampler = self.sampler if self.sampler is not None else TPE.C()
        self.pruner = self.pruner if self.pruner is not None else MedianPruner.C()
        self.space.validate(self.base)

    def content(self) -> dict[str, Any]:
        """Everything that defines the study (hashed into its name)."""
        return {
            "space": self.space.spec(),
            "sampler": config_description(self.sampler),
            "pruner": config_description(self.pruner),
            "metric": self.metric,
            "direction": self.direction,
            "base": config_description(self.base),
        }

    @property
    def name(self) -> str:
        content = json.dumps(self.content(), sort_keys=True, default=str)
        return f"{self.label}-{hashlib.sha256(content.encode()).hexdigest()[:12]}"


def config_description(config) -> dict[str, Any]:
    """Type and experimaestro ID of a config (Meta values do not count)."""
    return {"type": str(type(config).__xpmtype__.identifier),
            "id": config.__identifier__().all.hex()}
