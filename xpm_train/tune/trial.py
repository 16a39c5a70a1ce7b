"""OptunaTrial: the reference a Learn receives (as Meta) to the trial it answers.

In the Learn process, :meth:`OptunaTrial.should_prune` reports the validation
accuracy of each epoch to the study's journal file and asks the study's pruner
whether to stop. Steps are epochs done (1 after the first epoch).
"""

from __future__ import annotations

import logging
from typing import Any

from experimaestro import Param

from ..hooks import Trial
from .pruners import Pruner

logger = logging.getLogger("xpm_train.tune")


class OptunaTrial(Trial):
    """Trial ``number`` of study ``study_name`` stored in ``journal``.

    It is a Meta of Learn, so none of this changes the training's ID."""

    journal: Param[str]
    """Path of the study's journal file (``<workspace>/tune/<study>/journal.log``)"""

    study_name: Param[str]
    """Name of the study in the journal"""

    number: Param[int]
    """Number of the trial in the study"""

    pruner: Param[Pruner]
    """The study's pruner (rebuilt in the Learn process)"""

    def should_prune(self, epoch: int, value: float) -> bool:
        import optuna

        study, storage, trial_id = self._open()
        frozen = storage.get_trial(trial_id)
        if frozen.state.is_finished():
            # Already answered (e.g. the driver gave up on it): just train on
            logger.warning("trial %d of %s is already %s: not reporting", self.number, self.study_name,
                           frozen.state.name)
            return False
        step = epoch + 1
        trial = optuna.trial.Trial(study, trial_id)
        if step not in frozen.intermediate_values:  # a resumed Learn reports again
            trial.report(value, step)
        prune = bool(trial.should_prune())
        logger.info("trial %d: epoch %d value %.4f -> %s", self.number, step, value,
                    "prune" if prune else "continue")
        return prune

    def _open(self) -> tuple[Any, Any, int]:
        """The study (with its pruner), its storage and this trial's ID, loaded
        once (Optuna's public API: the storage is the one opened here)."""
        cached = self.__dict__.get("_xpm_train_study")
        if cached is None:
            import optuna

            from .storage import open_storage

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            storage = open_storage(self.journal)
            study = optuna.load_study(study_name=self.study_name, storage=storage,
                                      sampler=optuna.samplers.RandomSampler(), pruner=self.pruner.create())
            trial_id = storage.get_trial_id_from_study_id_trial_number(
                storage.get_study_id_from_name(self.study_name), self.number)
            cached = self.__dict__["_xpm_train_study"] = (study, storage, trial_id)
        return cached
