"""Measuring a network by its objective, for Learn and Evaluate.

The objective owns what is measured (:meth:`Objective.sums` per batch, kept
on the device, and :meth:`Objective.metrics` of their totals; its
:meth:`Objective.detail_sums` and :meth:`Objective.details` for what only
Evaluate reports, e.g. Classification's confusion matrix); this module runs
a network over a split and adds the sums up, over the batches and over the
ranks of a distributed job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    import torch

    from .distributed import Ranks
    from .objectives import Objective
    from .pipeline import DeviceData


def add_sums(sums: dict[str, Any], batch: dict[str, Any]) -> None:
    """Add a batch's :meth:`Objective.sums` to the epoch's (on the device)."""
    for key, value in batch.items():
        sums[key] = sums[key] + value if key in sums else value.clone()


def split_metrics(net: "torch.nn.Module", data: "DeviceData", objective: "Objective", batch_size: int = 1024,
                  keep: Optional[dict] = None, ranks: "Ranks | None" = None,
                  details: bool = False) -> dict[str, Any]:
    """The objective's metrics of ``net`` on ``data`` (the network is put in
    eval mode and left so); ``details``: with the objective's
    :meth:`~Objective.details` and the number of ``samples`` (Evaluate's); ``keep``: a dict receiving the
    ``outputs`` and ``targets`` of every batch (on the CPU).

    With ``ranks`` of a distributed job, each rank measures its shard of
    ``data`` and the sums are added over the ranks: every rank returns the
    metrics of the whole of ``data``."""
    import torch

    net.eval()
    sums: dict[str, Any] = {}
    shard = {"rank": ranks.rank, "world": ranks.world_size} if ranks is not None else {}
    with torch.no_grad():
        for inputs, targets in data.batches(batch_size, **shard):
            target = objective.target(inputs, targets, data)
            outputs = net(inputs).float()
            add_sums(sums, objective.sums(outputs, target))
            if details:
                add_sums(sums, objective.detail_sums(outputs, target))
            if keep is not None:
                keep.setdefault("outputs", []).append(outputs.cpu())
                keep.setdefault("targets", []).append(target.cpu())
    if ranks is not None:
        ranks.sum_(*sums.values())
    if not details:
        return objective.metrics(sums)
    return {**objective.metrics(sums), **objective.details(sums), "samples": int(sums["n"])}


def check_outputs(net, objective: "Objective", info, data, model) -> None:
    """Run two samples through ``net`` (eval mode, no gradient: no random
    number is drawn) and refuse a network whose output size does not fit."""
    import torch

    inputs, _ = next(data.batches(2))
    net.eval()
    with torch.no_grad():
        outputs = net(inputs)
    net.train()
    objective.check_outputs(outputs, info, model)
