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

The channels follow the images unless ``mode=`` says otherwise: a folder
whose images are all greyscale (PIL modes ``1``, ``L``, ``LA``, ``I``,
``I;16``..., ``F``) is read with 1 channel (``mode="gray"``), a folder with
any colour image (``RGB``, ``RGBA``, ``P``, ``CMYK``...) with 3
(``mode="rgb"``: its greyscale images are repeated on the 3 channels, as
torchvision reads them). Palette (``P``) images count as colour even when
their palette is grey. ``mode="rgb"`` or ``mode="gray"`` forces the choice.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import numpy as np
from experimaestro import Meta, Param, field

from ..checks import Range
from ..errors import UserError
from ..atomic import atomic_write_bytes
from .arrays import channel_counts, channel_stats, stats_from_counts, to_image_arrays
from .base import ImageDataset
from .cache import cached_arrays
from .prepared import Chunk, Prepared, Source
from .splits import check_split, splits_of, stratified_split

if TYPE_CHECKING:
    import torch

    from .base import ImageArrays
    from .splits import Splits

MODES = ("rgb", "gray")
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
"""PIL modes of greyscale images (read with 1 channel when all of a folder's images have one)"""


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
    return combine_digests(folder, [(path, hashlib.sha256(Path(path).read_bytes()).digest()) for path, _ in samples])


def combine_digests(folder: Path, digests: list[tuple[str, bytes]]) -> str:
    """The fingerprint, from each file's path and SHA-256 digest (in any order)."""
    digest = hashlib.sha256()
    for path, file_digest in sorted(digests):
        digest.update(Path(path).relative_to(folder).as_posix().encode() + b"\0")
        digest.update(file_digest)
    return digest.hexdigest()


def detect_mode(folder: Path, samples: list[tuple[str, int]]) -> str:
    """``"gray"`` when every image of ``samples`` is greyscale (:data:`GRAY_MODES`),
    else ``"rgb"`` (reads only each file's header)."""
    from PIL import Image, UnidentifiedImageError

    for path, _ in samples:
        try:
            with Image.open(path) as picture:
                if picture.mode not in GRAY_MODES:
                    return "rgb"
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise ImageFolderError(f"ImageFolder({folder}): cannot decode {path} ({error}): "
                                   "remove or replace that file") from None
    return "gray"


def decode_image(folder: Path, path: str, mode: str, size: Optional[tuple[int, int]],
                 raw: Optional[bytes] = None) -> "torch.Tensor":
    """One image as a uint8 ``C x H x W`` tensor, read as torchvision's
    ImageFolder reads it (PIL, RGB; then grey when ``mode="gray"``), resized
    when ``size`` is given; ``raw``: its bytes, when already read."""
    import io

    from PIL import Image, UnidentifiedImageError
    from torchvision.datasets.folder import default_loader
    from torchvision.transforms.v2.functional import pil_to_tensor, resize

    try:
        picture = default_loader(path) if raw is None else Image.open(io.BytesIO(raw)).convert("RGB")
        image = pil_to_tensor(picture if mode == "rgb" else picture.convert("L"))
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ImageFolderError(f"ImageFolder({folder}): cannot decode {path} ({error}): "
                               "remove or replace that file") from None
    return resize(image, list(size), antialias=True) if size is not None else image


def decode_folder(folder: Path, mode: str, size: Optional[tuple[int, int]]) -> dict[str, np.ndarray]:
    """Every image as uint8 ``N x C x H x W`` (resized to ``size`` when given),
    its label, the class names and the fingerprint."""
    import torch

    classes, samples = image_files(folder)
    images = [decode_image(folder, path, mode, size) for path, _ in samples]
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
    """``rgb`` (3 channels) or ``gray`` (1 channel); :func:`prepare_image_folder`
    sets it from the images (all greyscale: ``gray``)"""

    def __post_init__(self):
        check_split("ImageFolder", self.split)
        if self.mode not in MODES:
            raise ImageFolderError(f"ImageFolder.mode={self.mode!r}: use one of {MODES}")

    def records(self) -> "FolderRecords":
        """Every image of the folder, decoded chunk by chunk in parallel (the
        train and test splits share one preparation)."""
        return FolderRecords(self)

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


def changed_files(files: list) -> list[str]:
    """The paths of ``[path, size, mtime_ns, sha256]`` entries whose file changed (or went)."""
    changed = []
    for path, size, mtime, _ in files:
        try:
            stat = os.stat(path)
        except OSError:
            changed.append(path)
            continue
        if (stat.st_size, stat.st_mtime_ns) != (size, mtime):
            changed.append(path)
    return changed


