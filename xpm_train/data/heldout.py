"""HeldOut: the validation part of a training split, as Learn holds it out.

``Learn`` trains on ``data`` minus a seeded random ``val_fraction`` of it;
``HeldOut.C(data=..., fraction=..., seed=...)`` is that very part (the same
indices, see :func:`xpm_train.data.splits.split_indices`), so an ``Evaluate``
can measure a trained model on it, e.g. each trial of a Tune study
(``Study(evaluate=True)``). ``Learn.held_out()`` builds it for a Learn.
"""

from __future__ import annotations

from typing import Annotated

from experimaestro import Param, field

from ..checks import Range
from .base import Arrays, Dataset


class HeldOut(Dataset):
    """The ``fraction`` of ``data`` that a Learn with the same
    ``val_fraction`` and ``split_seed`` holds out for validation."""

    data: Param[Dataset]
    """The training split the part is taken from"""

    fraction: Annotated[Param[float], Range(0, 1, low_open=True)]
    """Fraction held out (Learn's ``val_fraction``)"""

    seed: Param[int] = field(default=0, ignore_default=True)
    """Seed of the split (Learn's ``split_seed``)"""

    def targets(self):
        return self.data.targets()

    def schema(self):
        return self.data.schema()

    def arrays(self) -> Arrays:
        from .splits import split_indices

        arrays = self.data.arrays()
        _, held_out = split_indices(len(arrays), self.fraction, self.seed)
        return arrays.subset(held_out)
