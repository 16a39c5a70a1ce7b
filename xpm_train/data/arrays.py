"""Helpers shared by the dataset configs: split names, statistics, tensors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .base import ImageArrays

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


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std of uint8 ``N x C x H x W`` images, in [0, 1] units.

    Computed exactly from a 256-bin histogram per channel, so the result does
    not depend on summation order and needs no float copy of the images.
    """
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"expected uint8 N x C x H x W images, got {images.dtype} {images.shape}")
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = np.bincount(images[:, channel].ravel(), minlength=256).astype(np.float64)
        total = counts.sum()
        mean = float((counts * values).sum() / total)
        means.append(mean)
        stds.append(float(np.sqrt((counts * (values - mean) ** 2).sum() / total)))
    return np.array(means), np.array(stds)


def to_image_arrays(
    images: np.ndarray, labels: np.ndarray, num_classes: int, mean: np.ndarray, std: np.ndarray,
    classes: "tuple[str, ...] | None" = None,
) -> "ImageArrays":
    """Wrap numpy arrays into torch-backed :class:`ImageArrays` (imports torch)."""
    import torch

    from .base import ImageArrays

    return ImageArrays(
        images=torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)),
        labels=torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
        num_classes=int(num_classes),
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        classes=classes,
    )
