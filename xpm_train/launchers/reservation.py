"""What one local job holds while it runs, and the thread pools sized to it.

Below both sides of ``type: local``: the launcher type
(:mod:`.kinds.local`, which shows the reservation in ``explain``) and the
experimaestro launcher that makes the job wait for it and sizes the job's
thread pools (:mod:`.process`, and a pool's job steps, :mod:`.pool.steps`).
Standard library only: ``explain`` and ``launchers list`` load it without
experimaestro's launchers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .units import mebibytes

if TYPE_CHECKING:
    from experimaestro.launcherfinder.specs import HostSimpleRequirement

    from .kinds.local import LocalLauncherConfig

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""Thread-pool sizes set to the job's cores: torch would otherwise use every
core of the host in each job, and concurrent jobs would slow each other down"""


def thread_pool_code(cores: str) -> str:
    """Job-script lines (inside ``if __name__ == '__main__':``, before torch is
    imported) sizing the job's thread pools to ``cores``, a Python expression
    evaluated in the job. A size the user set for one pool (OMP or MKL) is
    kept and given to the other: torch takes the larger of the two."""
    return ("    import os\n"
            f"    _threads = next(filter(None, map(os.environ.get, {THREAD_VARIABLES!r})), str({cores}))\n"
            f"    for _name in {THREAD_VARIABLES!r}:\n"
            "        os.environ.setdefault(_name, _threads)\n")


@dataclass(frozen=True)
class Reservation:
    """What one job holds while it runs, per counter: (name, job's share, total)."""

    shares: tuple[tuple[str, int, int], ...]
    gpus: int

    @property
    def cores(self) -> int:
        """Cores reserved (the size of the job's thread pools)."""
        return next(share for resource, share, _ in self.shares if resource == "cores")

    @staticmethod
    def of(config: "LocalLauncherConfig", requirement: "HostSimpleRequirement") -> "Reservation":
        gpus = len(requirement.accelerators)
        shares = [
            ("cores", max(1, requirement.cpu.cores), config.cores),
            ("memory-mib", mebibytes(requirement.cpu.memory), mebibytes(config.memory)),
            ("gpus", gpus, len(config.gpus)),
        ]
        if config.max_jobs:
            shares.append(("jobs", 1, config.max_jobs))
        return Reservation(tuple(s for s in shares if s[1] > 0), gpus)
