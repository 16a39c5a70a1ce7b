"""Streaming: batches read from a prepared folder instead of a split in memory.

Learn and Evaluate hold a split in memory (then on the device) when it fits
the memory budget, and stream it otherwise (:func:`open_split` decides and
says why; ``Streaming.mode`` forces either). Streaming reads the prepared
records of :mod:`xpm_train.data.prepared` (prepared first when missing):

* the sample order is the in-memory path's (:mod:`xpm_train.sampler`:
  depends only on ``(seed, epoch)``; each rank reads its shard), and batch
  ``b`` of an epoch is read only when it is trained on: a run resumed at
  batch ``b`` starts reading there;
* reader threads (or torch ``DataLoader`` worker processes, on request)
  read whole batches ahead, one ``pread`` per record (the page cache, not
  the job, holds the file, so the job's memory does not grow with the data),
  into pinned memory when the device is a GPU;
* normalisation and augmentation run on the device, as in memory
  (:class:`xpm_train.pipeline.Normalize`): a batch's values are the very
  ones of the in-memory path, so the weights are too (on CPU, bitwise).

``Streaming`` is a ``Meta`` of Learn and Evaluate: it never changes results,
hence never an ID.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Iterator, Optional

import numpy as np
from experimaestro import Config, Param, field

from ..checks import NonNegative, Positive, Range
from .preparation import prepare
from .prepared import Prepared, PreparedDataError, Source

if TYPE_CHECKING:
    import torch

    from .base import Arrays, Dataset

logger = logging.getLogger("xpm_train.stream")

MODES = ("auto", "always", "never")


class Streaming(Config):
    """When and how Learn and Evaluate stream their data (a ``Meta``: no result depends on it)."""

    mode: Param[str] = field(default="auto", ignore_default=True)
    """``auto`` (stream when the split is larger than the budget), ``always``, ``never``"""

    memory_fraction: Annotated[Param[float], Range(0, 1, low_open=True)] = field(default=0.5, ignore_default=True)
    """Budget of ``auto``: this share of the memory available when the job starts"""

    memory_budget: Param[Optional[int]] = field(default=None, ignore_default=True)
    """Budget of ``auto`` in bytes (replaces ``memory_fraction``)"""

    workers: Annotated[Param[int], NonNegative()] = field(default=2, ignore_default=True)
    """Readers of batches: threads of the job's process (0: read in its main thread)"""

    processes: Param[bool] = field(default=False, ignore_default=True)
    """Read with ``workers`` torch DataLoader worker processes instead of
    threads (for a costly per-batch step; ``pread`` frees the GIL, so threads
    read as fast and spare the processes' start-up and copies)"""

    prefetch: Annotated[Param[int], Positive()] = field(default=4, ignore_default=True)
    """Batches each reader reads ahead"""

    prepare_workers: Annotated[Param[int], NonNegative()] = field(default=0, ignore_default=True)
    """Processes decoding a missing preparation (0: one per CPU)"""

    root: Param[Optional[Path]] = field(default=None, ignore_default=True)
    """Folder of the prepared folders (None: :func:`xpm_train.data.prepared.prepared_root`)"""

    def __post_init__(self):
        if self.mode not in MODES:
            raise PreparedDataError(f"Streaming.mode={self.mode!r}: use one of {MODES}")


