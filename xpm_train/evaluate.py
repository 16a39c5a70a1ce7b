"""Evaluate: the metrics of a trained model on one split, by its objective.

Writes ``results.json`` in its job folder (schema: :mod:`xpm_train.summary`):
the objective's metrics and score; for ``Classification`` also top-5
accuracy (when there are more than 5 classes), per-class accuracy and the
confusion matrix (rows: true class, columns: predicted class). With
``predictions=True``, ``predictions.npz`` holds the network's ``outputs`` and
the ``targets`` it was compared with (in the data's units), for checks and
plots of your own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from experimaestro import Constant, Meta, Param, PathGenerator, Task, field

from .errors import config_name
from .checks import validated
from .data.base import Dataset
from .data.stream import Streaming
from .hooks import Tracking
from .models import Model, check_model_outputs
from . import jobfolder
from .jobfolder import done_in_current_workspace
from .objectives import Classification, Objective, objective_of

logger = logging.getLogger("xpm_train.evaluate")


@validated
class Evaluate(Task):
    """Evaluate a trained model on a split, by its objective.

    Submit it with the trained weights as init task:
    ``Evaluate.C(model=model, data=test).submit(init_tasks=[learn_output])``.
    """

    model: Param[Model]
    """The model to evaluate (its weights come from the init task)"""

    data: Param[Dataset]
    """The split to evaluate on"""

    objective: Param[Objective] = field(default=Classification.C(), ignore_default=True)
    """What to measure (the Learn's objective): Classification (the default),
    Regression, Reconstruction"""

    batch_size: Meta[int] = field(default=1024, ignore_default=True)
    """Evaluation batch size (does not change the results)"""

    device: Meta[str] = field(default="auto", ignore_default=True)
    """``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``..."""

    predictions: Meta[bool] = field(default=False, ignore_default=True)
    """Also save the outputs and targets in ``predictions.npz``"""

    results_path: Meta[Path] = field(default_factory=PathGenerator(jobfolder.RESULTS))
    """Where the metrics are written"""

    tracking: Meta[Optional[Tracking]] = None
    """Where the results are mirrored besides the job folder (e.g. MLflow)"""

    streaming: Meta[Optional[Streaming]] = field(default=None, ignore_default=True)
    """When to stream ``data`` from disk (None: ``Streaming.C()``, when it
    exceeds half the available memory); see :mod:`xpm_train.data.stream`"""

    metrics_path: Meta[Path] = field(default_factory=PathGenerator(jobfolder.METRICS))
    """The scalar results as one ``eval`` point (what sinks receive)"""

    events_path: Meta[Path] = field(default_factory=PathGenerator(jobfolder.EVENTS))
    """start / end / error events"""

    version: Constant[str] = "1"
    """Bumped only to invalidate previous evaluations on purpose"""

    def check_ranks(self, world_size: int) -> None:
        """Evaluate runs on any number of ranks (each evaluates its shard of
        ``data``, the sums are added: the same metrics)."""

    def __validate__(self):
        """Refuse, when the plan submits it, an objective that does not fit the
        data, or a model whose output size does not fit the objective."""
        objective = objective_of(self)
        where = f"Evaluate(model={config_name(self.model)}, data={config_name(self.data)})"
        objective.check_data(self.data.targets(), where)
        if not done_in_current_workspace(self):  # a cached job: no need to import torch in the plan
            check_model_outputs(self.model, objective, self.data)

    def execute(self):
        from experimaestro import progress

        from . import runtime, summary
        from .measure import check_outputs, split_metrics
        from .metrics import lifecycle, open_log
        from .models import build
        from .data.stream import PREPARED_KEY, open_split
        from .pipeline import DeviceData

        objective = objective_of(self)
        ranks = runtime.start(self.device)  # one process unless the launcher gave several
        log = open_log(self, ranks)
        with lifecycle(log, ranks):  # start, then end, or error on a failure
            device = ranks.device
            streamed, why = open_split(self.data, self.streaming)  # or in memory (see Streaming)
            logger.info("Data %s: %s", "streamed" if streamed else "in memory", why)
            if streamed is not None:  # which prepared folder it reads (xpm-train gc keeps it)
                log.event("data", **{PREPARED_KEY: str(streamed.prepared.folder)})
            arrays = self.data.arrays() if streamed is None else streamed.schema()
            info = objective.describe(arrays)
            net = build(self.model, info).to(device)
            progress(0.0, desc="evaluate")
            layout = self.model.channels_last()
            data = (DeviceData(arrays, device, channels_last=layout) if streamed is None
                    else streamed.data(None, device, channels_last=layout))
            check_outputs(net, objective, info, data, self.model)
            kept: Optional[dict] = {} if self.predictions else None
            # each rank its shard, the sums added (the whole split when rank 0 keeps every prediction)
            shards = ranks if ranks.distributed and kept is None else None
            metrics = split_metrics(net, data, objective, self.batch_size, kept, shards, details=True)
            if kept is not None and ranks.is_main:
                save_predictions(self.results_path.with_name("predictions.npz"), kept)
            metrics = summary.Summary(
                {**metrics, **summary.score_fields(summary.key("eval", objective.score), metrics[objective.score],
                                                   objective.direction)},
                summary.split_directions(objective.directions, ("",)))
            if ranks.is_main:
                summary.write(self.results_path, metrics)
            scalars = {k: v for k, v in metrics.items() if isinstance(v, float) and k != "score"}
            log.log(epoch=0, step=0, split="eval", **scalars)
        ranks.close()
        progress(1.0, desc="evaluate")
        logger.info("%s %.4f, loss %.4f on %d samples", objective.score, metrics[objective.score],
                    metrics["loss"], metrics["samples"])


def save_predictions(path: Path, kept: dict) -> None:
    """``outputs`` and ``targets`` of every batch, as one ``.npz`` (atomic)."""
    import numpy as np
    import torch

    from .atomic import atomic_write

    with atomic_write(path) as out:
        np.savez(out, **{k: torch.cat(v).numpy() for k, v in kept.items()})
