"""Several devices through Lightning's DDP, with the ranks xpm-train's launcher started.

A spec asking for ``processes=K`` (and ``nodes=M`` on Slurm) makes the
launcher start the job's ranks exactly as torchrun would
(:mod:`xpm_train.distributed`: rank 0 of a local job runs the job script
again for ranks ``1..K-1``; ``srun`` starts them all on Slurm). Lightning
adopts processes started outside it through its cluster environments, so
every rank runs ``Trainer(strategy=DDPStrategy(cluster_environment=...),
devices=K, num_nodes=M)`` and Lightning spawns nothing (its own ``ddp``
launcher would run the job script again under experimaestro's job lock):

- **local**: :class:`~lightning.fabric.plugins.environments.LightningEnvironment`,
  which takes processes as external when ``LOCAL_RANK`` is set;
- **Slurm**: :class:`~lightning.fabric.plugins.environments.SLURMEnvironment`
  without its ``scontrol requeue``, reading Slurm's own variables and meeting
  at xpm-train's address and port, where a Learn job would.

Which environment, and the variables it reads, are the launcher type's own
(its job side: :class:`~xpm_train.launchers.kinds.local.LocalJob`,
:class:`~xpm_train.launchers.kinds.slurm.SlurmJob`), chosen by
``RankInfo.source``.

The collectives time out after ``XPM_TRAIN_DDP_TIMEOUT`` seconds (a dead rank
stops the others). This module imports Lightning: only the Lightning task
process imports it.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

from ..distributed import RankInfo, timeout
from ..launchers.kinds import job_side


def environ(info: RankInfo) -> dict[str, str]:
    """The variables Lightning's environment reads for this rank."""
    return job_side(info.source).lightning_variables(info)


def layout(info: RankInfo) -> dict[str, int]:
    """``Trainer(devices=..., num_nodes=...)`` for this job's ranks: one device per rank."""
    return {"devices": info.local_world_size, "num_nodes": info.world_size // info.local_world_size}


def trainer_arguments(info: RankInfo) -> dict[str, Any]:
    """What the Trainer gets for a job of ``info.world_size`` ranks (sets this
    process's environment variables: call it in the task process only)."""
    from lightning.pytorch.strategies import DDPStrategy

    os.environ.update(environ(info))
    environment = job_side(info.source).lightning_environment()
    if not environment.creates_processes_externally:  # LOCAL_RANK was just set: cannot happen
        raise RuntimeError("Lightning would start the ranks itself: LOCAL_RANK is not set")
    strategy = DDPStrategy(cluster_environment=environment, timeout=datetime.timedelta(seconds=timeout()))
    return {"strategy": strategy, **layout(info)}


def gather(value: Any, world_size: int) -> list[Any]:
    """``value`` of every rank, in rank order (one process: ``[value]``)."""
    if world_size == 1:
        return [value]
    import torch.distributed as dist

    values: list[Any] = [None] * world_size
    dist.all_gather_object(values, value)
    return values
