"""Helpers shared by the dataset configs: statistics, tensors (the splits: :mod:`.splits`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .base import ImageArrays

def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std of uint8 ``N x C x H x W`` images, in [0, 1] units.

    Computed exactly from a 256-bin histogram per channel, so the result does
    not depend on summation order and needs no float copy of the images (and
    chunks' :func:`channel_counts` add up to the same statistics).
    """
    return stats_from_counts(channel_counts(images))


def channel_counts(images: np.ndarray) -> np.ndarray:
    """``C x 256`` int64 histogram of the values of each channel of uint8 ``N x C x H x W`` images."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"expected uint8 N x C x H x W images, got {images.dtype} {images.shape}")
    return np.stack([np.bincount(images[:, c].ravel(), minlength=256) for c in range(images.shape[1])])


def stats_from_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per channel, in [0, 1] units, of :func:`channel_counts`."""
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for channel in range(counts.shape[0]):
        weights = counts[channel].astype(np.float64)
        total = weights.sum()
        mean = float((weights * values).sum() / total)
        means.append(mean)
        stds.append(float(np.sqrt((weights * (values - mean) ** 2).sum() / total)))
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
