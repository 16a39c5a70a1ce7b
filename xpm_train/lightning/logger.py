"""JobLogger: a Lightning ``Logger`` writing into the job folder.

Every ``self.log(...)`` of a LightningModule ends up in ``metrics.jsonl``
through xpm-train's :class:`~xpm_train.metrics.MetricsLogger` (then in MLflow
through its sinks), as Learn's metrics do. A metric keeps its Lightning name:
``val_accuracy`` is written as ``{"split": "val", "accuracy": ...}`` and is
``val_accuracy`` again in MLflow; a name without a ``train_``/``val_``/
``test_`` prefix is written with an empty split.

Every point carries the epoch and the global step of the training: those of
a validation step (Lightning gives the index of the batch in the validation
run instead, and no epoch) are the trainer's, so they stay right after a resume.

``self.logger.experiment`` (what a module writes to besides ``self.log``) is
a :class:`JobExperiment`: scalars into the same ``metrics.jsonl``, at the
trainer's epoch and step, with the method names of MLflow's client and
TensorBoard's ``SummaryWriter`` that log scalars (``log_metric``,
``log_metrics``, ``add_scalar``, ``add_scalars``); anything else (images,
artifacts) is refused with how to get it: a logger of your own
(``LightningFit(loggers=[...])``, then ``self.loggers[1].experiment``).

This module imports Lightning: only the Lightning task process imports it.
"""

from __future__ import annotations

from typing import Any, Optional

from lightning.pytorch.loggers import Logger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from ..jobfolder import METRICS
from ..metrics import MetricsLogger

SPLITS = ("train", "val", "test")


def split_name(key: str) -> tuple[str, str]:
    """``val_accuracy`` -> ``("val", "accuracy")``; ``lr-Adam`` -> ``("", "lr-Adam")``."""
    head, sep, rest = key.partition("_")
    return (head, rest) if sep and rest and head in SPLITS else ("", key)


def points(metrics: dict[str, float], step: int, epoch: int = -1) -> list[dict[str, Any]]:
    """One ``{epoch, step, split, **values}`` point per split of a
    ``log_metrics`` call (Lightning adds the ``epoch`` key, else ``epoch``)."""
    values = dict(metrics)
    epoch = int(values.pop("epoch", epoch))
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
        self.trainer = None
        """Set by the task once the Trainer is built: the epoch and step of points logged without them"""

    def position(self) -> tuple[int, int]:
        """The trainer's (epoch, global step); (-1, -1) before it is attached."""
        if self.trainer is None:
            return -1, -1
        return self.trainer.current_epoch, self.trainer.global_step

    @property
    @rank_zero_experiment
    def experiment(self) -> "JobExperiment":
        """What ``self.logger.experiment`` is: see :class:`JobExperiment`."""
        return JobExperiment(self)

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
        epoch, global_step = self.position()
        if "epoch" not in metrics or step is None:
            # A validation/test step (step: the batch's index in that run) or a
            # ``step`` the module logged: the trainer's epoch and global step
            step = global_step
        for point in points(metrics, step, epoch):
            self.log.log(**point)

    @rank_zero_only
    def save(self) -> None:
        self.log.sync()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.log.sync()


class JobExperiment:
    """``self.logger.experiment`` under LightningFit: scalars written into the
    job's ``metrics.jsonl`` (and the tracking sinks, e.g. MLflow) like
    ``self.log``, at the trainer's epoch and global step unless ``step`` is
    given; a name keeps its meaning (``val_f1`` is split ``val``). Only
    scalars: anything else is refused, saying how to get it."""

    def __init__(self, logger: JobLogger):
        self.logger = logger

    def log_metrics(self, metrics: dict[str, Any], step: Optional[int] = None) -> None:
        """MLflow's and Lightning's spelling: several scalars at once."""
        epoch, global_step = self.logger.position()
        for point in points({key: float(value) for key, value in metrics.items()},
                            global_step if step is None else int(step), epoch):
            self.logger.log.log(**point)

    def log_metric(self, key: str, value: Any, step: Optional[int] = None, **ignored: Any) -> None:
        """MLflow's spelling (``timestamp``/``run_id`` arguments are ignored)."""
        self.log_metrics({key: value}, step)

    def add_scalar(self, tag: str, scalar_value: Any, global_step: Optional[int] = None, **ignored: Any) -> None:
        """TensorBoard's ``SummaryWriter.add_scalar`` (``walltime`` is ignored)."""
        self.log_metrics({tag: scalar_value}, global_step)

    def add_scalars(self, main_tag: str, tag_scalar_dict: dict[str, Any], global_step: Optional[int] = None,
                    **ignored: Any) -> None:
        """TensorBoard's ``add_scalars``: ``main_tag_tag`` for each entry."""
        self.log_metrics({f"{main_tag}_{tag}": value for tag, value in tag_scalar_dict.items()}, global_step)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"self.logger.experiment.{name}: the job's logger (xpm-train's JobLogger) writes scalars only "
            f"(log_metrics, log_metric, add_scalar, add_scalars, into {METRICS}); for images, text or "
            "artifacts add a Lightning logger of your own with LightningFit(loggers=[YourLoggerConfig.C()]) "
            "and use self.loggers[1].experiment"
        )
