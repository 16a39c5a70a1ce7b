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
  which takes processes as external when ``LOCAL_RANK`` is set; this module
  sets ``RANK``/``LOCAL_RANK``/``WORLD_SIZE``/``NODE_RANK`` and
  ``MASTER_ADDR``/``MASTER_PORT`` from :func:`~xpm_train.distributed.rank_info`
  (rank 0 has none of them: it is the job process);
- **Slurm**: :class:`~lightning.fabric.plugins.environments.SLURMEnvironment`
  without its ``scontrol requeue`` (experimaestro resubmits a preempted job),
  reading ``SLURM_PROCID``/``SLURM_LOCALID``/``SLURM_NODEID``; the address and
  port are xpm-train's (``MASTER_ADDR``/``MASTER_PORT``, which it honours), so
  a Lightning job meets where a Learn job would.

The collectives time out after ``XPM_TRAIN_DDP_TIMEOUT`` seconds (a dead rank
stops the others). This module imports Lightning: only the Lightning task
process imports it.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

from ..distributed import RankInfo, timeout


def environ(info: RankInfo) -> dict[str, str]:
    """The variables Lightning's environment reads for this rank."""
    meeting = {"MASTER_ADDR": info.master_addr, "MASTER_PORT": str(info.master_port)}
    if info.source == "slurm":
        return meeting  # SLURMEnvironment reads the ranks from Slurm's own variables
    return {**meeting, "RANK": str(info.rank), "LOCAL_RANK": str(info.local_rank),
            "WORLD_SIZE": str(info.world_size), "NODE_RANK": "0"}


def layout(info: RankInfo) -> dict[str, int]:
    """``Trainer(devices=..., num_nodes=...)`` for this job's ranks: one device per rank."""
    return {"devices": info.local_world_size, "num_nodes": info.world_size // info.local_world_size}


def trainer_arguments(info: RankInfo) -> dict[str, Any]:
    """What the Trainer gets for a job of ``info.world_size`` ranks (sets this
    process's environment variables: call it in the task process only)."""
    from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment
    from lightning.pytorch.strategies import DDPStrategy

    os.environ.update(environ(info))
    environment = SLURMEnvironment(auto_requeue=False) if info.source == "slurm" else LightningEnvironment()
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
