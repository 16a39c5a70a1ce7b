"""The ask/tell loop of a study, run inside a plan.

:func:`optimize` opens the study's journal in the workspace, keeps up to
``n_parallel`` trials in flight (each trained in full, or rung by rung with
``Study(scheduler=ASHA(...))``: :mod:`.asha`) until the study holds
``n_trials``, and returns the best trial as a :class:`TuneResult`. How a trial
is submitted, followed and told to Optuna (cached jobs, pruning, failures,
``Study.evaluate``, interrupted plans) is :mod:`.loop`'s.
"""

from __future__ import annotations

import concurrent.futures
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from .. import jobfolder
from .loop import Loop
from .samplers import run_seed
from .storage import DriverLock, open_storage, study_dir, trials_in, write_description
from .study import Study

if TYPE_CHECKING:
    from ..learn import Learn
    from ..models import LoadWeights
    from .task import Tune

logger = logging.getLogger("xpm_train.tune")


@dataclass
class TuneResult:
    """What :func:`optimize` returns to the plan."""

    study: Study
    journal: Path
    n_trials: int
    best_number: int
    best_value: float
    best_params: dict[str, Any]
    best_learn: "Learn"
    """The best trial's Learn config (submitted)"""
    best_model: "LoadWeights"
    """Its trained weights (the Learn's output, an init task)"""
    best_job: str
    """``<task>/<hash>`` of the best Learn job"""
    launched: list[str] = field(default_factory=list)
    """Job IDs submitted for new trials in this run"""
    recorded_n_trials: int = 0
    """``n_trials`` of the study's Tune task: the ``n_trials`` the study was run
    to when its best trial was first recorded (see :meth:`Loop.recorded_n_trials`)"""

    def task(self, tracking=None) -> "Tune":
        """The :class:`Tune` task recording this study (submit it; its output
        is the best model's weights, for ``Evaluate(...).submit(init_tasks=[...])``).
        With ``tracking`` (an MLflowTracking), the study is also an MLflow run
        whose children are the trials' Learn runs."""
        from ..reporting import own_kind
        from .study import StudyError
        from .task import Tune

        if own_kind(self.best_learn) is None:
            raise StudyError(f"the Tune task records a study of xpm-train training tasks (its output is the best "
                             f"trained network); the trials of {self.study.name} are "
                             f"{type(self.best_learn).__qualname__} jobs: use result.best_job, result.best_learn "
                             "and result.best_model (that job's output) instead")
        return Tune.C(study=self.study.name, n_trials=self.recorded_n_trials or self.n_trials, best=self.best_model,
                      metric=self.study.metric, journal=str(self.journal), best_job=self.best_job,
                      best_trial=self.best_number, tracking=tracking)


