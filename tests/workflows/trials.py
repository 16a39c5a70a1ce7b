"""A stand-in for Tune's trial, for the tests. Kept in its own module: the
task process loads it from this file (so it imports only installed packages)."""

from experimaestro import Param

from xpm_train.hooks import Trial


class PruneAfter(Trial):
    """Prunes once ``epoch`` is reached."""

    epoch: Param[int]
    """Last epoch before pruning"""

    def should_prune(self, epoch: int, value: float) -> bool:
        return epoch >= self.epoch
