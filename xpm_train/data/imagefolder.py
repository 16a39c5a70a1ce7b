"""ImageFolder: your own folder of PNG/JPEG images, one sub-folder per class.

The torchvision layout (``<folder>/<class>/<image>.png``), read with
torchvision's own functions (``find_classes``, ``make_dataset`` and the PIL
loader of its ``ImageFolder``, ``default_loader``)::

    from xpm_train.data import prepare_image_folder
    images = prepare_image_folder("~/data/flowers", size=(32, 32))   # at plan time
    Learn.C(data=images.train, ...); Evaluate.C(data=images.test, ...)

:func:`prepare_image_folder` checks the folder, decodes every image once
into the cache of :mod:`xpm_train.data.cache` (beside the folder, like
MNIST's beside its files) and computes a content *fingerprint*: the SHA-256
of every file's path and bytes. The fingerprint is a ``Param`` (so changing
the images makes new jobs) and the folder a ``Meta`` (so moving it keeps the
IDs). A task whose folder no longer holds those very files stops with a
message saying so, instead of training on other data under the old ID.

The split is stratified and seeded (:func:`xpm_train.extend.stratified_split`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import numpy as np
from experimaestro import Meta, Param, field

from ..checks import Range
from ..errors import UserError
from .arrays import channel_stats, check_split, to_image_arrays
from .base import ImageDataset
from .cache import cached_arrays
from .digits import stratified_split

if TYPE_CHECKING:
    from .base import ImageArrays
    from .prepare import Splits

MODES = ("rgb", "gray")


class ImageFolderError(UserError, ValueError):
    """A folder that cannot be used as an image dataset (the message says how to fix it)."""


def image_files(folder: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """``(classes, [(path, label)...])`` of a torchvision-layout folder (torchvision's reader)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    where = f"ImageFolder({folder})"
    if not folder.is_dir():
        raise ImageFolderError(f"{where}: no such folder: give the folder holding one sub-folder per class")
    try:
        classes, class_to_idx = find_classes(str(folder))
        samples = make_dataset(str(folder), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
    except FileNotFoundError:
        classes, samples = [], []
    if not samples:
        raise ImageFolderError(f"{where}: no image files ({', '.join(IMG_EXTENSIONS[:4])}...) in class sub-folders: "
                               "lay it out as <folder>/<class>/<image>.png")
    used = sorted({label for _, label in samples})
    if len(used) < 2:
        only = classes[used[0]] if used else "?"
        raise ImageFolderError(f"{where}: only one class ({only!r}) has images: a classifier needs at least two "
                               "class sub-folders with images")
    return classes, samples


def fingerprint(folder: Path, samples: list[tuple[str, int]]) -> str:
    """SHA-256 of every file's path (relative to ``folder``) and bytes."""
    digest = hashlib.sha256()
    for path, _ in sorted(samples):
        digest.update(Path(path).relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    return digest.hexdigest()


def decode_folder(folder: Path, mode: str, size: Optional[tuple[int, int]]) -> dict[str, np.ndarray]:
    """Every image as uint8 ``N x C x H x W`` (resized to ``size`` when given),
    its label, the class names and the fingerprint."""
    import torch
    from PIL import UnidentifiedImageError
    from torchvision.datasets.folder import default_loader
    from torchvision.transforms.v2.functional import pil_to_tensor, resize

    classes, samples = image_files(folder)
    images = []
    for path, _ in samples:
        try:
            picture = default_loader(path)  # RGB, as torchvision's ImageFolder reads it
            image = pil_to_tensor(picture if mode == "rgb" else picture.convert("L"))
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise ImageFolderError(f"ImageFolder({folder}): cannot decode {path} ({error}): "
                                   "remove or replace that file") from None
        if size is not None:
            image = resize(image, list(size), antialias=True)
        images.append(image)
    shapes = {tuple(image.shape) for image in images}
    if len(shapes) > 1:
        raise ImageFolderError(f"ImageFolder({folder}): images of different sizes ({', '.join(map(str, sorted(shapes)[:3]))}"
                               "...): give size=(height, width) to resize them")
    return {"images": torch.stack(images).numpy(), "labels": np.array([label for _, label in samples], np.int64),
            "classes": np.array(classes), "fingerprint": np.array(fingerprint(folder, samples))}


def load_folder(folder: Path, mode: str, size: Optional[tuple[int, int]]) -> dict[str, np.ndarray]:
    """:func:`decode_folder`, cached beside the folder (rebuilt when a file changes)."""
    folder = Path(folder).expanduser().resolve()
    _, samples = image_files(folder)
    tag = f"{mode}-{'x'.join(map(str, size)) if size else 'native'}"
    return cached_arrays([folder, *[Path(p) for p, _ in samples]], tag, lambda: decode_folder(folder, mode, size))


class ImageFolder(ImageDataset):
    """A split of a folder of images, one sub-folder per class (build it with
    :func:`prepare_image_folder`, which computes ``fingerprint``)."""

    split: Param[str]
    """Which split: "train" or "test" (stratified: ``test_fraction`` of each class)"""

    fingerprint: Param[str]
    """SHA-256 of the folder's files (paths and bytes): the data's identity"""

    folder: Meta[Path]
    """Where the folder is on this machine (not part of the ID: move it freely)"""

    test_fraction: Annotated[Param[float], Range(0, 1, low_open=True)] = field(default=0.2, ignore_default=True)
    """Fraction of each class in the test split"""

    seed: Param[int] = field(default=0, ignore_default=True)
    """Seed of the stratified split"""

    size: Param[Optional[list[int]]] = field(default=None, ignore_default=True)
    """``[height, width]`` the images are resized to (None: all must have the same size)"""

    mode: Param[str] = field(default="rgb", ignore_default=True)
    """``rgb`` (3 channels) or ``gray`` (1 channel)"""

    def __post_init__(self):
        check_split("ImageFolder", self.split)
        if self.mode not in MODES:
            raise ImageFolderError(f"ImageFolder.mode={self.mode!r}: use one of {MODES}")

    def arrays(self) -> "ImageArrays":
        data = load_folder(self.folder, self.mode, tuple(self.size) if self.size else None)
        found = str(data["fingerprint"])
        if found != self.fingerprint:
            raise ImageFolderError(
                f"ImageFolder({self.folder}): its files changed since the plan was made (fingerprint "
                f"{self.fingerprint[:12]}, now {found[:12]}): run the plan again so that the new images "
                "get their own jobs, or restore the files")
        indices = stratified_split(data["labels"], self.test_fraction, self.seed)
        mean, std = channel_stats(data["images"][indices["train"]])
        chosen = indices[self.split]
        return to_image_arrays(data["images"][chosen], data["labels"][chosen], len(data["classes"]), mean, std,
                               classes=tuple(str(c) for c in data["classes"]))


def prepare_image_folder(folder: Path | str, *, size: Optional[tuple[int, int]] = None, mode: str = "rgb",
                         test_fraction: float = 0.2, seed: int = 0) -> "Splits":
    """Check ``folder``, decode it once (cached) and return its train/test
    :class:`ImageFolder` configs. Raises :class:`ImageFolderError` (one line:
    what and how to fix) for a missing, empty, one-class or unreadable folder."""
    from .prepare import Splits

    folder = Path(folder).expanduser().resolve()
    if mode not in MODES:
        raise ImageFolderError(f"prepare_image_folder(mode={mode!r}): use one of {MODES}")
    data = load_folder(folder, mode, tuple(size) if size else None)
    common = dict(fingerprint=str(data["fingerprint"]), folder=folder, test_fraction=test_fraction, seed=seed,
                  size=list(size) if size else None, mode=mode)
    return Splits(train=ImageFolder.C(split="train", **common), test=ImageFolder.C(split="test", **common))
