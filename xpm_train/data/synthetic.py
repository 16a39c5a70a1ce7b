"""Synthetic, learnable image data: :class:`Synthetic` (in memory), and the
images the real-format writers of the datasets' modules write.

Every class has a fixed random pattern; an image is ``SIGNAL`` times its
class pattern plus ``1 - SIGNAL`` times uniform noise, so a tiny (even
linear) model learns it in a few steps while the task is not trivially
constant. Everything is a pure function of the seed.

:func:`~xpm_train.data.mnist.write_idx_dataset` and
:func:`~xpm_train.data.cifar.write_cifar10_dataset` write
:func:`synthetic_arrays` as small files in the *real* formats and layouts and
return a source pointing to them, with their true md5s, so the whole
prepare/download/decode path can be exercised offline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from experimaestro import Param, field

from .arrays import channel_stats, to_image_arrays
from .base import ImageDataset
from .splits import check_split

if TYPE_CHECKING:
    from .base import ImageArrays

SIGNAL = 0.6
"""Weight of the class pattern in each image (the rest is noise)"""

_SPLIT_STREAM = {"train": 1, "test": 2}


def synthetic_arrays(
    split: str, n: int, shape: tuple[int, int, int], num_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images of ``shape`` (C, H, W) and balanced int64 labels.

    The class patterns depend on ``seed`` only; the samples on ``seed`` and
    ``split``, so train and test share patterns but not samples.
    """
    check_split("synthetic_arrays", split)
    patterns = np.random.default_rng([seed, 0]).random((num_classes, *shape))
    rng = np.random.default_rng([seed, _SPLIT_STREAM[split]])
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    mixed = SIGNAL * patterns[labels] + (1 - SIGNAL) * rng.random((n, *shape))
    return np.rint(mixed * 255).astype(np.uint8), labels


class Synthetic(ImageDataset):
    """Seeded synthetic images with class-dependent patterns (no files; for fast tests)."""

    split: Param[str]
    """Which split: "train" or "test" (same class patterns, different samples)"""

    num_samples: Param[int] = field(default=256)
    """Number of images in this split"""

    channels: Param[int] = field(default=1)
    """Channels of an image"""

    height: Param[int] = field(default=8)
    """Height of an image"""

    width: Param[int] = field(default=8)
    """Width of an image"""

    num_classes: Param[int] = field(default=4)
    """Number of classes"""

    seed: Param[int] = field(default=0)
    """Seed of the class patterns and samples"""

    def __post_init__(self):
        check_split("Synthetic", self.split)

    def schema(self):
        from .base import empty_arrays

        return empty_arrays((self.channels, self.height, self.width), self.num_classes)

    def arrays(self) -> "ImageArrays":
        shape = (self.channels, self.height, self.width)
        images, labels = synthetic_arrays(self.split, self.num_samples, shape, self.num_classes, self.seed)
        train = images if self.split == "train" else synthetic_arrays(
            "train", self.num_samples, shape, self.num_classes, self.seed
        )[0]
        mean, std = channel_stats(train)
        return to_image_arrays(images, labels, self.num_classes, mean, std)
