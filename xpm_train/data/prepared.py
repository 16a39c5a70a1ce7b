"""The prepared on-disk format: a split decoded once into fixed-size records.

Streaming (:mod:`xpm_train.data.stream`) reads batches from files that hold
the decoded samples as fixed-size records, so that sample ``i`` is one
``pread`` at ``i * record_bytes``. A *prepared folder* holds::

    inputs.npy    N x ... uint8 (or float32) records, numpy's .npy format
    targets.npy   N int64 labels (or N x ... float32 values)
    header.json   count, shapes, dtypes, classes, statistics, the source's
                  identity and the options, the size of both files and the
                  SHA-256 of every chunk: written LAST, it is the commit point

Caching rule (content addressing): a prepared folder lives at
``<root>/<key>`` where ``key`` is the SHA-256 of :data:`FORMAT_VERSION`, the
source's identity (for an :class:`~xpm_train.data.ImageFolder`, the
fingerprint of its files' bytes with its ``mode`` and ``size``; for any other
dataset, its experimaestro ID) and the preparation options. ``root`` is
``$XPM_TRAIN_PREPARED``, else ``<datamaestro data folder>/xpm-train/prepared``
(:func:`prepared_root`). Every job of every experiment that streams the same
source with the same options reads the same folder; the train and test
splits of one image folder share it (a split is a list of indices into it).
A folder without ``header.json`` is never read: it is a preparation under
way (or killed), which the next preparer resumes.

Preparation (:mod:`xpm_train.data.preparation`) writes a folder; this module
owns its format and reading: the key, the header, :class:`Source` (what a
preparation decodes, with :class:`ArraysSource` for any dataset) and
:func:`verify`. Opening checks the header and the files' sizes, so a
truncated file is refused with its name instead of being read.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import UserError

FORMAT_VERSION = 1
"""Bump when the format or the decoding changes: every key changes with it"""

HEADER = "header.json"
"""A prepared folder's commit point (a prepared folder is no job folder)"""


class PreparedDataError(UserError, ValueError):
    """A source that cannot be prepared, or a prepared folder that cannot be
    read (the message names the file and says how to fix it)."""


def prepared_root() -> Path:
    """Where prepared folders live: ``$XPM_TRAIN_PREPARED``, else
    ``<datamaestro data folder>/xpm-train/prepared`` (read at call time)."""
    from .sources import default_data_root

    configured = os.environ.get("XPM_TRAIN_PREPARED")
    return Path(configured).expanduser() if configured else default_data_root() / "prepared"


@dataclass
class Chunk:
    """What a source decodes for records ``[start, stop)``."""

    inputs: np.ndarray
    """``stop - start`` records, of the source's ``shape`` and ``dtype``"""

    targets: np.ndarray
    """Their targets"""

    check: dict[str, Any] = field(default_factory=dict)
    """What the source wants to verify once every chunk is decoded (e.g. the
    digests and stats of the files read), kept in the chunk's commit"""


class Source:
    """What preparation decodes (interface: :meth:`Dataset.records` returns one).

    A source describes its records without decoding them (``count``,
    ``shape``...), decodes any range of them (:meth:`decode`, called in a
    worker process forked from the preparer when ``parallel``), and
    says, once prepared, which records make the split and its statistics
    (:meth:`view`)."""

    count: int
    shape: tuple[int, ...]
    dtype: str  # "uint8" or "float32"
    target_shape: tuple[int, ...]
    target_dtype: str  # "int64" or "float32"
    num_classes: Optional[int]
    classes: Optional[tuple[str, ...]]
    parallel: bool = False

    def identity(self) -> dict[str, Any]:
        """What the records are a pure function of (part of the key)."""
        raise NotImplementedError

    def where(self) -> str:
        """The source, for messages."""
        raise NotImplementedError

    def decode(self, start: int, stop: int) -> Chunk:
        raise NotImplementedError

    def fresh(self, check: dict[str, Any]) -> bool:
        """Whether a chunk committed by an earlier (killed) preparation still
        holds what the source would decode (its files did not change)."""
        return True

    def verify(self, checks: list[dict[str, Any]]) -> dict[str, Any]:
        """Called with every chunk's ``check`` once all are decoded: raise when
        the source changed meanwhile; returns what goes into the header."""
        return {}

    def view(self, prepared: "Prepared") -> tuple[np.ndarray, tuple[float, ...], tuple[float, ...]]:
        """``(indices, mean, std)``: the records of the split and its statistics."""
        raise NotImplementedError

    def nbytes(self) -> int:
        """Size of the decoded split (the streaming decision compares it with the budget)."""
        return self.count * int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


