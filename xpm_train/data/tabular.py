"""Tabular data: float features and float targets (regression), offline.

:class:`Diabetes` is scikit-learn's bundled diabetes table (442 patients,
10 features, a disease-progression target), read from the files
``load_diabetes`` reads, without importing scikit-learn (1-3 s per task).
:func:`feature_arrays` wraps any float table into :class:`Arrays`
normalised with the train split's statistics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np
from experimaestro import Param

from .base import Dataset
from .files import bundled_sklearn_file
from .splits import check_split, random_split

if TYPE_CHECKING:
    from .base import Arrays

DIABETES_SPLIT_SEED = 20_240_602
"""Seed of the train/test split of the diabetes table (part of the data definition: never change it)"""

DIABETES_TEST_FRACTION = 0.2
"""Fraction of the rows that go to the test split"""


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) std of each column of ``dimension 1`` of ``N x F x ...``
    features (float64; a constant column gets std 1, so it normalises to 0)."""
    values = np.asarray(features, dtype=np.float64)
    axes = (0,) + tuple(range(2, values.ndim))
    mean, std = values.mean(axis=axes), values.std(axis=axes)
    return mean, np.where(std > 0, std, 1.0)


def feature_arrays(features: np.ndarray, targets: np.ndarray, train_features: np.ndarray,
                   num_classes: Optional[int] = None) -> "Arrays":
    """Float ``features`` (``N x F``, ``N x C x T``...) and their ``targets``
    (int labels with ``num_classes``, else float values of any shape) as
    :class:`Arrays`, normalised by the statistics of ``train_features``."""
    import torch

    from .base import Arrays

    mean, std = feature_stats(train_features)
    labels = num_classes is not None
    return Arrays(
        inputs=torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)),
        targets=torch.from_numpy(np.ascontiguousarray(targets, dtype=np.int64 if labels else np.float32)),
        num_classes=num_classes, mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std),
    )


def load_diabetes_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 442 x 10 raw features (age, sex, bmi, bp, s1..s6) and the targets, float64."""
    features = np.loadtxt(bundled_sklearn_file("diabetes_data_raw.csv.gz"))
    targets = np.loadtxt(bundled_sklearn_file("diabetes_target.csv.gz"))
    return features, targets


class Diabetes(Dataset):
    """scikit-learn's diabetes table (442 rows, 10 float features, one float
    target), offline; the raw features (not ``load_diabetes``'s scaled ones),
    normalised per feature by the train split's mean/std.

    Split: seeded -- ``numpy.random.default_rng(DIABETES_SPLIT_SEED)``
    (20240602) permutes the rows and the first ``round(0.2 * 442)`` = 88 form
    the test split, the other 354 the train split.
    """

    split: Param[str]
    """Which split: "train" (80%) or "test" (20%)"""

    def __post_init__(self):
        check_split("Diabetes", self.split)

    def targets(self):
        return "values"

    def schema(self):
        from .base import empty_arrays

        return empty_arrays((10,), floats=True)

    def arrays(self) -> "Arrays":
        check_split("Diabetes", self.split)
        features, targets = load_diabetes_arrays()
        indices = random_split(len(targets), DIABETES_TEST_FRACTION, DIABETES_SPLIT_SEED)
        chosen = indices[self.split]
        return feature_arrays(features[chosen], targets[chosen], features[indices["train"]])
