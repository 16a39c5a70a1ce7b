"""Extension points of the tasks, as typed ``Meta`` configs.

They never change a task's ID (they are ``Meta``): tracking where metrics are
mirrored, or which Optuna trial a training answers, does not change what is
trained.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from experimaestro import Config

if TYPE_CHECKING:
    from .metrics import Sink


class Tracking(Config):
    """Mirrors a task's metrics and events somewhere (interface)."""

    def sinks(self, task) -> list["Sink"]:
        """The sinks receiving ``task``'s metrics (called in the task process)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement sinks()")


class Trial(Config):
    """An Optuna trial answered by a training (interface)."""

    def should_prune(self, epoch: int, value: float) -> bool:
        """Report the validation ``value`` after ``epoch``; True to stop now."""
        raise NotImplementedError(f"{type(self).__name__} does not implement should_prune()")
