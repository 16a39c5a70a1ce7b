"""The typed interface every dataset of xpm-train offers.

A dataset is an experimaestro ``Config`` (so it is a ``Param`` of Learn and
Evaluate, and part of their IDs) whose :meth:`Dataset.arrays` returns the
decoded split as :class:`Arrays`: any ``N x ...`` input tensor (uint8 images
``N x C x H x W``, float features ``N x F``, sequences ``N x C x T``...) and
its targets (int64 labels ``N`` for classes, float ``N x ...`` values), with
the statistics used to normalise the inputs.

This is the contract the training loop, the streaming and the distributed
readers build on; keep it small:

- ``arrays()`` returns the whole split, decoded (cache it: see
  :func:`xpm_train.extend.cached_arrays`); it runs in the task process only;
- ``targets()`` says, without loading anything, what the targets are
  (``"classes"``, ``"values"`` or ``None`` when unknown), so a wrong objective
  is refused when the plan is built, not after hours of training.

Loading is cheap inside a task: each built-in dataset decodes its raw files
once and caches the decoded tensors beside them (see :mod:`xpm_train.data.cache`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from experimaestro import Config

if TYPE_CHECKING:  # torch is imported lazily: tasks pay for it only when used
    import torch

    from .prepared import Source


@dataclass(frozen=True)
class Arrays:
    """A decoded split: everything a training loop needs, already in memory.

    Normalisation (done on the device, per batch): uint8 inputs are scaled to
    [0, 1] first; then ``(x - mean) / std`` per entry of dimension 1 (the
    channel of an image, the feature of a table). Empty ``mean``/``std``: the
    inputs are used as they are (after the uint8 scaling).
    """

    inputs: "torch.Tensor"
    """``N x ...`` tensor: uint8 (images) or floating point"""

    targets: "torch.Tensor"
    """int64 labels of shape ``N`` (classes) or float values ``N x ...``"""

    num_classes: Optional[int] = None
    """Number of classes (labels in ``[0, num_classes)``); None for values"""

    mean: tuple[float, ...] = ()
    """Per-entry (dimension 1) mean of the inputs, in [0, 1] units for uint8"""

    std: tuple[float, ...] = ()
    """Per-entry (dimension 1) standard deviation, same units"""

    classes: Optional[tuple[str, ...]] = None
    """Class names (label ``i`` is ``classes[i]``), when known"""

    def __post_init__(self):
        import torch

        n = self.inputs.shape[0] if self.inputs.dim() else 0
        if self.inputs.dim() < 2:
            raise ValueError(f"inputs must be N x ..., got shape {tuple(self.inputs.shape)} (one row per sample)")
        if self.inputs.dtype != torch.uint8 and not self.inputs.is_floating_point():
            raise ValueError(f"inputs must be uint8 or floating point, got {self.inputs.dtype}")
        if self.targets.dim() == 0 or self.targets.shape[0] != n:
            raise ValueError(f"{n} inputs but targets of shape {tuple(self.targets.shape)}")
        if self.num_classes is not None:
            if self.targets.dtype != torch.int64 or self.targets.dim() != 1:
                raise ValueError(f"class labels must be an int64 tensor of shape N, got {self.targets.dtype} "
                                 f"of shape {tuple(self.targets.shape)}")
        elif not self.targets.is_floating_point():
            raise ValueError(f"targets without num_classes are values and must be floating point, got "
                             f"{self.targets.dtype} (labels: give num_classes)")
        if len(self.mean) != len(self.std) or (self.mean and len(self.mean) != self.inputs.shape[1]):
            raise ValueError(f"mean and std need one value per entry of dimension 1 ({self.inputs.shape[1]}), "
                             f"got {len(self.mean)} and {len(self.std)}")
        if self.classes is not None and len(self.classes) != self.num_classes:
            raise ValueError(f"{len(self.classes)} class names for {self.num_classes} classes")

    @property
    def images(self) -> "torch.Tensor":
        """The inputs (the name used for image datasets)"""
        return self.inputs

    @property
    def labels(self) -> "torch.Tensor":
        """The targets (the name used for classification)"""
        return self.targets

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one input: ``(C, H, W)``, ``(F,)``..."""
        return tuple(self.inputs.shape[1:])

    @property
    def target_shape(self) -> tuple[int, ...]:
        """Shape of one target: ``()`` for labels"""
        return tuple(self.targets.shape[1:])

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def subset(self, indices: "torch.Tensor") -> "Arrays":
        """The same split restricted to ``indices`` (statistics are kept); the
        split itself, not a copy, when ``indices`` is ``0..n-1`` in order."""
        import torch

        whole = indices.dtype == torch.long and len(indices) == len(self)
        if whole and torch.equal(indices, torch.arange(len(self))):
            return self
        return Arrays(inputs=self.inputs[indices], targets=self.targets[indices], num_classes=self.num_classes,
                      mean=self.mean, std=self.std, classes=self.classes)


