"""The device-resident data pipeline.

Datasets that fit in memory are moved once to the device as uint8 tensors;
each epoch draws a permutation (every sample exactly once, as a shuffled
DataLoader does) and slices batches out of it (:mod:`xpm_train.sampler`); normalisation runs on whole
batches on the device. The permutation of epoch ``e`` depends only on the
seed and ``e``, so a run resumed in the middle of an epoch sees the very
batches an uninterrupted run would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from .data.splits import split_indices  # the validation split, with the other splits
from .sampler import epoch_order, shard_batches

__all__ = ["DeviceData", "Normalize", "epoch_order", "fits_on_device", "pick_device", "split_indices"]

if TYPE_CHECKING:
    import torch

    from .data.base import Arrays


def pick_device(name: str) -> "torch.device":
    """``auto`` -> CUDA when available, else CPU; anything else as given."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={name!r} was asked for but CUDA is not available on this host; "
            "use device='auto' or 'cpu'"
        )
    return device


class DeviceData:
    """A split held on ``device``, with the statistics needed to normalise it.

    When the split does not fit in the device's free memory (see
    :func:`fits_on_device`), it stays in (pinned) host memory and each batch
    is copied to the device asynchronously instead. Inputs are normalised as
    :class:`~xpm_train.data.base.Arrays` says (uint8 scaled to [0, 1], then
    mean/std per entry of dimension 1).
    """

    def __init__(self, arrays: "Arrays", device: "torch.device", resident: bool | None = None,
                 channels_last: bool = False):
        import torch

        self.device = device
        self.resident = fits_on_device(arrays, device) if resident is None else resident
        if self.resident:
            self.inputs, self.targets = arrays.inputs.to(device), arrays.targets.to(device)
        else:
            pin = device.type == "cuda"
            self.inputs = arrays.inputs.pin_memory() if pin else arrays.inputs
            self.targets = arrays.targets.pin_memory() if pin else arrays.targets
        self.norm = Normalize(arrays.mean, arrays.std, arrays.inputs.dtype == torch.uint8, arrays.inputs.dim(),
                              device, channels_last)

    @property
    def images(self) -> "torch.Tensor":
        """The inputs as stored (the name used for image datasets)"""
        return self.inputs

    @property
    def labels(self) -> "torch.Tensor":
        """The targets as stored"""
        return self.targets

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def normalize(self, inputs: "torch.Tensor") -> "torch.Tensor":
        """Stored batch -> float batch with zero mean and unit variance (channels-last when asked)."""
        return self.norm(inputs)

    def unnormalize(self, inputs: "torch.Tensor") -> "torch.Tensor":
        """A normalised batch back in input units ([0, 1] for uint8 images)."""
        return self.norm.undo(inputs)

    def batches(
        self, batch_size: int, order: "torch.Tensor | None" = None, start: int = 0,
        rank: int = 0, world: int = 1,
    ) -> Iterator[tuple["torch.Tensor", "torch.Tensor"]]:
        """Normalised ``(images, labels)`` batches in ``order`` (default: as
        stored), starting at batch number ``start``; with ``world`` ranks, this
        ``rank``'s shard of each batch (see :mod:`xpm_train.sampler`)."""
        import torch

        if order is None and world == 1:
            for begin in range(start * batch_size, len(self), batch_size):
                images = self.images[begin : begin + batch_size]
                labels = self.labels[begin : begin + batch_size]
                yield self.normalize(images), labels.to(self.device, non_blocking=True)
            return
        if order is None:
            order = torch.arange(len(self))
        for index in shard_batches(order.to(self.images.device), batch_size, start, rank, world):
            # index_select: the same gather as ``images[index]``, without
            # advanced indexing's overhead (a tenth of a small step)
            images, labels = self.images.index_select(0, index), self.labels.index_select(0, index)
            yield self.normalize(images), labels.to(self.device, non_blocking=True)


class Normalize:
    """The normalisation of :class:`~xpm_train.data.base.Arrays`, on the device:
    uint8 scaled to [0, 1], then ``(x - mean) / std`` per entry of dimension 1
    (shared by the in-memory and the streamed data: the same values)."""

    def __init__(self, mean, std, uint8: bool, dims: int, device: "torch.device", channels_last: bool = False):
        import torch

        self.device = device
        # Statistics in the units of the stored inputs (0..255 for uint8)
        self.scale = 255.0 if uint8 else 1.0
        shape = (1, -1) + (1,) * (dims - 2)
        self.mean = torch.tensor(mean or (0.0,), device=device, dtype=torch.float32).view(shape) * self.scale
        self.std = torch.tensor(std or (1.0,), device=device, dtype=torch.float32).view(shape) * self.scale
        self.channels_last = channels_last and dims == 4

    def __call__(self, inputs: "torch.Tensor") -> "torch.Tensor":
        """Stored batch -> float batch with zero mean and unit variance (channels-last when asked)."""
        import torch

        inputs = inputs.to(self.device, non_blocking=True)
        # In place on a fresh float copy: the same values as ``(x - mean) / std``
        # without two temporaries (a float input is copied, never changed)
        inputs = inputs.float() if inputs.dtype == torch.uint8 else inputs.to(torch.float32, copy=True)
        inputs = inputs.sub_(self.mean).div_(self.std)
        return inputs.contiguous(memory_format=torch.channels_last) if self.channels_last else inputs

    def undo(self, inputs: "torch.Tensor") -> "torch.Tensor":
        """A normalised batch back in input units ([0, 1] for uint8 images)."""
        return (inputs * self.std + self.mean) / self.scale


DEVICE_MEMORY_SHARE = 0.5
"""Largest share of a GPU's free memory a split may take to be held there"""


def fits_on_device(arrays: "Arrays", device: "torch.device") -> bool:
    """Whether ``arrays`` should live on ``device``: always on the CPU; on a GPU
    when it takes less than half of the free memory."""
    if device.type != "cuda":
        return True
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    size = (arrays.inputs.numel() * arrays.inputs.element_size()
            + arrays.targets.numel() * arrays.targets.element_size())
    return size < DEVICE_MEMORY_SHARE * free
