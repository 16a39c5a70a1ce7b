"""How many processes (ranks) a job runs: ``processes=`` and ``nodes=`` in a spec.

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
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UserError
from ..training import RunsOnRanks

TERM = re.compile(r"^\s*(processes|nodes)\s*=\s*(\S*)\s*$")


class RanksSpecError(UserError, ValueError):
    """A ``processes=``/``nodes=`` term, or a task asked to run on several ranks, that cannot be."""


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
