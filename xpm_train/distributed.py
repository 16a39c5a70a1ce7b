"""One training in several processes: ranks, their process group, and who writes.

The launcher says how many ranks a job has (``processes=`` and ``nodes=`` in
its spec, see :mod:`xpm_train.launchers.ranks`) by setting
``XPM_TRAIN_RANKS`` (the world size) in the job script; the task then calls
:func:`start`, which tells each process what it is:

* **local launcher**: the job process is rank 0; it starts ranks ``1..W-1``
  by running the same job script with ``RANK``/``WORLD_SIZE``/``MASTER_*``
  set (experimaestro's ``TaskRunner`` runs a process of rank > 0 as a
  "slave": no lock, no status file) and watches them;
* **Slurm**: ``srun`` has already started every rank.

Each launcher type reads what its jobs see of it (ranks, master address and
port) in its own module: :class:`~xpm_train.launchers.kinds.local.LocalJob`,
:class:`~xpm_train.launchers.kinds.slurm.SlurmJob` (its ``SLURM_*``
variables); :func:`rank_info` asks them.

Then ``torch.distributed`` is initialised (gloo on CPUs, nccl on GPUs, one
GPU per rank: ``cuda:<local rank>``), with a timeout on every collective
(``XPM_TRAIN_DDP_TIMEOUT`` seconds, default 300) so that a dead rank stops
the others instead of hanging them. A task that is not distributed gets a
:class:`Ranks` of one process whose collectives are no-ops, so the same
training code runs in both cases.

Only rank 0 writes (metrics, events, checkpoints, final.json, MLflow): the
others get a :class:`~xpm_train.metrics.SilentLogger`.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .launchers.ranks import RANKS_ENV, RankInfo, RanksError  # noqa: F401 - also this module's names

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("xpm_train.distributed")

TIMEOUT_ENV = "XPM_TRAIN_DDP_TIMEOUT"
"""Seconds a collective (or the rendezvous) may wait for the other ranks"""

DEFAULT_TIMEOUT = 300.0


def rank_info(environ: Mapping[str, str] = os.environ) -> RankInfo:
    """This process's rank, read by the job side of the launcher type that
    started it (:func:`xpm_train.launchers.kinds.job_sides`)."""
    world = int(environ.get(RANKS_ENV) or 1)
    if world <= 1:
        return RankInfo()
    from .launchers.kinds import job_sides

    for side in job_sides():
        info = side.ranks(environ, world)
        if info is not None:
            return info
    raise RanksError(f"{RANKS_ENV}={world} but no launcher type started this process's ranks")


class Ranks:
    """This process's part of a training: rank, device, and the few collectives
    a training loop needs (no-ops with one process)."""

    def __init__(self, info: RankInfo, device: "torch.device", followers: "Followers | None" = None):
        self.info = info
        self.device = device
        self.followers = followers
        self.closed = False

    @property
    def rank(self) -> int:
        return self.info.rank

    @property
    def world_size(self) -> int:
        return self.info.world_size

    @property
    def is_main(self) -> bool:
        return self.info.is_main

    @property
    def distributed(self) -> bool:
        return self.info.world_size > 1

    def wrap(self, net: "torch.nn.Module") -> "torch.nn.Module":
        """``net`` in DistributedDataParallel (gradients averaged over ranks)."""
        if not self.distributed:
            return net
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(net, device_ids=ids)

    def loss_weight(self, local: int, total: int) -> float:
        """Factor making DDP's average of the ranks' mean losses the mean over
        the ``total`` samples of the global batch (shards may differ by one)."""
        return 1.0 if not self.distributed else local * self.world_size / total

    def sum_(self, *tensors: "torch.Tensor") -> None:
        """Sum each tensor over the ranks, in place."""
        if self.distributed:
            import torch.distributed as dist

            for tensor in tensors:
                dist.all_reduce(tensor, op=dist.ReduceOp.SUM)

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on some rank."""
        if not self.distributed:
            return bool(flag)
        import torch

        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        self.sum_(value)
        return bool(value.item() > 0)

    def rng_states(self) -> dict[str, Any]:
        """Every rank's CPU random state (for the checkpoint; empty with one process)."""
        if not self.distributed:
            return {}
        import torch
        import torch.distributed as dist

        states: list[Any] = [None] * self.world_size
        dist.all_gather_object(states, torch.get_rng_state())
        return {"rng_ranks": states}

    def restore_rng(self, state: dict[str, Any]) -> None:
        """Take back this rank's random state from a checkpoint of the same world size."""
        states = state.get("rng_ranks")
        if self.distributed and states and len(states) == self.world_size:
            import torch

            torch.set_rng_state(states[self.rank])

    def close(self, failed: bool = False) -> None:
        """Leave the process group; rank 0 of a local job waits for its followers
        (or stops them when ``failed``) and fails when one of them did. Once:
        a second call (a failure after a successful close) does nothing."""
        if not self.distributed or self.closed:
            return
        self.closed = True
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
        if self.followers is not None:
            self.followers.finish(failed)


