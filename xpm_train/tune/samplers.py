"""Samplers as typed configs (part of a study's content hash), and the seed
each run of a study gives its sampler (:func:`run_seed`)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Annotated

from experimaestro import Config, Param, field

from ..checks import NonNegative

if TYPE_CHECKING:
    import optuna


class Sampler(Config):
    """An Optuna sampler (interface: subclasses implement :meth:`create`)."""

    seed: Param[int] = field(default=0, ignore_default=True)
    """Seed of the sampler"""

    def create(self, seed: int) -> "optuna.samplers.BaseSampler":
        """The Optuna sampler, seeded with ``seed`` (the driver gives
        :func:`run_seed` of this config's ``seed``)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement create()")


def run_seed(seed: int, started: int, rank: int) -> int:
    """The seed of the sampler of one driver (plan process) of a study.

    ``started``: trials the study already had when the driver started;
    ``rank``: drivers of the study already running then. A new study driven
    alone uses ``seed`` itself (``seed + rank`` beside other drivers), so a
    study run in one go is reproducible. A study run again — resumed after a
    kill, or extended with a larger ``n_trials`` — gets a seed of its own:
    seeded alike, a sampler still in its random start-up phase would replay
    the first run's suggestions, and spend trials on configurations the study
    already has."""
    if started == 0:
        return seed + rank
    digest = hashlib.sha256(f"{seed}/{started}/{rank}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


class TPE(Sampler):
    """Tree-structured Parzen estimator (Optuna's default)."""

    n_startup_trials: Annotated[Param[int], NonNegative()] = field(default=10, ignore_default=True)
    """Random trials before the model is used"""

    multivariate: Param[bool] = field(default=True, ignore_default=True)
    """Model the parameters jointly (handles conditional entries with ``group``)"""

    constant_liar: Param[bool] = field(default=True, ignore_default=True)
    """Treat running trials as bad results so parallel trials explore apart"""

    def create(self, seed: int):
        import optuna

        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials,
                                          multivariate=self.multivariate, group=self.multivariate,
                                          constant_liar=self.constant_liar)


class Random(Sampler):
    """Independent uniform sampling."""

    def create(self, seed: int):
        import optuna

        return optuna.samplers.RandomSampler(seed=seed)
