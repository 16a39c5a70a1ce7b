"""What a job sees of Slurm, in its own process: the job side of ``type: slurm``
(:class:`SlurmJob`, :class:`.ranks.JobSide`), with Slurm's host-list grammar
and the port every rank derives from the job ID.

It lives beside :mod:`.kinds.slurm` (which names it as its ``job``) so that
a job's process reads its ranks without importing the plan side (readers,
sbatch options, the pool's configuration).
"""

from __future__ import annotations

import re
from typing import Mapping

from .ranks import RANKS_ENV, RankInfo, RanksError

SLURM_PORT_BASE = 15000
"""Slurm jobs listen on ``SLURM_PORT_BASE + job_id % SLURM_PORT_SPAN``: every
rank computes the same port without talking to the others"""
SLURM_PORT_SPAN = 20000


class SlurmJob:
    """What a job sees of Slurm (:class:`.ranks.JobSide`): ``srun`` has
    started every rank; rank, local rank and world size come from
    ``SLURM_PROCID``/``SLURM_LOCALID``/``SLURM_NTASKS``, the master is the
    first node of ``SLURM_JOB_NODELIST`` and the port is derived from the job
    ID (``MASTER_PORT``/``MASTER_ADDR`` override them)."""

    @staticmethod
    def ranks(environ: Mapping[str, str], world: int) -> RankInfo | None:
        if "SLURM_PROCID" not in environ or "SLURM_JOB_NODELIST" not in environ:
            return None
        ntasks = int(environ.get("SLURM_NTASKS") or 1)
        if ntasks != world:
            raise RanksError(f"{RANKS_ENV}={world} but Slurm started {ntasks} task(s) "
                             "(SLURM_NTASKS): the sbatch options do not match the spec")
        nodes = expand_hostlist(environ["SLURM_JOB_NODELIST"])
        per_node = int(re.match(r"\d+", environ.get("SLURM_TASKS_PER_NODE", "1")).group())
        port = int(environ.get("MASTER_PORT") or slurm_port(environ.get("SLURM_JOB_ID", "0")))
        return RankInfo(rank=int(environ["SLURM_PROCID"]), local_rank=int(environ.get("SLURM_LOCALID", 0)),
                        world_size=world, local_world_size=per_node,
                        master_addr=environ.get("MASTER_ADDR") or nodes[0], master_port=port,
                        source="slurm")

    @staticmethod
    def label(environ: Mapping[str, str]) -> str | None:
        return f"slurm:{environ['SLURM_JOB_ID']}" if environ.get("SLURM_JOB_ID") else None

    @staticmethod
    def lightning_variables(info: RankInfo) -> dict[str, str]:
        """Only the meeting point: ``SLURMEnvironment`` reads the ranks from
        Slurm's own variables and honours ``MASTER_ADDR``/``MASTER_PORT``, so a
        Lightning job meets where a Learn job would."""
        return {"MASTER_ADDR": info.master_addr, "MASTER_PORT": str(info.master_port)}

    @staticmethod
    def lightning_environment():
        """Lightning's SLURM environment without its ``scontrol requeue``: a
        preempted job is resubmitted by experimaestro (it ends with GracefulTimeout)."""
        from lightning.fabric.plugins.environments import SLURMEnvironment

        return SLURMEnvironment(auto_requeue=False)

    @staticmethod
    def lightning_plugins() -> list:
        from lightning.fabric.plugins.environments import SLURMEnvironment

        return [SlurmJob.lightning_environment()] if SLURMEnvironment.detect() else []


def expand_hostlist(text: str) -> list[str]:
    """Slurm's compressed host list, expanded: ``node[01-03,07],gpu5`` ->
    ``node01 node02 node03 node07 gpu5`` (several brackets: their product; zero
    padding kept), as ``scontrol show hostnames`` prints it."""
    hosts: list[str] = []
    for item in _top_level_split(text.strip()):
        if item:
            hosts.extend(_expand_item(item))
    return hosts


def _top_level_split(text: str) -> list[str]:
    """Split on the commas that are outside brackets."""
    items, depth, current = [], 0, []
    for char in text:
        if char == "," and depth == 0:
            items.append("".join(current))
            current = []
            continue
        depth += char == "["
        depth -= char == "]"
        current.append(char)
    items.append("".join(current))
    return items


def _expand_item(item: str) -> list[str]:
    match = re.search(r"\[([^\]]*)\]", item)
    if match is None:
        return [item]
    prefix, rest = item[: match.start()], item[match.end():]
    values = []
    for part in match.group(1).split(","):
        low, _, high = part.partition("-")
        if not high:
            values.append(low)
            continue
        width = len(low) if low.startswith("0") else 0
        values.extend(str(i).zfill(width) for i in range(int(low), int(high) + 1))
    return [prefix + value + tail for value in values for tail in _expand_item(rest)]


def slurm_port(job_id: str) -> int:
    """The rendezvous port of a Slurm job (the same on every rank)."""
    return SLURM_PORT_BASE + int(re.sub(r"\D", "", job_id) or 0) % SLURM_PORT_SPAN
