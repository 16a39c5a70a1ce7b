"""Base of the datasets decoded from official raw files kept in a local folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Optional

import numpy as np
from experimaestro import Meta, Param

from .arrays import channel_stats, to_image_arrays
from .base import ImageDataset
from .cache import cached_arrays
from .splits import check_split

if TYPE_CHECKING:
    from .base import ImageArrays


def decoded_split(images: np.ndarray, labels: np.ndarray, source: str) -> dict[str, np.ndarray]:
    """Check decoded ``N x C x H x W`` uint8 images against their labels and add the split statistics."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"{source}: expected uint8 N x C x H x W images, got {images.dtype} {images.shape}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"{source}: {images.shape[0]} images but labels of shape {labels.shape}")
    mean, std = channel_stats(images)
    return {"images": images, "labels": labels.astype(np.int64), "mean": mean, "std": std}


class RawImageDataset(ImageDataset):
    """A split decoded from official files in ``folder`` (its module's ``prepare_*`` fetches them).

    The experiment identity is the dataset type and the split: the raw files
    are pinned by their published checksums (checked when they are
    prepared), so where they sit on a given machine (``folder``) is a
    ``Meta`` and the same experiment run on two machines has the same ID.
    Images are decoded once and cached beside the raw files. Mean/std are
    always those of the train split.
    """

    split: Param[str]
    """Which split: "train" or "test" (the official ones)"""

    folder: Meta[Path]
    """Folder holding the official raw files (machine-specific, not part of the ID)"""

    DATASET: ClassVar[str] = "?"
    """Human-readable name, used in messages"""

    NUM_CLASSES: ClassVar[int] = 10
    """Number of classes"""

    PREPARE: ClassVar[str] = "?"
    """The function of xpm_train.data that fetches the files (named in errors)"""

    SHAPE: ClassVar[Optional[tuple[int, ...]]] = None
    """Shape of one image, when the dataset fixes it (for :meth:`schema`)"""

    def schema(self):
        from .base import empty_arrays

        return empty_arrays(self.SHAPE, self.NUM_CLASSES) if self.SHAPE is not None else None

    def source_files(self, split: str) -> list[Path]:
        """The raw files ``split`` is decoded from (first one: where its cache lives)."""
        raise NotImplementedError

    def decode(self, split: str) -> dict[str, np.ndarray]:
        """Decode ``split`` from the raw files (uncached): images, labels, mean, std."""
        raise NotImplementedError

    def __post_init__(self):
        check_split(self.DATASET, self.split)

    def _load(self, split: str, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        sources = self.source_files(split)
        missing = [str(path) for path in sources if not path.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{self.DATASET}: raw file(s) missing: {', '.join(missing)}. Fetch them with "
                f"xpm_train.data.{self.PREPARE}() (it downloads and checks them), or copy "
                f"the official files into {self.folder}."
            )
        return cached_arrays(sources, split, lambda: self.decode(split), names)

    def arrays(self) -> "ImageArrays":
        check_split(self.DATASET, self.split)
        data = self._load(self.split, ("images", "labels"))
        stats = self._load("train", ("mean", "std"))
        return to_image_arrays(data["images"], data["labels"], self.NUM_CLASSES, stats["mean"], stats["std"])
