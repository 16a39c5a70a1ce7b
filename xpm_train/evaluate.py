"""Evaluate: the metrics of a trained classifier on one split.

Writes ``results.json`` in its job folder: loss, top-1 accuracy, top-5
accuracy (when there are more than 5 classes), per-class accuracy and the
confusion matrix (rows: true class, columns: predicted class).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from experimaestro import Constant, Meta, Param, PathGenerator, Task, field

from .checkpoint import atomic_write_bytes
from .data.base import ImageDataset
from .hooks import Tracking
from .models import Model

if TYPE_CHECKING:
    import torch

    from .distributed import Ranks
    from .pipeline import DeviceData

logger = logging.getLogger("xpm_train.evaluate")


def classification_metrics(net: "torch.nn.Module", data: "DeviceData", num_classes: int,
                           batch_size: int = 1024, ranks: "Ranks | None" = None) -> dict[str, Any]:
    """Loss, top-1/top-5 accuracy, per-class accuracy and confusion matrix of
    ``net`` on ``data`` (the network is put in eval mode and left so).

    With ``ranks`` of a distributed job, each rank evaluates its shard of
    ``data`` and the sums are added over the ranks: every rank returns the
    metrics of the whole of ``data``."""
    import torch

    net.eval()
    device = data.images.device
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    loss_sum = torch.zeros((), device=device)
    top5_hits = torch.zeros((), dtype=torch.long, device=device)
    with torch.no_grad():
        shard = {"rank": ranks.rank, "world": ranks.world_size} if ranks is not None else {}
        for images, labels in data.batches(batch_size, **shard):
            logits = net(images).float()
            loss_sum += torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
            predicted = logits.argmax(dim=1)
            confusion += torch.bincount(
                labels * num_classes + predicted, minlength=num_classes**2
            ).view(num_classes, num_classes)
            if num_classes > 5:
                top5 = logits.topk(5, dim=1).indices
                top5_hits += (top5 == labels[:, None]).any(dim=1).sum()
    if ranks is not None:
        ranks.sum_(confusion, loss_sum, top5_hits)
    confusion = confusion.cpu()
    n = max(int(confusion.sum()), 1)
    per_class_total = confusion.sum(dim=1).clamp(min=1)
    metrics = {
        "loss": float(loss_sum) / n,
        "accuracy": float(confusion.diagonal().sum()) / n,
        "per_class_accuracy": (confusion.diagonal() / per_class_total).tolist(),
        "confusion_matrix": confusion.tolist(),
        "samples": n,
    }
    if num_classes > 5:
        metrics["top5_accuracy"] = float(top5_hits) / n
    return metrics


class Evaluate(Task):
    """Evaluate a trained classifier on a labelled split.

    Submit it with the trained weights as init task:
    ``Evaluate.C(model=model, data=test).submit(init_tasks=[learn_output])``.
    """

    model: Param[Model]
    """The model to evaluate (its weights come from the init task)"""

    data: Param[ImageDataset]
    """The split to evaluate on"""

    batch_size: Meta[int] = field(default=1024, ignore_default=True)
    """Evaluation batch size (does not change the results)"""

    device: Meta[str] = field(default="auto", ignore_default=True)
    """``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``..."""

    results_path: Meta[Path] = field(default_factory=PathGenerator("results.json"))
    """Where the metrics are written"""

    tracking: Meta[Optional[Tracking]] = None
    """Where the results are mirrored besides the job folder (e.g. MLflow)"""

    metrics_path: Meta[Path] = field(default_factory=PathGenerator("metrics.jsonl"))
    """The scalar results as one ``eval`` point (what sinks receive)"""

    events_path: Meta[Path] = field(default_factory=PathGenerator("events.jsonl"))
    """start / end / error events"""

    version: Constant[str] = "1"
    """Bumped only to invalidate previous evaluations on purpose"""

    def check_ranks(self, world_size: int) -> None:
        """Evaluate runs on any number of ranks (each evaluates its shard of
        ``data``, the sums are added: the same metrics)."""

    def execute(self):
        from experimaestro import progress

        from . import distributed
        from .metrics import MetricsLogger
        from .models import build
        from .pipeline import DeviceData

        ranks = distributed.start(self.device)  # one process unless the launcher gave several
        if ranks.is_main:
            sinks = self.tracking.sinks(self) if self.tracking is not None else []
            log = MetricsLogger(self.metrics_path, self.events_path, sinks)
        else:
            log = distributed.SilentLogger()
        with log:
            log.event("start")
            try:
                device = ranks.device
                arrays = self.data.arrays()
                net = build(self.model, arrays.shape, arrays.num_classes).to(device)
                progress(0.0, desc="evaluate")
                data = DeviceData(arrays, device, channels_last=self.model.channels_last())
                metrics = classification_metrics(net, data, arrays.num_classes, self.batch_size,
                                                 ranks=ranks if ranks.distributed else None)
                if ranks.is_main:
                    atomic_write_bytes(self.results_path, json.dumps(metrics, indent=2).encode())
            except BaseException as error:
                log.event("error", error=f"{type(error).__name__}: {error}")
                ranks.close(failed=True)
                raise
            scalars = {k: v for k, v in metrics.items() if isinstance(v, float)}
            log.log(epoch=0, step=0, split="eval", **scalars)
            log.event("end")
        ranks.close()
        progress(1.0, desc="evaluate")
        logger.info(
            "accuracy %.4f, loss %.4f on %d samples", metrics["accuracy"], metrics["loss"],
            metrics["samples"],
        )