def key_of(source: Source, options: dict[str, Any]) -> str:
    """The content address of ``source`` prepared with ``options``."""
    text = json.dumps({"version": FORMAT_VERSION, "source": source.identity(), "options": options}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Prepared:
    """An opened, complete prepared folder."""

    folder: Path
    header: dict[str, Any]

    @property
    def count(self) -> int:
        return int(self.header["count"])

    @property
    def record_bytes(self) -> int:
        return int(np.prod(self.header["shape"], dtype=np.int64)) * np.dtype(self.header["dtype"]).itemsize

    @property
    def inputs_path(self) -> Path:
        return self.folder / "inputs.npy"

    def inputs(self) -> np.ndarray:
        """The records as a read-only memory map (nothing is read until used)."""
        return np.load(self.inputs_path, mmap_mode="r")

    def targets(self) -> np.ndarray:
        """All targets, in memory (small: one label per record)."""
        return np.load(self.folder / "targets.npy")

    def inputs_offset(self) -> int:
        """Byte offset of record 0 in ``inputs.npy`` (after the .npy header)."""
        return int(self.header["files"]["inputs.npy"]) - self.count * self.record_bytes


def open_prepared(folder: Path) -> Prepared:
    """The prepared folder ``folder``; :class:`PreparedDataError` naming the
    file when it is incomplete or truncated."""
    folder = Path(folder)
    header_path = folder / HEADER
    try:
        header = json.loads(header_path.read_text())
    except FileNotFoundError:
        raise PreparedDataError(f"{header_path}: no such file: {folder} is not a finished preparation "
                                "(prepare it again: xpm_train.data.preparation.prepare)") from None
    except (OSError, ValueError) as error:
        raise PreparedDataError(f"{header_path}: unreadable ({error}): delete {folder} and prepare it again") from None
    for name, size in header["files"].items():
        path = folder / name
        found = path.stat().st_size if path.exists() else None
        if found != size:
            raise PreparedDataError(
                f"{path}: {'missing' if found is None else f'{found} bytes'} instead of {size} (a truncated "
                f"copy or a crash of the disk): delete {folder} and prepare it again")
    return Prepared(folder, header)


def records_digest(inputs: np.ndarray, targets: np.ndarray) -> str:
    """The SHA-256 of records and their targets: a chunk's, as its commit and the header keep it."""
    digest = hashlib.sha256(np.ascontiguousarray(inputs).data)
    digest.update(np.ascontiguousarray(targets).data)
    return digest.hexdigest()


def verify(prepared: Prepared) -> None:
    """Re-hash every chunk against the header (a full read): raise
    :class:`PreparedDataError` naming the file at the first mismatch."""
    inputs, targets = prepared.inputs(), prepared.targets()
    step = prepared.header["chunk_records"]
    for number, expected in enumerate(prepared.header["chunks"]):
        part = slice(number * step, (number + 1) * step)
        if records_digest(inputs[part], targets[part]) != expected:
            raise PreparedDataError(f"{prepared.inputs_path}: records {part.start}-{part.stop} differ from what "
                                    f"was prepared: delete {prepared.folder} and prepare it again")


class ArraysSource(Source):
    """Any dataset, prepared from its :meth:`~xpm_train.data.Dataset.arrays`
    (decoded in memory once, when preparing) and keyed by its config's ID."""

    def __init__(self, dataset):
        self.dataset = dataset
        self._arrays = None

    @property
    def arrays(self):
        if self._arrays is None:
            self._arrays = self.dataset.arrays()
        return self._arrays

    def __getattr__(self, name):
        # count, shape... are known once the arrays are loaded (when preparing)
        if name in ("count", "shape", "dtype", "target_shape", "target_dtype", "num_classes", "classes"):
            arrays = self.arrays
            return {"count": len(arrays), "shape": arrays.shape, "target_shape": arrays.target_shape,
                    "dtype": str(arrays.inputs.dtype).removeprefix("torch."),
                    "target_dtype": str(arrays.targets.dtype).removeprefix("torch."),
                    "num_classes": arrays.num_classes, "classes": arrays.classes}[name]
        raise AttributeError(name)

    def identity(self) -> dict[str, Any]:
        return {"kind": "config", "id": config_id(self.dataset)}

    def where(self) -> str:
        from ..errors import config_name

        return f"{config_name(self.dataset)} ({config_id(self.dataset)[:12]})"

    def nbytes(self) -> Optional[int]:
        return None  # unknown without loading the arrays

    def decode(self, start: int, stop: int) -> Chunk:
        return Chunk(self.arrays.inputs[start:stop].numpy(), self.arrays.targets[start:stop].numpy())

    def verify(self, checks):
        return {"mean": list(self.arrays.mean), "std": list(self.arrays.std)}

    def view(self, prepared: Prepared):
        return np.arange(prepared.count), tuple(prepared.header["mean"]), tuple(prepared.header["std"])


def config_id(config) -> str:
    """The experimaestro ID of a config, or of the instance a task holds."""
    loaded = getattr(config, "__xpmidentifier__", None)  # an instance loaded in a task process
    if loaded is not None:
        return loaded.all.hex()
    return getattr(config, "xpmconfig", config).__identifier__().all.hex()
