"""Samplers as typed configs (part of a study's content hash)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from experimaestro import Config, Param, field

from ..checks import NonNegative

if TYPE_CHECKING:
    import optuna


class Sampler(Config):
    """An Optuna sampler (interface: subclasses implement :meth:`create`)."""

    seed: Param[int] = field(default=0, ignore_default=True)
    """Seed of the sampler"""

    def create(self, offset: int = 0) -> "optuna.samplers.BaseSampler":
        """The sampler, seeded with ``seed + offset`` (drivers running the same
        study at once use different offsets, so they do not draw alike)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement create()")


class TPE(Sampler):
    """Tree-structured Parzen estimator (Optuna's default)."""

    n_startup_trials: Annotated[Param[int], NonNegative()] = field(default=10, ignore_default=True)
    """Random trials before the model is used"""

    multivariate: Param[bool] = field(default=True, ignore_default=True)
    """Model the parameters jointly (handles conditional entries with ``group``)"""

    constant_liar: Param[bool] = field(default=True, ignore_default=True)
    """Treat running trials as bad results so parallel trials explore apart"""

    def create(self, offset: int = 0):
        import optuna

        return optuna.samplers.TPESampler(seed=self.seed + offset, n_startup_trials=self.n_startup_trials,
                                          multivariate=self.multivariate, group=self.multivariate,
                                          constant_liar=self.constant_liar)


class Random(Sampler):
    """Independent uniform sampling."""

    def create(self, offset: int = 0):
        import optuna

        return optuna.samplers.RandomSampler(seed=self.seed + offset)
