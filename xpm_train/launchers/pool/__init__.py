"""Slurm pools: jobs of a ``type: slurm`` launcher with ``pool:`` run as job
steps of allocations that xpm-train requests, shares and lets go.

* :mod:`.config`: the ``pool:`` key (its reader, and the plan-time checks of
  a pool and a job against the partition);
* :mod:`.allocations`: the allocations of a pool as Slurm lists them (one
  sbatch job each, named ``xpm-pool-<launcher>``, whose batch script holds the
  allocation and ends after ``idle`` seconds without a step), requesting one
  and the steps each one runs;
* :mod:`.steps`: the experimaestro launcher that starts a job as ``srun
  --jobid=ALLOC --exact`` in the allocation with room, recorded in the pool's
  registry so that every plan of the user on that host shares the allocations.

Slurm is the engine: it places each step, accounts it (``sacct``: one step per
job), delivers the allocation's signals to it and ends the allocation; the
experimaestro scheduler decides when a job is ready, as for any launcher.
"""

from .config import PoolConfig

__all__ = ["PoolConfig"]
