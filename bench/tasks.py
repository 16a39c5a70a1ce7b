"""The trivial task of the scheduler benchmark (importable by job processes:
the benchmark puts the repository root on ``PYTHONPATH``)."""

from __future__ import annotations

from experimaestro import Param, Task


class Noop(Task):
    """Does nothing: what is left of its job is the scheduler's and the
    process's overhead."""

    index: Param[int]
    """Distinguishes otherwise identical jobs"""

    def execute(self):
        pass