class FolderRecords(Source):
    """The records of an :class:`ImageFolder` for :mod:`xpm_train.data.prepared`:
    every image of the folder, in torchvision's order, keyed by the planned
    fingerprint with ``mode`` and ``size``. Each chunk hashes the bytes it
    decodes; once all are decoded the files' sizes and times are checked
    again (a file changed during the preparation is named) and the digests
    must give the planned fingerprint."""

    parallel = True

    def __init__(self, config: ImageFolder):
        self.folder = Path(config.folder).expanduser().resolve()
        self.fingerprint, self.mode = config.fingerprint, config.mode
        self.size = tuple(config.size) if config.size else None
        self.split, self.test_fraction, self.seed = config.split, config.test_fraction, config.seed
        classes, samples = image_files(self.folder)
        self.samples = [path for path, _ in samples]
        self.labels = np.array([label for _, label in samples], np.int64)
        self.count, self.classes, self.num_classes = len(samples), tuple(classes), len(classes)
        first = decode_image(self.folder, self.samples[0], self.mode, self.size)
        self.shape, self.dtype = tuple(first.shape), "uint8"
        self.target_shape, self.target_dtype = (), "int64"

    def identity(self):
        return {"kind": "image-folder", "fingerprint": self.fingerprint, "mode": self.mode,
                "size": list(self.size) if self.size else None}

    def where(self) -> str:
        return f"ImageFolder({self.folder})"

    def decode(self, start: int, stop: int) -> Chunk:
        images, files = [], []
        for path in self.samples[start:stop]:
            try:
                with open(path, "rb") as stream:
                    stat, raw = os.fstat(stream.fileno()), stream.read()
            except OSError as error:
                raise ImageFolderError(f"{self.where()}: cannot read {path} ({error}): the folder changed "
                                       "since the plan was made: run the plan again") from None
            image = decode_image(self.folder, path, self.mode, self.size, raw)
            if tuple(image.shape) != self.shape:
                raise ImageFolderError(f"{self.where()}: {path} is {tuple(image.shape)}, not {self.shape} like "
                                       "the others: give size=(height, width) to resize them")
            images.append(image.numpy())
            files.append([path, stat.st_size, stat.st_mtime_ns, hashlib.sha256(raw).hexdigest()])
        return Chunk(np.stack(images), self.labels[start:stop], {"files": files})

    def fresh(self, check) -> bool:
        return not changed_files(check["files"])

    def verify(self, checks):
        files = [entry for check in checks for entry in check["files"]]
        changed = changed_files(files)
        if changed:
            raise ImageFolderError(
                f"{self.where()}: {len(changed)} file(s) changed while the folder was being prepared "
                f"({', '.join(changed[:3])}{'...' if len(changed) > 3 else ''}): nothing was committed; "
                "leave the folder alone, run the plan again (the new files get new jobs)")
        found = combine_digests(self.folder, [(path, bytes.fromhex(digest)) for path, _, _, digest in files])
        if found != self.fingerprint:
            raise ImageFolderError(
                f"{self.where()}: its files changed since the plan was made (fingerprint {self.fingerprint[:12]}, "
                f"now {found[:12]}): run the plan again so that the new images get their own jobs")
        return {}

    def nbytes(self) -> int:
        split = stratified_split(self.labels, self.test_fraction, self.seed)[self.split]
        return len(split) * math.prod(self.shape)

    def view(self, prepared: Prepared):
        """The split's records and the train part's statistics (computed once
        per split options, kept beside the records)."""
        indices = stratified_split(prepared.targets(), self.test_fraction, self.seed)
        stats_path = prepared.folder / f"stats-{self.test_fraction!r}-{self.seed}.json"
        if stats_path.exists():
            stats = json.loads(stats_path.read_text())
        else:
            inputs, counts = prepared.inputs(), 0
            train = np.sort(indices["train"])
            for begin in range(0, len(train), 4096):
                counts = counts + channel_counts(inputs[train[begin:begin + 4096]])
            mean, std = stats_from_counts(counts)
            stats = {"mean": list(mean), "std": list(std)}
            atomic_write_bytes(stats_path, json.dumps(stats).encode())
        return indices[self.split], tuple(stats["mean"]), tuple(stats["std"])


def prepare_image_folder(folder: Path | str, *, size: Optional[tuple[int, int]] = None, mode: Optional[str] = None,
                         test_fraction: float = 0.2, seed: int = 0, decode: bool = True) -> "Splits":
    """Check ``folder``, decode it once (cached) and return its train/test
    :class:`ImageFolder` configs. Raises :class:`ImageFolderError` (one line:
    what and how to fix) for a missing, empty, one-class or unreadable folder.

    ``decode=False``: only hash the files (the fingerprint), for a folder too
    large for memory that Learn streams (:mod:`xpm_train.data.stream`); its
    images are then decoded when preparing its records.

    ``mode``: ``"gray"`` (1 channel) or ``"rgb"`` (3 channels); None (the
    default) follows the images: ``"gray"`` when all are greyscale, ``"rgb"``
    as soon as one has colour (see the module's docstring)."""
    folder = Path(folder).expanduser().resolve()
    if mode is None:
        mode = detect_mode(folder, image_files(folder)[1])
    if mode not in MODES:
        raise ImageFolderError(f"prepare_image_folder(mode={mode!r}): use one of {MODES} (or None: follow the images)")
    if decode:
        found = str(load_folder(folder, mode, tuple(size) if size else None)["fingerprint"])
    else:
        found = fingerprint(folder, image_files(folder)[1])
    common = dict(fingerprint=found, folder=folder, test_fraction=test_fraction, seed=seed,
                  size=list(size) if size else None, mode=mode)
    return splits_of(ImageFolder, **common)
