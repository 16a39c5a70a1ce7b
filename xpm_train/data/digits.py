"""scikit-learn's bundled 8x8 handwritten digits: real data that needs no download.

The reader (:func:`load_digits_arrays`), the config (:class:`Digits`) and what
a plan calls (:func:`prepare_digits`); the split is
:func:`~xpm_train.data.splits.stratified_split`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from experimaestro import Param

from .arrays import channel_stats, to_image_arrays
from .base import ImageDataset
from .files import bundled_sklearn_file
from .splits import Splits, check_split, splits_of, stratified_split

if TYPE_CHECKING:
    from .base import ImageArrays

DIGITS_SPLIT_SEED = 20_240_601
"""Seed of the train/test split of the digits (part of the data definition: never change it)"""

DIGITS_TEST_FRACTION = 0.2
"""Fraction of each class that goes to the test split"""


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as uint8 ``N x 1 x 8 x 8`` images (0..16 scaled to 0..255) and int64 labels.

    Read straight from the CSV that scikit-learn bundles (what its
    ``load_digits`` reads), without importing scikit-learn: that import
    costs 1-3 s in every task process.
    """
    data = np.loadtxt(bundled_digits_csv(), delimiter=",")
    pixels, target = data[:, :-1], data[:, -1]
    images = np.rint(pixels.reshape(-1, 8, 8) * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    return images, target.astype(np.int64)


def bundled_digits_csv() -> Path:
    """``sklearn/datasets/data/digits.csv.gz``, located without importing scikit-learn."""
    return bundled_sklearn_file("digits.csv.gz")


class Digits(ImageDataset):
    """scikit-learn's 8x8 digits (1797 real images, 10 classes, 1 channel), offline.

    Split: stratified and seeded -- within each class the samples are
    shuffled by ``numpy.random.default_rng(DIGITS_SPLIT_SEED)`` (seed
    20240601, classes in increasing order) and ``round(0.2 * class size)`` of
    them form the test split (359 images), the rest the train split (1438).
    Pixels 0..16 are scaled to 0..255 (rounded). Mean/std come from the train
    split whatever ``split`` is.
    """

    split: Param[str]
    """Which split: "train" (80%) or "test" (20%)"""

    def __post_init__(self):
        check_split("Digits", self.split)

    def schema(self):
        from .base import empty_arrays

        return empty_arrays((1, 8, 8), 10)

    def arrays(self) -> "ImageArrays":
        check_split("Digits", self.split)
        images, labels = load_digits_arrays()
        indices = stratified_split(labels, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)
        mean, std = channel_stats(images[indices["train"]])
        chosen = indices[self.split]
        return to_image_arrays(images[chosen], labels[chosen], 10, mean, std)


def prepare_digits() -> Splits:
    """The :class:`Digits` splits (bundled with scikit-learn: nothing to fetch)."""
    return splits_of(Digits)
