"""Pruners as typed configs: built in the plan (to create the study) and in
every Learn process (to answer ``should_prune``), so they must be plain data.

Steps are epochs done (1 after the first epoch), so ``n_warmup_steps=2``
never prunes before the end of the third epoch and ``max_resource`` is the
number of epochs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from experimaestro import Config, Param, field

from ..checks import NonNegative, Positive

if TYPE_CHECKING:
    import optuna


class Pruner(Config):
    """An Optuna pruner (interface: subclasses implement :meth:`create`)."""

    def create(self) -> "optuna.pruners.BasePruner":
        raise NotImplementedError(f"{type(self).__name__} does not implement create()")


class NoPruner(Pruner):
    """Never prune: every trial trains to its last epoch."""

    def create(self):
        import optuna

        return optuna.pruners.NopPruner()


class MedianPruner(Pruner):
    """Prune a trial whose value is worse than the median of the previous
    trials at the same epoch."""

    n_startup_trials: Annotated[Param[int], NonNegative()] = field(default=5, ignore_default=True)
    """No pruning until this many trials have finished"""

    n_warmup_steps: Annotated[Param[int], NonNegative()] = field(default=0, ignore_default=True)
    """No pruning before this many epochs of a trial are done"""

    n_min_trials: Annotated[Param[int], Positive()] = field(default=1, ignore_default=True)
    """Minimum number of trials reported at an epoch to compare with"""

    def create(self):
        import optuna

        return optuna.pruners.MedianPruner(n_startup_trials=self.n_startup_trials,
                                           n_warmup_steps=self.n_warmup_steps,
                                           n_min_trials=self.n_min_trials)


class SuccessiveHalving(Pruner):
    """Asynchronous successive halving: at each rung only the top
    ``1/reduction_factor`` of the trials go on."""

    min_resource: Annotated[Param[int], Positive()] = field(default=1, ignore_default=True)
    """Epochs of the first rung"""

    reduction_factor: Annotated[Param[int], Positive()] = field(default=4, ignore_default=True)
    """Keep 1 / reduction_factor of the trials at each rung"""

    min_early_stopping_rate: Annotated[Param[int], NonNegative()] = field(default=0, ignore_default=True)
    """Skip this many rungs before pruning"""

    def create(self):
        import optuna

        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=self.min_resource, reduction_factor=self.reduction_factor,
            min_early_stopping_rate=self.min_early_stopping_rate)


class Hyperband(Pruner):
    """Hyperband: several successive-halving brackets."""

    max_resource: Annotated[Param[int], Positive()]
    """Epochs of a full training (Learn's ``epochs``); must be explicit since
    every Learn process builds its own pruner"""

    min_resource: Annotated[Param[int], Positive()] = field(default=1, ignore_default=True)
    """Epochs of the first rung"""

    reduction_factor: Annotated[Param[int], Positive()] = field(default=3, ignore_default=True)
    """Keep 1 / reduction_factor of the trials at each rung"""

    def create(self):
        import optuna

        return optuna.pruners.HyperbandPruner(min_resource=self.min_resource, max_resource=self.max_resource,
                                              reduction_factor=self.reduction_factor)
