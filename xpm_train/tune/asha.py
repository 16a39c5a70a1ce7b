"""ASHA: asynchronous successive halving that pauses trials and promotes them later.

``Study(scheduler=ASHA(min_epochs=1, max_epochs=27, eta=3))``: every trial
trains rung by rung, ``min_epochs * eta**k`` epochs (the last rung:
``max_epochs``), each rung a Learn job with ``horizon=max_epochs`` and
``epochs`` the rung, which continues the job of the rung below it
(:mod:`xpm_train.budget`: no epoch is trained twice). When a slot is free, the
driver promotes the best trial among the top ``1/eta`` of a rung (highest
rung first) that has not gone further yet, else it asks Optuna for a new
configuration (Li et al. 2018, "A System for Massively Parallel
Hyperparameter Tuning"); no slot waits for a rung to fill.

What Optuna's storage holds (``optuna.load_study`` on the journal reads it):

- each rung's value is an intermediate value of the trial at step = the rung's
  epochs (``trial.intermediate_values == {1: .., 3: .., 9: ..}``);
- a trial that reached ``max_epochs`` is COMPLETE with its top rung's value;
- a paused trial (not promoted yet, maybe never) stays RUNNING: Optuna has no
  paused state, and a finished trial cannot be reported to again, which a
  later promotion (a study extended with more trials) needs. Its user attr
  ``asha_epochs`` is the budget of the rung job it was last given, ``job``
  that job's ID.

A run of the plan rebuilds this state from the journal alone: trials of a
driver that died are taken over (their lock is free); a rung job in flight
then is submitted again (experimaestro reuses it when done, resumes it from
its checkpoint otherwise), and a rung job done but not recorded is read back.
"""

from __future__ import annotations

import concurrent.futures
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from .. import jobfolder
from .study import StudyError

if TYPE_CHECKING:
    from .loop import Loop

logger = logging.getLogger("xpm_train.tune")

EPOCHS_ATTR = "asha_epochs"
"""Trial user attribute: the budget (epochs) of the rung job it was last given"""