class ImageArrays(Arrays):
    """:class:`Arrays` of uint8 ``N x C x H x W`` images and int64 labels, built
    with the image names: ``ImageArrays(images=, labels=, num_classes=, mean=, std=)``."""

    def __init__(self, images, labels, num_classes: int, mean, std, classes=None):
        super().__init__(inputs=images, targets=labels, num_classes=num_classes, mean=tuple(mean),
                         std=tuple(std), classes=classes)

    def __post_init__(self):
        import torch

        if self.inputs.dtype != torch.uint8 or self.inputs.dim() != 4:
            raise ValueError(
                f"images must be a uint8 N x C x H x W tensor, got {self.inputs.dtype} "
                f"of shape {tuple(self.inputs.shape)}"
            )
        if len(self.mean) != self.inputs.shape[1] or len(self.std) != self.inputs.shape[1]:
            raise ValueError("mean and std need one value per channel")
        super().__post_init__()


@dataclass(frozen=True)
class DataInfo:
    """What a model is built for (given to :meth:`xpm_train.Model.module`)."""

    shape: tuple[int, ...]
    """Shape of one input: ``(C, H, W)`` images, ``(F,)`` features, ``(C, T)`` sequences"""

    outputs: int
    """Size of the network's output for one sample, as the objective reads
    it: the number of classes, the target size, the input size (reconstruction)"""

    num_classes: Optional[int] = None
    """Number of classes (None: the targets are values)"""

    target_shape: tuple[int, ...] = ()
    """Shape of one target (``()`` for labels)"""

    classes: Optional[tuple[str, ...]] = None
    """Class names, when the dataset knows them"""

    @property
    def features(self) -> int:
        """Number of input values of one sample (``C * H * W``...)"""
        return math.prod(self.shape)


class Dataset(Config):
    """A split of any tensors (interface: subclasses implement :meth:`arrays`)."""

    def arrays(self) -> Arrays:
        """Decoded inputs and targets of this split."""
        raise NotImplementedError(f"{type(self).__name__} does not implement arrays()")

    def targets(self) -> Optional[str]:
        """``"classes"``, ``"values"`` or None (not known without loading):
        lets Learn refuse a wrong objective when the plan is built."""
        return None

    def schema(self) -> Optional[Arrays]:
        """An empty :class:`Arrays` of this split's kind (input shape and
        dtype, targets, number of classes) when known without loading the data
        (:func:`empty_arrays`), else None: lets Learn and Evaluate refuse, when
        the plan submits them, a model whose output size does not fit (without
        it, the job checks it when it starts)."""
        return None

    def records(self) -> "Source":
        """How this split is prepared for streaming (:mod:`xpm_train.data.prepared`).

        Default: from :meth:`arrays` (loaded once, when preparing), keyed by
        this config's ID, and of unknown size until then (so it streams only
        when asked to). A dataset larger than memory overrides it with a
        source that describes its records without decoding them and decodes
        them chunk by chunk (as :class:`~xpm_train.data.ImageFolder` does)."""
        from .prepared import ArraysSource

        return ArraysSource(self)


def empty_arrays(shape: tuple[int, ...], num_classes: Optional[int] = None,
                 target_shape: tuple[int, ...] = (), floats: bool = False) -> Arrays:
    """No sample of inputs of ``shape`` (uint8 images, or float ``floats``)
    with labels of ``num_classes`` classes, or float values of ``target_shape``
    (``num_classes`` None): what :meth:`Dataset.schema` returns."""
    import torch

    inputs = torch.empty((0, *shape), dtype=torch.float32 if floats else torch.uint8)
    if num_classes is not None:
        return Arrays(inputs=inputs, targets=torch.empty(0, dtype=torch.int64), num_classes=num_classes)
    return Arrays(inputs=inputs, targets=torch.empty((0, *target_shape), dtype=torch.float32))


class ImageDataset(Dataset):
    """A labelled image split: :meth:`arrays` returns :class:`ImageArrays`."""

    def targets(self) -> Optional[str]:
        return "classes"