def optimize(study: Study, n_trials: int, *, n_parallel: int = 1, launcher=None,
             tags: Optional[dict[str, Any]] = None, enqueue: Optional[list[dict[str, Any]]] = None) -> TuneResult:
    """Run ``study`` until it holds ``n_trials`` trials (any state), with up
    to ``n_parallel`` Learn jobs in flight; returns the best trial.

    ``launcher``: where the Learn jobs run (e.g. ``find_launcher(spec)``);
    ``tags``: added to every trial's Learn (besides its values and number);
    ``enqueue``: ``{path: value}`` dicts tried first (once per study)."""
    import optuna
    from experimaestro.scheduler import experiment

    if n_trials < 1 or n_parallel < 1:
        raise ValueError(f"n_trials and n_parallel must be >= 1, got {n_trials} and {n_parallel}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    workspace = Path(experiment.current().workspace.path)
    journal = write_description(workspace, study.name, {"label": study.label, **study.content()})
    storage = open_storage(journal)
    lock = DriverLock(study_dir(workspace, study.name) / "drivers")
    try:
        seed = run_seed(study.sampler.seed, trials_in(storage, study.name), lock.rank)
        ostudy = optuna.create_study(study_name=study.name, storage=storage,
                                     sampler=study.sampler.create(seed), pruner=study.pruner.create(),
                                     direction=study.direction, load_if_exists=True)
        if ostudy.user_attrs.get("label") != study.label:
            ostudy.set_user_attr("label", study.label)
        for values in enqueue or []:
            ostudy.enqueue_trial(study.space.encode(values), skip_if_exists=True)
        loop = Loop(study, ostudy, storage, journal, lock, launcher, tags or {}, workspace)
        if study.scheduler is not None:
            from .asha import Ladder

            Ladder(loop, study.scheduler).run(n_trials, n_parallel)
        else:
            run_trials(loop, n_trials, n_parallel)
        loop.register_finished()
        return best_result(loop, n_trials)
    finally:
        lock.release()


def run_trials(loop: Loop, n_trials: int, n_parallel: int) -> None:
    """Keep ``n_parallel`` trials in flight until the study holds ``n_trials``, each trained in full
    (or stopped by the pruner)."""
    loop.adopt_interrupted()
    while True:
        while len(loop.in_flight) < n_parallel and loop.started() < n_trials:
            loop.ask()
        if not loop.in_flight:
            return
        done, _ = concurrent.futures.wait(list(loop.in_flight), return_when=concurrent.futures.FIRST_COMPLETED)
        for future in done:
            pending = loop.in_flight.pop(future)
            loop.answer(pending, future)
            logger.info("study %s: %s", loop.study.name, progress_line(loop.ostudy, pending.number, n_trials))


def best_result(loop: Loop, n_trials: int) -> TuneResult:
    """The study's best trial, its Learn submitted in this run (its output is the best model); fails
    when no trial completed."""
    try:
        best = loop.ostudy.best_trial
    except ValueError:
        states = summary(loop.ostudy)
        hint = f"see the failed jobs' logs (`xpm-train tune show {loop.study.name}`)"
        if loop.study.scheduler is not None:
            hint = loop.study.scheduler.no_best_hint(n_trials, hint)
        raise RuntimeError(f"study {loop.study.name}: no trial completed ({states}); {hint}") from None
    values = loop.study.space.decode(best.params)
    learn = loop.trial_learn(best.number, values)
    job_id = jobfolder.job_id(learn)
    if job_id in loop.outputs:  # submitted by this run: the same config and output
        learn = loop.outputs[job_id][0]
    model = loop.submit(learn)
    return TuneResult(study=loop.study, journal=loop.journal, n_trials=n_trials, best_number=best.number,
                      best_value=best.value, best_params=values, best_learn=learn, best_model=model,
                      best_job=job_id, launched=loop.launched,
                      recorded_n_trials=loop.recorded_n_trials(best.number, n_trials))


def progress_line(ostudy, number: int, n_trials: int) -> str:
    """``trial 7 PRUNED 0.81 | 8/20 finished (5 complete, 3 pruned, 0 failed), best 0.97``."""
    from ..summary import Direction

    trials = ostudy.get_trials(deepcopy=False)
    trial = trials[number]
    counts = {state: sum(t.state.name == state for t in trials) for state in ("COMPLETE", "PRUNED", "FAIL")}
    finished = sum(counts.values())
    value = f" {trial.value:.4f}" if trial.value is not None else ""
    complete = [t.value for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    best = ""
    if complete:
        best = f", best {Direction.of(ostudy.direction.name.lower()).best(complete, float):.4f}"
    return (f"trial {number} {trial.state.name}{value} | {finished}/{n_trials} finished "
            f"({counts['COMPLETE']} complete, {counts['PRUNED']} pruned, {counts['FAIL']} failed){best}")


def summary(ostudy) -> str:
    """``2 COMPLETE, 1 FAIL``: how many trials of the study are in each state."""
    counts: dict[str, int] = {}
    for trial in ostudy.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no trial"