def available_memory() -> int:
    """Bytes of memory available to a new allocation (``MemAvailable``)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def decide(source: Source, streaming: Streaming) -> tuple[bool, str]:
    """``(stream?, why)`` for ``source`` under ``streaming``."""
    if streaming.mode != "auto":
        return streaming.mode == "always", f"Streaming.mode={streaming.mode!r}"
    size = source.nbytes()
    if size is None:
        return False, "its size is not known before loading it (Streaming.mode='always' streams it)"
    if streaming.memory_budget is not None:
        budget, what = streaming.memory_budget, "Streaming.memory_budget"
    else:
        budget = int(streaming.memory_fraction * available_memory())
        what = f"{streaming.memory_fraction:g} of the available memory"
    verdict = ">" if size > budget else "<="
    return size > budget, f"{size / 1e9:.3f} GB {verdict} {budget / 1e9:.3f} GB ({what})"


class StreamedSplit:
    """A prepared split: its records, which of them make the split, its statistics."""

    def __init__(self, prepared: Prepared, indices: np.ndarray, mean: tuple, std: tuple, streaming: Streaming):
        self.prepared, self.indices = prepared, np.asarray(indices, dtype=np.int64)
        self.mean, self.std, self.streaming = tuple(mean), tuple(std), streaming

    def __len__(self) -> int:
        return len(self.indices)

    def schema(self) -> "Arrays":
        """An empty :class:`~xpm_train.data.Arrays` of the split's kind (what
        objectives and ``data.json`` read: shapes, dtypes, classes, statistics)."""
        import torch

        from .base import Arrays

        header = self.prepared.header
        classes = tuple(header["classes"]) if header["classes"] is not None else None
        return Arrays(inputs=torch.empty((0, *header["shape"]), dtype=getattr(torch, header["dtype"])),
                      targets=torch.empty((0, *header["target_shape"]), dtype=getattr(torch, header["target_dtype"])),
                      num_classes=header["num_classes"], mean=self.mean, std=self.std, classes=classes)

    def data(self, positions: "torch.Tensor | None", device: "torch.device", channels_last: bool = False) -> "StreamData":
        """The batches of the split's samples ``positions`` (None: all), read on ``device``."""
        indices = self.indices if positions is None else self.indices[positions.numpy()]
        return StreamData(self, indices, device, channels_last)


PREPARED_KEY = "prepared"
"""Key of the job's event (Learn's ``start``/``resume``, Evaluate's ``data``)
naming the prepared folder it streams from: what ``xpm-train gc`` keeps"""


def open_split(dataset: "Dataset", streaming: Optional[Streaming]) -> tuple[Optional[StreamedSplit], str]:
    """``(split, why)``: the prepared split when ``dataset`` streams (prepared
    now when missing), None when it is held in memory."""
    streaming = streaming if streaming is not None else Streaming.C()
    if streaming.mode == "never":
        return None, "Streaming.mode='never'"
    source = dataset.records()
    stream, why = decide(source, streaming)
    if not stream:
        return None, why
    prepared, report = prepare(source, root=streaming.root, workers=streaming.prepare_workers)
    done = "prepared before" if report["reused"] else f"{len(report['decoded'])} chunk(s) decoded now"
    why = f"{why}; records in {prepared.folder} ({done})"
    logger.info("Streaming %s: %s", source.where(), why)
    indices, mean, std = source.view(prepared)
    return StreamedSplit(prepared, indices, mean, std, streaming), why


def prepare_for_streaming(dataset: "Dataset", streaming: Optional[Streaming] = None) -> Path:
    """Prepare the records of ``dataset`` (a config) now, and return their
    folder: call it in a plan before submitting the jobs that stream it (e.g.
    to Slurm), so that they find it ready instead of one of them preparing it
    while the others wait."""
    streaming = streaming if streaming is not None else Streaming.C()
    instance = dataset.instance() if hasattr(dataset, "__xpm__") else dataset
    prepared, report = prepare(instance.records(), root=streaming.root, workers=streaming.prepare_workers)
    logger.info("Records of %s in %s (%s)", type(instance).__name__.split(".")[0], prepared.folder, "prepared before" if report["reused"] else "prepared now")
    return prepared.folder