def timeout() -> float:
    return float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT)


def start(device_name: str = "auto") -> Ranks:
    """Join this job's ranks (a no-op :class:`Ranks` when the job has one process)."""
    from .pipeline import pick_device

    info = rank_info()
    device = pick_device(device_name)
    if info.world_size == 1:
        return Ranks(info, device)
    import datetime

    import torch
    import torch.distributed as dist

    if device.type == "cuda":
        if device.index is not None and device_name not in ("auto", "cuda"):
            raise RanksError(f"device={device_name!r} names one GPU but the job has {info.world_size} "
                             "ranks (one GPU each): use device='auto' or 'cuda'")
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    info, followers = start_followers(info)
    backend = "nccl" if device.type == "cuda" else "gloo"
    logger.info("Rank %d of %d (%s, %s) joining %s:%d", info.rank, info.world_size, backend, device,
                info.master_addr, info.master_port)
    dist.init_process_group(backend, init_method=f"tcp://{info.master_addr}:{info.master_port}",
                            rank=info.rank, world_size=info.world_size,
                            timeout=datetime.timedelta(seconds=timeout()))
    return Ranks(info, device, followers)


def start_followers(info: RankInfo) -> "tuple[RankInfo, Followers | None]":
    """What a local job does before its ranks meet: each rank takes its share
    of the job's cores, and rank 0 picks the rendezvous port and starts ranks
    ``1..W-1`` (its :class:`Followers`). Slurm jobs: nothing (srun started every
    rank). Used by :func:`start` and by tasks whose framework joins the process
    group itself (LightningFit)."""
    if info.source != "local" or info.world_size == 1:
        return info, None
    import torch

    threads = max(1, int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1) // info.world_size)
    torch.set_num_threads(threads)
    if not info.is_main:
        return info, None
    info = replace(info, master_port=free_port())
    return info, Followers.spawn(info, threads)


def free_port() -> int:
    """A TCP port free on this host right now (for a local job's rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RankFailed(RuntimeError):
    """Another rank of this job failed or was killed."""


class Followers:
    """Ranks ``1..W-1`` of a local job, started and watched by rank 0.

    Each runs the job script again, so it imports the task exactly as rank 0
    did; it dies with rank 0 (``PR_SET_PDEATHSIG``). When one dies, the next
    collective of rank 0 fails (gloo: at once, the peer's connection is closed;
    at the latest after the timeout).
    """

    def __init__(self, processes: list[subprocess.Popen]):
        self.processes = processes

    @classmethod
    def spawn(cls, info: RankInfo, threads: int) -> "Followers":
        script = job_script(info)
        processes = []
        for rank in range(1, info.world_size):
            env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank),
                   "WORLD_SIZE": str(info.world_size), "MASTER_ADDR": info.master_addr,
                   "MASTER_PORT": str(info.master_port),
                   "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
            processes.append(subprocess.Popen([sys.executable, str(script)], env=env, cwd=script.parent,
                                              preexec_fn=_die_with_parent))
        logger.info("Started ranks 1..%d (pids %s)", info.world_size - 1,
                    ", ".join(str(p.pid) for p in processes))
        return cls(processes)

    def finish(self, failed: bool) -> None:
        """Wait for the followers to end (stop them after a grace delay when ``failed``)."""
        deadline = time.monotonic() + (10 if failed else timeout())
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        codes = [p.returncode for p in self.processes]
        if not failed and any(codes):
            raise RankFailed(f"rank(s) {[r for r, c in enumerate(codes, 1) if c]} ended with code(s) "
                             f"{[c for c in codes if c]}; see the job's .err log")


def job_script(info: RankInfo) -> Path:
    """The script experimaestro wrote for this job (``<job folder>/<task>.py``),
    which the other ranks run again."""
    from experimaestro import taskglobals

    folder = taskglobals.Env.instance().taskpath
    started = Path(sys.argv[0]).resolve()
    if started.suffix == ".py" and started.is_file() and (folder is None or started.parent == Path(folder).resolve()):
        return started
    scripts = sorted(Path(folder).glob("*.py")) if folder else []
    if len(scripts) == 1:
        return scripts[0]
    raise RanksError(f"{RANKS_ENV}={info.world_size} but this process was not started by a job script "
                     f"({sys.argv[0]!r}, job folder {folder}): submit the task through a launcher")


def _die_with_parent() -> None:
    """In a follower, before exec: be killed when rank 0 dies (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
