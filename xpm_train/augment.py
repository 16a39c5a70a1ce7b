"""Batch augmentation on the device: random crop with padding, horizontal flip, cutout.

Whole batches are transformed at once on the device that holds them (no
per-sample Python, no DataLoader workers), as the fastest CIFAR-10 trainings
do. The randomness of batch ``b`` of epoch ``e`` comes from a generator seeded
with ``(seed, e, b)`` only, so a run resumed in the middle of an epoch applies
the very same transformations as an uninterrupted one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from experimaestro import Config, Param, field

from .checks import NonNegative, Range

if TYPE_CHECKING:
    import torch


class Augment(Config):
    """Random transformations of the training batches (never of validation or test)."""

    crop_padding: Annotated[Param[int], NonNegative()] = field(default=0, ignore_default=True)
    """Pad each image by this many pixels (with the mean) and crop it back at a
    random offset (0: no crop; 4 is the usual value for 32x32 images)"""

    flip: Param[bool] = field(default=False, ignore_default=True)
    """Flip half of the images horizontally (not for digits!)"""

    cutout: Annotated[Param[int], NonNegative()] = field(default=0, ignore_default=True)
    """Side of a square set to the mean at a random place of each image (0: none)"""

    flip_probability: Annotated[Param[float], Range(0, 1, high_open=False)] = field(
        default=0.5, ignore_default=True)
    """Probability of flipping an image when ``flip`` is on"""

    def apply(self, images: "torch.Tensor", seed: int, epoch: int, batch: int) -> "torch.Tensor":
        """Transform a normalised ``B x C x H x W`` batch (mean = 0, so padding and
        cutout use zeros)."""
        generator = batch_generator(images.device, seed, epoch, batch)
        if self.crop_padding:
            images = random_crop(images, self.crop_padding, generator)
        if self.flip:
            images = random_flip(images, self.flip_probability, generator)
        if self.cutout:
            images = cutout(images, self.cutout, generator)
        return images


def batch_generator(device: "torch.device", seed: int, epoch: int, batch: int) -> "torch.Generator":
    """A generator on ``device`` that depends only on ``(seed, epoch, batch)``."""
    import torch

    generator = torch.Generator(device=device)
    generator.manual_seed(((seed * 1_000_003 + epoch) * 1_000_033 + batch) % (2**63))
    return generator


def random_crop(images: "torch.Tensor", padding: int, generator: "torch.Generator") -> "torch.Tensor":
    """Each image zero-padded by ``padding`` and cropped back at its own random offset."""
    import torch

    b, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (b, 1), device=images.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b, 1), device=images.device, generator=generator)
    rows = (dy + torch.arange(h, device=images.device)).view(b, 1, h, 1)
    cols = (dx + torch.arange(w, device=images.device)).view(b, 1, 1, w)
    index = torch.arange(b, device=images.device).view(b, 1, 1, 1)
    channels = torch.arange(images.shape[1], device=images.device).view(1, -1, 1, 1)
    return padded[index, channels, rows, cols]


def random_flip(images: "torch.Tensor", probability: float, generator: "torch.Generator") -> "torch.Tensor":
    """Each image flipped left-right with ``probability``."""
    import torch

    flip = torch.rand(images.shape[0], device=images.device, generator=generator) < probability
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(3), images)


def cutout(images: "torch.Tensor", size: int, generator: "torch.Generator") -> "torch.Tensor":
    """A ``size x size`` square (clipped at the borders) set to 0 at a random
    centre of each image."""
    import torch

    b, _, h, w = images.shape
    cy = torch.randint(0, h, (b, 1, 1), device=images.device, generator=generator)
    cx = torch.randint(0, w, (b, 1, 1), device=images.device, generator=generator)
    ys = torch.arange(h, device=images.device).view(1, h, 1)
    xs = torch.arange(w, device=images.device).view(1, 1, w)
    low = size // 2
    inside = (ys >= cy - low) & (ys < cy - low + size) & (xs >= cx - low) & (xs < cx - low + size)
    return images.masked_fill(inside.unsqueeze(1), 0.0)