class BatchReader:
    """A map-style dataset of whole batches: ``reader[indices]`` reads those
    records (in that order) with one ``pread`` each, and their targets."""

    def __init__(self, prepared: Prepared):
        header = prepared.header
        self.path, self.offset, self.record = str(prepared.inputs_path), prepared.inputs_offset(), prepared.record_bytes
        self.shape, self.dtype = tuple(header["shape"]), np.dtype(header["dtype"])
        self.targets = prepared.targets()
        self._fd, self._pid = None, None

    def _file(self) -> int:
        if self._pid != os.getpid():  # a DataLoader worker: its own descriptor
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def __getitem__(self, indices) -> tuple["torch.Tensor", "torch.Tensor"]:
        import torch

        indices = np.asarray(indices, dtype=np.int64)
        fd, record, offset = self._file(), self.record, self.offset
        buffer = np.empty((len(indices), record), dtype=np.uint8)
        for row, index in zip(buffer, indices.tolist()):
            if os.preadv(fd, [row], offset + index * record) != record:
                raise PreparedDataError(f"{self.path}: record {index} is cut short (the file was truncated "
                                        "after it was prepared): delete its folder and prepare it again")
        inputs = buffer.view(self.dtype).reshape(len(indices), *self.shape)
        return torch.from_numpy(inputs), torch.from_numpy(self.targets[indices])

    def __getstate__(self):
        return {**self.__dict__, "_fd": None, "_pid": None}


class StreamData:
    """A streamed split with the interface of :class:`xpm_train.pipeline.DeviceData`
    (``batches``, ``normalize``, ``unnormalize``, ``device``, ``len``)."""

    resident = False

    def __init__(self, split: StreamedSplit, indices: np.ndarray, device: "torch.device", channels_last: bool = False):
        from ..pipeline import Normalize

        self.split, self.indices, self.device = split, torch_long(indices), device
        self.reader = BatchReader(split.prepared)
        header = split.prepared.header
        self.norm = Normalize(split.mean, split.std, header["dtype"] == "uint8", len(header["shape"]) + 1,
                              device, channels_last)

    def __len__(self) -> int:
        return len(self.indices)

    def normalize(self, inputs: "torch.Tensor") -> "torch.Tensor":
        return self.norm(inputs)

    def unnormalize(self, inputs: "torch.Tensor") -> "torch.Tensor":
        return self.norm.undo(inputs)

    def batches(self, batch_size: int, order: "torch.Tensor | None" = None, start: int = 0,
                rank: int = 0, world: int = 1) -> Iterator[tuple["torch.Tensor", "torch.Tensor"]]:
        """Normalised ``(inputs, targets)`` batches, as :meth:`DeviceData.batches`
        gives them: the same samples in the same order, read from disk."""
        import torch

        from ..sampler import shard_batches

        order = order if order is not None else torch.arange(len(self))
        plan = [self.indices[batch] for batch in shard_batches(order, batch_size, start, rank, world)]
        streaming = self.split.streaming
        workers = min(streaming.workers, len(plan))
        pin = self.device.type == "cuda"
        if streaming.processes and workers:
            read = torch.utils.data.DataLoader(
                self.reader, sampler=plan, batch_size=None, num_workers=workers, pin_memory=pin,
                prefetch_factor=streaming.prefetch, multiprocessing_context="fork")
        else:
            read = read_ahead(self.reader, plan, workers, streaming.prefetch * max(workers, 1), pin)
        for inputs, targets in read:
            yield self.normalize(inputs), targets.to(self.device, non_blocking=True)


def read_ahead(reader: BatchReader, plan: list, threads: int, ahead: int, pin: bool) -> Iterator:
    """``reader[batch]`` for each batch of ``plan``, in order, read by ``threads``
    threads up to ``ahead`` batches in advance (0 threads: read when asked)."""
    def read(batch):
        inputs, targets = reader[batch]
        return (inputs.pin_memory(), targets.pin_memory()) if pin else (inputs, targets)

    if threads == 0:
        yield from map(read, plan)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads, thread_name_prefix="xpm-stream") as pool:
        pending = deque()
        try:
            for batch in plan:
                pending.append(pool.submit(read, batch))
                if len(pending) > ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:  # a loop left early (preemption, error): read nothing more
                future.cancel()


def torch_long(indices: np.ndarray) -> "torch.Tensor":
    import torch

    return torch.from_numpy(np.ascontiguousarray(indices, dtype=np.int64))
