"""The device-resident data pipeline.

Datasets that fit in memory are moved once to the device as uint8 tensors;
each epoch draws a permutation (every sample exactly once, as a shuffled
DataLoader does) and slices batches out of it; normalisation runs on whole
batches on the device. The permutation of epoch ``e`` depends only on the
seed and ``e``, so a run resumed in the middle of an epoch sees the very
batches an uninterrupted run would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import torch

    from .data.base import ImageArrays


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


def epoch_order(n: int, seed: int, epoch: int) -> "torch.Tensor":
    """The sample order of ``epoch``: a permutation of ``range(n)`` that depends
    only on ``(seed, epoch)``."""
    import torch

    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


def split_indices(n: int, fraction: float, seed: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """``(train, validation)`` indices: a seeded random ``fraction`` held out."""
    import torch

    if not 0 <= fraction < 1:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * fraction))
    return order[n_val:].sort().values, order[:n_val].sort().values


class DeviceData:
    """A split held on ``device``, with the statistics needed to normalise it."""

    def __init__(self, arrays: "ImageArrays", device: "torch.device"):
        import torch

        self.images = arrays.images.to(device)
        self.labels = arrays.labels.to(device)
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(arrays.mean, device=device).view(shape) * 255
        self.std = torch.tensor(arrays.std, device=device).view(shape) * 255

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def normalize(self, images: "torch.Tensor") -> "torch.Tensor":
        """uint8 batch -> float batch with zero mean and unit variance."""
        return (images.float() - self.mean) / self.std

    def batches(
        self, batch_size: int, order: "torch.Tensor | None" = None, start: int = 0
    ) -> Iterator[tuple["torch.Tensor", "torch.Tensor"]]:
        """Normalised ``(images, labels)`` batches in ``order`` (default: as
        stored), starting at batch number ``start``."""
        n = len(self)
        if order is not None:
            order = order.to(self.images.device)
        for begin in range(start * batch_size, n, batch_size):
            if order is None:
                images = self.images[begin : begin + batch_size]
                labels = self.labels[begin : begin + batch_size]
            else:
                index = order[begin : begin + batch_size]
                images, labels = self.images[index], self.labels[index]
            yield self.normalize(images), labels
