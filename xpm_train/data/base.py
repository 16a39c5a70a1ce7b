"""The one typed interface every image dataset of xpm-train offers.

A dataset is an experimaestro ``Config`` (so it is a ``Param`` of Learn and
Evaluate, and part of their IDs) whose :meth:`ImageDataset.arrays` returns the
decoded split as :class:`ImageArrays`: uint8 images ``N x C x H x W``, int64
labels, the number of classes and the per-channel mean/std used to normalise.

Loading is cheap inside a task: each dataset decodes its raw files once and
caches the decoded tensors beside them (see :mod:`xpm_train.data.cache`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from experimaestro import Config

if TYPE_CHECKING:  # torch is imported lazily: tasks pay for it only when used
    import torch


@dataclass(frozen=True)
class ImageArrays:
    """A decoded split: everything a training loop needs, already in memory."""

    images: "torch.Tensor"
    """uint8 tensor of shape ``N x C x H x W``"""

    labels: "torch.Tensor"
    """int64 tensor of shape ``N``"""

    num_classes: int
    """Number of classes (labels are in ``[0, num_classes)``)"""

    mean: tuple[float, ...]
    """Per-channel mean of the images scaled to [0, 1]"""

    std: tuple[float, ...]
    """Per-channel standard deviation of the images scaled to [0, 1]"""

    def __post_init__(self):
        import torch

        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be a uint8 N x C x H x W tensor, got {self.images.dtype} "
                f"of shape {tuple(self.images.shape)}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"{self.images.shape[0]} images but labels of shape {tuple(self.labels.shape)}"
            )
        if len(self.mean) != self.images.shape[1] or len(self.std) != self.images.shape[1]:
            raise ValueError("mean and std need one value per channel")

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of one image"""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, indices: "torch.Tensor") -> "ImageArrays":
        """The same split restricted to ``indices`` (statistics are kept); the
        split itself, not a copy, when ``indices`` is ``0..n-1`` in order."""
        import torch

        whole = indices.dtype == torch.long and len(indices) == len(self)
        if whole and torch.equal(indices, torch.arange(len(self))):
            return self
        return ImageArrays(
            images=self.images[indices],
            labels=self.labels[indices],
            num_classes=self.num_classes,
            mean=self.mean,
            std=self.std,
        )


class ImageDataset(Config):
    """A labelled image split (interface: subclasses implement :meth:`arrays`)."""

    def arrays(self) -> ImageArrays:
        """Decoded images and labels of this split."""
        raise NotImplementedError(f"{type(self).__name__} does not implement arrays()")
