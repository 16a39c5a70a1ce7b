"""What you need to bring your own dataset, model or objective (docs/extending.md).

Plans import from ``xpm_train``; extensions from here. Every name below is
also what the built-ins use themselves.

Datasets (a ``Dataset`` config whose ``arrays()`` returns :class:`Arrays`)::

    Dataset, ImageDataset          the interfaces (ImageDataset: uint8 images, labels)
    Arrays, ImageArrays            a decoded split (any tensors / images and labels)
    feature_arrays                 float features + targets -> Arrays, normalised
    to_image_arrays, channel_stats uint8 images + labels -> ImageArrays, statistics
    feature_stats                  per-feature mean/std of a float table
    stratified_split, random_split seeded train/test indices
    check_split                    refuse a split name other than train/test
    cached_arrays                  decode raw files once, cache beside them
    empty_arrays                   what ``Dataset.schema()`` returns: shapes and classes, no sample

Models (a ``Model`` config whose ``module(data)`` returns an ``nn.Module``)::

    Model, DataInfo                the interface and what ``module`` receives
    build                          the network of a model config (trained weights attached)

Streaming (``Dataset.records()`` returns a :class:`Source`; docs/streaming.md)::

    Source, Chunk                  what preparation decodes, and one decoded range

Objectives (an ``Objective`` config: loss, metrics, score)::

    Objective, ObjectiveError      the interface and its error

Training adapters (a task implementing ``TrainingTask``; docs/extending.md)::

    TrainingTask                   what Tune, load/export and the launchers ask of a training task
    save_network                   leave the trained network in the job folder (``checkpoints/best.pt``)
    Trial                          the type of its ``trial`` Meta (set by Tune): ``should_prune``
    RanksSpecError                 what ``check_ranks`` raises for a number of ranks it cannot run on
"""

from .data.arrays import channel_stats, to_image_arrays
from .data.base import Arrays, DataInfo, Dataset, ImageArrays, ImageDataset, empty_arrays
from .data.cache import cached_arrays
from .data.prepared import Chunk, Source
from .data.splits import check_split, random_split, stratified_split
from .data.tabular import feature_arrays, feature_stats
from .hooks import Trial
from .models import Model, build
from .objectives import Objective, ObjectiveError
from .trained import save_network
from .training import TrainingTask

__all__ = [
    "Arrays",
    "Chunk",
    "DataInfo",
    "Dataset",
    "ImageArrays",
    "ImageDataset",
    "Model",
    "Objective",
    "ObjectiveError",
    "RanksSpecError",
    "Source",
    "TrainingTask",
    "Trial",
    "build",
    "cached_arrays",
    "channel_stats",
    "check_split",
    "empty_arrays",
    "feature_arrays",
    "feature_stats",
    "random_split",
    "save_network",
    "stratified_split",
    "to_image_arrays",
]


def __getattr__(name: str):
    """``RanksSpecError`` is imported when asked for: the launchers package is
    not on a job's start-up path."""
    if name == "RanksSpecError":
        from .launchers.ranks import RanksSpecError

        return RanksSpecError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
