"""JobLogger: a Lightning ``Logger`` writing into the job folder.

Every ``self.log(...)`` of a LightningModule ends up in ``metrics.jsonl``
through xpm-train's :class:`~xpm_train.metrics.MetricsLogger` (then in MLflow
through its sinks), as Learn's metrics do. A metric keeps its Lightning name:
``val_accuracy`` is written as ``{"split": "val", "accuracy": ...}`` and is
``val_accuracy`` again in MLflow; a name without a ``train_``/``val_``/
``test_`` prefix is written with an empty split.

This module imports Lightning: only the Lightning task process imports it.
"""

from __future__ import annotations

from typing import Any, Optional

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from ..metrics import MetricsLogger

SPLITS = ("train", "val", "test")


def split_name(key: str) -> tuple[str, str]:
    """``val_accuracy`` -> ``("val", "accuracy")``; ``lr-Adam`` -> ``("", "lr-Adam")``."""
    head, sep, rest = key.partition("_")
    return (head, rest) if sep and rest and head in SPLITS else ("", key)


def points(metrics: dict[str, float], step: int) -> list[dict[str, Any]]:
    """One ``{epoch, step, split, **values}`` point per split of a
    ``log_metrics`` call (Lightning adds the ``epoch`` key)."""
    values = dict(metrics)
    epoch = int(values.pop("epoch", -1))
    grouped: dict[str, dict[str, float]] = {}
    for key, value in values.items():
        split, name = split_name(key)
        grouped.setdefault(split, {})[name] = float(value)
    return [{"epoch": epoch, "step": step, "split": split, **named} for split, named in grouped.items()]


class JobLogger(Logger):
    """Lightning's metrics into ``metrics.jsonl`` (and the tracking sinks)."""

    def __init__(self, log: MetricsLogger):
        super().__init__()
        self.log = log

    @property
    def name(self) -> str:
        return "xpm-train"

    @property
    def version(self) -> str:
        return "job"

    @property
    def save_dir(self) -> Optional[str]:
        return None

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        """The module's ``hparams`` as a ``hyperparameters`` event (the job's
        Params are in ``params.json`` already)."""
        items = vars(params) if hasattr(params, "__dict__") and not isinstance(params, dict) else dict(params)
        self.log.event("hyperparameters", **{k: v if isinstance(v, (int, float, str, bool)) or v is None else repr(v)
                                             for k, v in items.items()})

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: Optional[int] = None) -> None:
        for point in points(metrics, step if step is not None else -1):
            self.log.log(**point)

    @rank_zero_only
    def save(self) -> None:
        self.log.sync()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.log.sync()
