"""The contract of a training task: what Tune, ``load``/``export`` and the launchers ask of it.

Learn, the task of a ``@training_function`` and LightningFit implement
:class:`TrainingTask`; so does any other training adapter (a Hugging Face
``Trainer``, say), in one file, without a line changed elsewhere
(docs/extending.md, "A training adapter")::

    class HFTrain(Task):
        training_kind: ClassVar[str] = "hf"
        ...
        def check_ranks(self, world_size): ...        # may it run on several ranks?
        def study_score(self): return "eval_loss", "minimize"
        def no_network_message(self, folder, name): ...
        def execute(self): ...                        # report(), save_network()

A Study, ``xpm_train.load(job).network``, ``xpm-train export`` and a
launcher whose spec asks for several ranks dispatch on these methods
(``isinstance(config, TrainingTask)``: the protocol is structural, no base
class to inherit). The job-folder side of the contract -- ``final.json`` (a
summary with ``score``/``score_metric``/``direction``), ``metrics.jsonl``,
``checkpoints/best.pt`` and ``data.json`` -- is written with
:func:`xpm_train.report` and :func:`xpm_train.trained.save_network`.

Importing this module imports nothing but the standard library (the
launchers use it at ``submit()``).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Optional, Protocol, runtime_checkable


@runtime_checkable
class RunsOnRanks(Protocol):
    """A task that may run on several ranks (processes): a launcher whose spec
    asks for ``processes=``/``nodes=`` calls :meth:`check_ranks` at ``submit()``
    (:mod:`xpm_train.launchers.ranks`); any other task is refused there."""

    def check_ranks(self, world_size: int) -> None:
        """Raise a :class:`~xpm_train.launchers.ranks.RanksSpecError` (what to
        change) when this config cannot run on ``world_size`` ranks."""


@runtime_checkable
class TrainingTask(RunsOnRanks, Protocol):
    """A task that trains a network and reports its score (see the module)."""

    training_kind: ClassVar[str]
    """Short name of the adapter (``learn``, ``function``, ``lightning``...)"""

    def study_score(self) -> tuple[str, Optional[str]]:
        """``(metric, direction)``: the key of the job's ``final.json`` a Study
        optimises by default, and ``maximize``/``minimize`` (None: from the
        metric's name). Called in the plan, on the config: reads Params only."""

    def no_network_message(self, folder: Path, name: str) -> str:
        """The one-line error of ``load(job).network`` and ``export`` for a
        job of this task (``name``: its class, ``folder``: its job folder) that
        left no ``checkpoints/best.pt``: what to change so that it does."""


def is_training_task(config) -> bool:
    """Whether ``config`` (a plan's config or a job's instance) is a :class:`TrainingTask`."""
    return isinstance(config, TrainingTask)
