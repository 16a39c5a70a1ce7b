"""How many processes (ranks) a job runs: what a plan asks (``processes=`` and
``nodes=`` in a spec, :class:`Layout`) and what each process of the job sees
(:class:`RankInfo`, read by the job side of the launcher type that started it,
:class:`JobSide`).

experimaestro's spec grammar has no term for processes, so xpm-train reads
two more terms in each ``|`` alternative and gives the rest to experimaestro::

    "duration=1h & cpu(cores=2) & processes=2"          # 2 ranks on one machine
    "duration=8h & cuda(mem=40G)*4 & processes=4"       # 4 ranks, one GPU each
    "duration=8h & cuda(mem=40G)*4 & processes=4 & nodes=2"   # 8 ranks (Slurm)

``processes`` is the number of ranks **per node** (default 1) and ``nodes``
the number of nodes (default 1, Slurm launchers only). The other terms are
per node too: ``cpu(cores=C, mem=M)`` is what one node gives the job (each
rank gets ``C / processes`` cores, at least one: a spec asking for fewer
cores than processes asks for one core per rank), ``cuda(...)*G`` its GPUs
(at least one per rank when GPUs are asked for). A job of one process is
written, run and identified exactly as before. See docs/distributed.md.

In the job, the launcher has set :data:`RANKS_ENV` (the world size) in the
job script; each launcher type's job side (:class:`JobSide`, the ``job``
attribute of its class in :mod:`.kinds`) reads its own variables: the Slurm
type ``SLURM_PROCID``... (``srun`` started every rank), the local type
``RANK``/``MASTER_*`` (rank 0 started the others). :func:`.kinds.job_sides`
lists them, the local type's last. This module and the job sides import no
more than the standard library at job start-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from ..errors import UserError
from ..training import RunsOnRanks

RANKS_ENV = "XPM_TRAIN_RANKS"
"""World size asked by the launcher, set in the job script (absent or 1: one process)"""

TERM = re.compile(r"^\s*(processes|nodes)\s*=\s*(\S*)\s*$")


class RanksSpecError(UserError, ValueError):
    """A ``processes=``/``nodes=`` term, or a task asked to run on several ranks, that cannot be."""


class RanksError(RuntimeError):
    """The environment of a distributed job is inconsistent."""


@dataclass(frozen=True)
class RankInfo:
    """Where this process stands in its job."""

    rank: int = 0
    local_rank: int = 0
    """Index among the ranks of this node (its GPU on a GPU node)"""
    world_size: int = 1
    local_world_size: int = 1
    master_addr: str = "127.0.0.1"
    master_port: int = 0
    source: str = "single"
    """``single`` (one process), else the ``type:`` of the launcher type whose
    job side read it (``local``: ranks started by rank 0, ``slurm``: by srun)"""

    @property
    def is_main(self) -> bool:
        """Rank 0: the only one that writes."""
        return self.rank == 0


class JobSide(Protocol):
    """What a job started by one launcher type sees of it, in the job's own
    process (the ``job`` class attribute of the type's class; every method a
    static one, reading the process's environment)."""

    @staticmethod
    def ranks(environ: Mapping[str, str], world: int) -> RankInfo | None:
        """This process's rank in a job of ``world`` (> 1) ranks that this type
        started (None: not started by this type). :raises RanksError:"""

    @staticmethod
    def label(environ: Mapping[str, str]) -> str | None:
        """How this process was launched, for its tracking tags (``slurm:<job id>``;
        None: not by this type)."""

    @staticmethod
    def lightning_variables(info: RankInfo) -> dict[str, str]:
        """For Lightning's DDP: the variables its cluster environment reads for this rank."""

    @staticmethod
    def lightning_environment() -> Any:
        """For Lightning's DDP: the cluster environment adopting this type's
        ranks (Lightning imported here only)."""

    @staticmethod
    def lightning_plugins() -> list:
        """Lightning plugins of a one-process job of this type (``[]``: none)."""


@dataclass(frozen=True)
class Layout:
    """The ranks of one job."""

    nodes: int = 1
    processes: int = 1
    """Ranks per node"""

    @property
    def world_size(self) -> int:
        return self.nodes * self.processes

    def describe(self) -> str:
        """In spec words (empty for one process)."""
        parts = [f"processes={self.processes}"] if self.processes > 1 else []
        if self.nodes > 1:
            parts.append(f"nodes={self.nodes}")
        return " & ".join(parts)


def split_alternative(text: str) -> tuple[str, Layout]:
    """``"cpu(cores=2) & processes=2"`` -> ``("cpu(cores=2)", Layout(processes=2))``."""
    rest, values = [], {}
    for term in text.split("&"):
        match = TERM.match(term)
        if match is None:
            rest.append(term)
            continue
        key, value = match.groups()
        if not value.isdigit() or int(value) < 1:
            raise RanksSpecError(f"{key}={value} in {text.strip()!r}: {key} must be a whole number >= 1")
        if key in values:
            raise RanksSpecError(f"{key} is given twice in {text.strip()!r}")
        values[key] = int(value)
    # Everything else goes to experimaestro's parser as written (its errors included)
    return ("&".join(rest) if rest else ""), Layout(**values)


def split_spec(text: str) -> list[tuple[str, Layout]]:
    """Each ``|`` alternative of ``text``: what experimaestro parses, and its ranks."""
    return [split_alternative(alternative) for alternative in text.split("|")]


def check_gpus(layout: Layout, gpus: int, text: str) -> None:
    """One GPU per rank at least, when GPUs are asked for."""
    if gpus and layout.processes > gpus:
        raise RanksSpecError(
            f"{text.strip()!r} asks for {layout.processes} processes per node but {gpus} GPU(s): "
            f"each rank needs its own GPU; ask for cuda(...)*{layout.processes} or processes={gpus}")


def submit_check(layout: Layout):
    """A launcher listener refusing, at ``submit()``, a task that cannot run on
    ``layout``'s ranks: tasks declare it with ``check_ranks(world_size)``
    (:class:`~xpm_train.training.RunsOnRanks`, raising a ``UserError`` saying
    what to change); a task without it is not distributed."""

    def check(job) -> None:
        task = job.config
        if not isinstance(task, RunsOnRanks):
            name = type(task).__qualname__.removesuffix(".XPMConfig")
            raise RanksSpecError(
                f"{name} does not run on several ranks, but its launcher's spec asks for "
                f"{layout.world_size} ({layout.describe()}): submit it with a spec without processes=/nodes=")
        task.check_ranks(layout.world_size)

    return check