@dataclass(frozen=True)
class ASHA:
    """Asynchronous successive halving over rungs of ``min_epochs * eta**k`` epochs up to ``max_epochs``."""

    min_epochs: int = 1
    """Epochs of the first rung (every new configuration trains that long)"""

    max_epochs: int = 27
    """Epochs of the last rung (the schedule's horizon of every trial's Learn)"""

    eta: int = 3
    """Reduction factor: the top ``1/eta`` of a rung is promoted to the next"""

    def __post_init__(self):
        for name in ("min_epochs", "max_epochs", "eta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise StudyError(f"ASHA: {name}={value!r} must be an integer")
        if self.min_epochs < 1:
            raise StudyError(f"ASHA: min_epochs={self.min_epochs} must be at least 1")
        if self.min_epochs > self.max_epochs:
            raise StudyError(f"ASHA: min_epochs={self.min_epochs} is above max_epochs={self.max_epochs}: no rung "
                             "fits; lower min_epochs or raise max_epochs")
        if self.eta < 2:
            raise StudyError(f"ASHA: eta={self.eta} must be at least 2 (each rung keeps the top 1/eta of the one "
                             "below it)")

    @classmethod
    def parse(cls, spec) -> Optional["ASHA"]:
        """``[min_epochs, max_epochs, eta]`` (a plan's params.yaml) as an ASHA; empty: None."""
        if not spec:
            return None
        if not isinstance(spec, (list, tuple)) or len(spec) != 3:
            raise StudyError(f"asha: give [min_epochs, max_epochs, eta], e.g. [1, 27, 3], got {spec!r}")
        return cls(*spec)

    @property
    def rungs(self) -> list[int]:
        """Epochs of each rung, increasing: ``min_epochs * eta**k`` below ``max_epochs``, then ``max_epochs``."""
        rungs, epochs = [], self.min_epochs
        while epochs < self.max_epochs:
            rungs.append(epochs)
            epochs *= self.eta
        return rungs + [self.max_epochs]

    def content(self) -> dict[str, Any]:
        """What the study's name covers."""
        return {"asha": {"min_epochs": self.min_epochs, "max_epochs": self.max_epochs, "eta": self.eta}}

    def check(self, study) -> None:
        """Refuse a study whose trials cannot train rung by rung."""
        base = study.base
        if getattr(base, "training_kind", None) in ("function", "lightning"):
            from ..budget import task_name

            raise StudyError(f"ASHA: trials of {task_name(base)} are not supported yet (a Learn's only); use a "
                             "pruner instead (Study(pruner=...))")
        if not hasattr(base, "horizon"):
            raise StudyError(f"ASHA: the trials' {type(base).__qualname__} has no horizon (only Learn can continue "
                             "a shorter run); use a pruner instead (Study(pruner=...))")
        if base.horizon not in (None, self.max_epochs):
            raise StudyError(f"ASHA: the base Learn's horizon={base.horizon} differs from max_epochs="
                             f"{self.max_epochs}; leave horizon unset (ASHA sets it) or make them equal")
        varied = {entry.path for entry in study.space.entries} & {"epochs", "horizon"}
        if varied:
            raise StudyError(f"ASHA: the space varies {sorted(varied)}, which ASHA sets (the rung's budget); "
                             "remove it from the space")
        if study.evaluate:
            raise StudyError("ASHA: Study(evaluate=True) is not supported with a scheduler yet; "
                             f"use a {jobfolder.FINAL} metric")

    def no_best_hint(self, n_trials: int, failed_hint: str) -> str:
        """What to do when no trial reached ``max_epochs`` (RUNNING: paused ones)."""
        return (f"no trial reached max_epochs={self.max_epochs} (the RUNNING ones are paused at a lower rung): "
                f"raise n_trials above {n_trials} (about eta**{len(self.rungs) - 1}="
                f"{self.eta ** (len(self.rungs) - 1)} trials let one reach the top) and run the plan again, "
                f"nothing done is retrained; for FAIL trials {failed_hint}")

    def top(self, learn):
        """``learn`` (a trial's config) at the last rung."""
        learn.horizon, learn.epochs = self.max_epochs, self.max_epochs
        return learn


@dataclass
class Rung:
    """A rung job in flight: its trial and budget."""

    number: int
    trial_id: int
    values: dict[str, Any]
    epochs: int
    path: Any


class Ladder:
    """One driver's ASHA loop over the trials of ``loop``'s study."""

    def __init__(self, loop: "Loop", asha: ASHA):
        self.loop, self.asha = loop, asha
        self.in_flight: dict[concurrent.futures.Future, Rung] = {}
        self.resume: list[tuple[int, int, dict[str, Any], int]] = []

    @property
    def ostudy(self):
        return self.loop.ostudy

    def run(self, n_trials: int, n_parallel: int) -> None:
        """Fill ``n_parallel`` slots until no trial can be promoted and the study holds ``n_trials``."""
        self.take_over()
        while True:
            while len(self.in_flight) < n_parallel:
                work = self.next_work(n_trials)
                if work is None:
                    break
                self.launch(*work)
            if not self.in_flight:
                self.register_rungs()
                return
            done, _ = concurrent.futures.wait(list(self.in_flight), return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                self.answer(self.in_flight.pop(future), future)

    def register_rungs(self) -> None:
        """Submit again, in this experiment, every recorded rung job that this
        run did not submit (done: nothing runs), so that it keeps its trial's
        tags in this run's views (see :meth:`Loop.register_finished`)."""
        for trial in self.ostudy.get_trials(deepcopy=False):
            for epochs in sorted(trial.intermediate_values):
                learn = self.loop.trial_learn(trial.number, self.loop.study.space.decode(trial.params))
                learn.epochs = epochs
                job_id = jobfolder.job_id(learn)
                if job_id not in self.loop.outputs and jobfolder.is_done(jobfolder.job_path(self.loop.workspace,
                                                                                            job_id)):
                    self.loop.submit(learn)

    def ours(self, trial) -> bool:
        """Whether this driver may run ``trial`` (its driver is this one, or died)."""
        driver = trial.user_attrs.get("driver")
        return driver is not None and self.loop.lock.take(driver)

    def take_over(self) -> None:
        """Trials of drivers that died: their rung job in flight is submitted
        again; a top rung recorded but not told is told."""
        import optuna

        self.loop.claim_orphans()
        for trial in self.ostudy.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if not self.ours(trial):
                continue
            epochs = trial.user_attrs.get(EPOCHS_ATTR)
            if epochs is not None and epochs in trial.intermediate_values:
                if epochs == self.asha.max_epochs:
                    self.ostudy.tell(trial.number, trial.intermediate_values[epochs], skip_if_finished=True)
                continue  # paused
            try:
                values = self.loop.study.space.decode(trial.params)
            except Exception as error:  # noqa: BLE001 - asked, never sampled in full
                logger.warning("Trial %d was interrupted before its values were sampled (%s)", trial.number, error)
                self.ostudy.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
                continue
            logger.info("Trial %d was interrupted in its %s-epoch rung: submitting it again", trial.number,
                        epochs or self.asha.rungs[0])
            self.resume.append((trial.number, self.loop.trial_id(trial.number), values, epochs or self.asha.rungs[0]))

    def next_work(self, n_trials: int) -> Optional[tuple[int, int, dict[str, Any], int]]:
        """What a free slot runs: an interrupted rung, a promotion, or a new configuration."""
        if self.resume:
            return self.resume.pop(0)
        promoted = self.promotion()
        if promoted is not None:
            return promoted
        if self.loop.started() >= n_trials:
            return None
        trial = self.loop.new_trial()
        return trial.number, self.loop.trial_id(trial.number), self.loop.study.space.sample(trial), self.asha.rungs[0]

    def promotion(self) -> Optional[tuple[int, int, dict[str, Any], int]]:
        """The best paused trial of the top ``1/eta`` of the highest rung that has one."""
        import optuna

        trials = [t for t in self.ostudy.get_trials(deepcopy=False)
                  if t.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.COMPLETE)]
        busy = {rung.number for rung in self.in_flight.values()}
        maximize = self.ostudy.direction == optuna.study.StudyDirection.MAXIMIZE
        rungs = self.asha.rungs
        for k in range(len(rungs) - 2, -1, -1):
            reached = [t for t in trials if rungs[k] in t.intermediate_values]
            reached.sort(key=lambda t: t.intermediate_values[rungs[k]], reverse=maximize)
            for trial in reached[:len(reached) // self.asha.eta]:
                if (trial.state == optuna.trial.TrialState.RUNNING and trial.number not in busy
                        and trial.user_attrs.get(EPOCHS_ATTR) == rungs[k] and self.ours(trial)):
                    values = self.loop.study.space.decode(trial.params)
                    logger.info("Trial %d promoted from %d to %d epochs", trial.number, rungs[k], rungs[k + 1])
                    return trial.number, self.loop.trial_id(trial.number), values, rungs[k + 1]
        return None

    def launch(self, number: int, trial_id: int, values: dict[str, Any], epochs: int) -> None:
        """Submit the trial's Learn at budget ``epochs`` (it continues its shorter rung)."""
        from .loop import wait_in_thread

        learn = self.loop.trial_learn(number, values)
        learn.epochs = epochs
        job_id = jobfolder.job_id(learn)
        storage = self.loop.storage
        with self.loop.lock.submitting():
            storage.set_trial_user_attr(trial_id, EPOCHS_ATTR, epochs)
            storage.set_trial_user_attr(trial_id, "job", job_id)
            storage.set_trial_user_attr(trial_id, "driver", self.loop.lock.id)
        path = jobfolder.job_path(self.loop.workspace, job_id)
        if not jobfolder.is_done(path):
            self.loop.launched.append(job_id)
        self.loop.submit(learn)
        submitted = self.loop.outputs[job_id][0]
        self.in_flight[wait_in_thread(submitted.__xpm__.job)] = Rung(number, trial_id, values, epochs, path)

    def answer(self, rung: Rung, future: concurrent.futures.Future) -> None:
        """Record the rung's value (an intermediate value at step = its epochs); the top rung completes the trial."""
        import math

        import optuna

        from ..summary import flatten, read as read_summary

        storage = self.loop.storage
        value = None
        if future.exception() is None and jobfolder.is_done(rung.path) and (rung.path / jobfolder.FINAL).exists():
            value = flatten(read_summary(rung.path)).get(self.loop.study.metric)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            logger.warning("Trial %d: its %d-epoch rung %s gave no '%s' (log: %s)", rung.number, rung.epochs,
                           rung.path.name[:12], self.loop.study.metric, rung.path)
            storage.set_trial_user_attr(rung.trial_id, "error", str(rung.path))
            self.ostudy.tell(rung.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            return
        if rung.epochs not in storage.get_trial(rung.trial_id).intermediate_values:
            storage.set_trial_intermediate_value(rung.trial_id, rung.epochs, float(value))
        logger.info("Trial %d: %d epochs, %s = %.4f", rung.number, rung.epochs, self.loop.study.metric, value)
        if rung.epochs == self.asha.max_epochs:
            self.ostudy.tell(rung.number, float(value), skip_if_finished=True)
