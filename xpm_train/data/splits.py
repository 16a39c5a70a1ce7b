"""Splits, one owner: the split names, the train/test configs of a dataset,
the seeded train/test partitions of the built-ins, and the validation part a
Learn holds out (which :class:`~xpm_train.data.heldout.HeldOut` reproduces).

Every function here is part of the data's definition: a change of any of
them changes which samples each job trains on, so they never change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from .base import Dataset

SPLITS = ("train", "test")
"""Split names every dataset of xpm-train offers"""


def check_split(dataset: str, split: str) -> str:
    """Return ``split`` or raise a ValueError saying which values are valid."""
    if split not in SPLITS:
        raise ValueError(
            f"{dataset}: unknown split {split!r}; use one of {', '.join(map(repr, SPLITS))} "
            f"(e.g. {dataset}.C(split='train')). Validation sets are carved from 'train'."
        )
    return split


@dataclass(frozen=True)
class Splits:
    """The train and test configs of one dataset."""

    train: "Dataset"
    """Config of the train split"""

    test: "Dataset"
    """Config of the test split"""


def splits_of(config_type: type, **fields) -> Splits:
    """``config_type.C(split=..., **fields)`` for each split."""
    return Splits(train=config_type.C(split="train", **fields), test=config_type.C(split="test", **fields))


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Sorted train/test indices: each class is shuffled with ``seed`` and its
    first ``round(test_fraction * size)`` samples go to the test split."""
    rng = np.random.default_rng(seed)
    test = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        test.append(members[: int(round(test_fraction * len(members)))])
    test_indices = np.sort(np.concatenate(test))
    train_indices = np.setdiff1d(np.arange(len(labels)), test_indices)
    return {"train": train_indices, "test": test_indices}


def random_split(n: int, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Sorted train/test indices of ``n`` rows: ``round(test_fraction * n)`` of
    them, drawn by ``numpy.random.default_rng(seed)``, form the test split."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(test_fraction * n))
    return {"train": np.sort(order[n_test:]), "test": np.sort(order[:n_test])}


def split_indices(n: int, fraction: float, seed: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """``(train, validation)`` indices of a training split: a seeded random
    ``fraction`` held out (Learn's ``val_fraction``/``split_seed``, HeldOut)."""
    import torch

    if not 0 <= fraction < 1:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * fraction))
    return order[n_val:].sort().values, order[:n_val].sort().values
