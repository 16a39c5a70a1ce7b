"""The trials of one driver: how a study's trials are asked, submitted as
Learn jobs, followed and told to Optuna (:class:`Loop`), and the futures that
wait for or follow a trial's job.

Each trial is a Learn config (the study's base with the sampled values)
submitted through experimaestro with an :class:`OptunaTrial` as Meta, so:

- a trial whose Learn job already finished (in any experiment, any study) is
  answered from that job's ``final.json``: nothing runs;
- the Learn process reports every epoch to the journal and stops when the
  pruner says so (``"pruned": true`` in ``final.json``);
- a failed job is a FAIL trial (it is not asked again by this loop);
- with ``Study(evaluate=True)``, a finished trial's Learn is followed by an
  Evaluate on the data it held out (cached too); the trial is told when
  that ends, and ``evaluate.<key>`` metrics can be the objective;
- a pruned job is a PRUNED trial; found again by a later trial or study, it
  is counted PRUNED again, with its last reported epoch as value, whatever
  that study's pruner would have said (the job is not trained further).

Interrupted plans: trials whose driver died (its lock file is free) are
adopted by the next driver: the same Learn is submitted again, so
experimaestro reuses it when done, resumes it from its last checkpoint
otherwise, or waits for it when it is still running.

:mod:`.driver` opens the study and runs these trials (:func:`~.driver.optimize`);
:mod:`.asha` runs them rung by rung through the same :class:`Loop`.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from .. import jobfolder
from ..jobfolder import FINAL, METRICS, RESULTS
from .storage import DriverLock
from .study import EVALUATE_PREFIX, Study
from .trial import OptunaTrial

if TYPE_CHECKING:
    import optuna
    from optuna.storages import JournalStorage

    from ..learn import Learn
    from ..models import LoadWeights

logger = logging.getLogger("xpm_train.tune")


@dataclass
class Pending:
    """A trial in flight: its number, values, Learn config and job folder."""

    number: int
    trial_id: int
    values: dict[str, Any]
    learn: "Learn"
    path: Path
    """The Learn job's folder"""
    output: Optional["LoadWeights"] = None
    """The Learn's output, when this driver submitted it"""
    evaluation: Optional[Path] = None
    """The folder of the trial's Evaluate job, once submitted (``Study.evaluate``)"""


class Loop:
    """State of one driver: the trials it has in flight."""

    def __init__(self, study: Study, ostudy: "optuna.Study", storage: "JournalStorage", journal: Path,
                 lock: DriverLock, launcher, tags, workspace: Path):
        self.study, self.ostudy, self.journal, self.workspace = study, ostudy, journal, workspace
        self.storage = storage
        """The study's storage, as opened (Optuna's public storage API: trial IDs, user attributes)"""
        self.study_id = storage.get_study_id_from_name(study.name)
        self.lock, self.launcher, self.tags = lock, launcher, tags
        self.in_flight: dict[concurrent.futures.Future, Pending] = {}
        self.launched: list[str] = []
        self.outputs: dict[str, tuple["Learn", "LoadWeights"]] = {}
        """Learn job ID -> (config, output) of every Learn this run submitted"""

    def trial_id(self, number: int) -> int:
        """The storage's ID of trial ``number`` (what its user attributes are set by)."""
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def started(self) -> int:
        """Trials of the study asked so far, by any driver (enqueued ones not
        yet asked do not count)."""
        import optuna

        waiting = optuna.trial.TrialState.WAITING
        return sum(t.state != waiting for t in self.ostudy.get_trials(deepcopy=False))

    def ask(self) -> None:
        trial = self.new_trial()
        values = self.study.space.sample(trial)
        self.launch(trial.number, self.trial_id(trial.number), values)

    def new_trial(self):
        """A new trial, recorded as this driver's before anything else (so that an
        interrupted trial can be adopted), in one hold of the submit lock: a
        RUNNING trial that another driver sees without a driver is one whose
        driver died between the two writes (:meth:`claim_orphans`)."""
        with self.lock.submitting():
            trial = self.ostudy.ask()
            trial.set_user_attr("driver", self.lock.id)
        return trial

    def claim_orphans(self) -> None:
        """Make this driver the driver of the RUNNING trials that have none (their
        driver was killed between asking and recording itself: seen in the chaos
        test, a trial left RUNNING for good): they are then adopted as interrupted."""
        import optuna

        with self.lock.submitting():
            for frozen in self.ostudy.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                if "driver" not in frozen.user_attrs:
                    self.storage.set_trial_user_attr(self.trial_id(frozen.number), "driver", self.lock.id)

    def adopt_interrupted(self) -> None:
        """Submit again the RUNNING trials of drivers that no longer run."""
        import optuna

        self.claim_orphans()
        for frozen in self.ostudy.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            driver = frozen.user_attrs.get("driver")
            if driver is None or not self.lock.take(driver):
                continue
            logger.info("Trial %d was interrupted (driver %s): submitting it again", frozen.number, driver)
            # Sampling again returns the values it already has (and samples
            # those a driver killed while sampling had not drawn yet)
            trial_id = self.trial_id(frozen.number)
            values = self.study.space.sample(optuna.trial.Trial(self.ostudy, trial_id))
            self.launch(frozen.number, trial_id, values)

    def launch(self, number: int, trial_id: int, values: dict[str, Any]) -> None:
        """Submit the trial's Learn, or follow it when another live driver of
        the study already runs that very configuration (two schedulers must
        not start the same job at the same moment)."""
        learn = self.trial_learn(number, values)
        learn.trial = OptunaTrial.C(journal=str(self.journal), study_name=self.study.name, number=number,
                                    pruner=self.study.pruner)
        job_id = jobfolder.job_id(learn)
        path = jobfolder.job_path(self.workspace, job_id)
        with self.lock.submitting():
            owner = self.running_elsewhere(job_id)
            self.storage.set_trial_user_attr(trial_id, "job", job_id)
            self.storage.set_trial_user_attr(trial_id, "driver", self.lock.id)  # adopted: now ours
        pending = Pending(number, trial_id, values, learn, path)
        if owner is not None:
            logger.info("Trial %d: same Learn as a trial of driver %s, following it", number, owner)
            self.in_flight[follow_in_thread(path, lambda: self.lock.alive(owner))] = pending
            return
        pending.output = self.submit(learn)
        self.launched.append(job_id)
        submitted = self.outputs[job_id][0]  # a trial of this run may have submitted the same job
        self.in_flight[wait_in_thread(submitted.__xpm__.job)] = pending

    def trial_learn(self, number: int, values: dict[str, Any]) -> "Learn":
        """The Learn config of a trial, tagged with the trial's values and number."""
        learn = self.study.space.apply(self.study.base, values)
        if self.study.scheduler is not None:  # a trial's Learn is its last rung's
            learn = self.study.scheduler.top(learn)
        for key, value in self.trial_tags(number, values).items():
            learn.tag(key, value)
        return learn

    def submit(self, learn: "Learn") -> "LoadWeights":
        """Submit a trial's Learn (once per run of the plan: a second submission
        of a job would be ignored by experimaestro, with a warning)."""
        job_id = jobfolder.job_id(learn)
        if job_id not in self.outputs:
            self.outputs[job_id] = (learn, learn.submit(launcher=self.launcher))
        return self.outputs[job_id][1]

    def register_finished(self) -> None:
        """Submit again, in this experiment, the finished trials' jobs that this
        run did not submit (trials of earlier runs, answered from cache).

        experimaestro 2.7 keeps tags per experiment run: a cached job that the
        latest run did not submit has no tags there, so `xpm-train results
        --experiment`, `experimaestro jobs list --tags` and the study's own
        views would lose every trial of earlier runs. Their jobs are done:
        submitting them runs nothing. Failed trials are left alone (submitting
        a failed job would run it again)."""
        import optuna

        finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        for trial in self.ostudy.get_trials(deepcopy=False, states=finished):
            job_id = trial.user_attrs.get("job")
            if job_id is None or job_id in self.outputs:
                continue
            if not jobfolder.is_done(jobfolder.job_path(self.workspace, job_id)):
                continue
            values = self.study.space.decode(trial.params)
            learn = self.trial_learn(trial.number, values)
            if jobfolder.job_id(learn) != job_id:  # the journal names another job: not ours to tag
                continue
            output = self.submit(learn)
            evaluation = trial.user_attrs.get("evaluation")
            if (self.study.evaluate and evaluation
                    and jobfolder.is_done(jobfolder.job_path(self.workspace, evaluation))):
                self.evaluation_of(trial.number, values, learn).submit(launcher=self.launcher,
                                                                       init_tasks=[output])

    def evaluation_of(self, number: int, values: dict[str, Any], learn: "Learn"):
        """The Evaluate of a trial (``Study.evaluate``) on the data its Learn held out, tagged like it."""
        from ..evaluate import Evaluate

        evaluation = Evaluate.C(model=learn.model, data=learn.held_out(), objective=learn.objective, device=learn.device,
                                tracking=learn.tracking)
        for key, value in self.trial_tags(number, values).items():
            evaluation.tag(key, value)
        return evaluation

    def recorded_n_trials(self, best_number: int, n_trials: int) -> int:
        """The ``n_trials`` of the Tune task for best trial ``best_number``: the
        ``n_trials`` of the run that first found it best (kept in the study's
        journal). A study extended without a better trial thus keeps its Tune
        job, and so the Evaluate of the best model: nothing runs again."""
        with self.lock.submitting():
            recorded = dict(self.ostudy.user_attrs.get(TUNE_N_TRIALS, {}))
            if str(best_number) not in recorded:
                recorded[str(best_number)] = n_trials
                self.ostudy.set_user_attr(TUNE_N_TRIALS, recorded)
        return int(recorded[str(best_number)])

    def trial_tags(self, number: int, values: dict[str, Any]) -> dict[str, Any]:
        """Tags of a trial's jobs: the plan's, the sampled values and its number."""
        tags = {key: value if isinstance(value, (int, float, str, bool)) else json.dumps(value)
                for key, value in {**self.tags, **values}.items()}
        return {**tags, "trial": number}

    def evaluate(self, pending: Pending) -> None:
        """Submit the trial's Evaluate on the data its Learn held out (a cached
        job like any other); the trial is answered when it ends."""
        learn = pending.learn
        output = pending.output if pending.output is not None else self.submit(learn)
        evaluation = self.evaluation_of(pending.number, pending.values, learn)
        evaluation.submit(launcher=self.launcher, init_tasks=[output])
        job = evaluation.__xpm__.job
        pending.evaluation = Path(job.path)
        self.storage.set_trial_user_attr(pending.trial_id, "evaluation", f"{job.task_id}/{job.identifier}")
        self.in_flight[wait_in_thread(job)] = pending

    def answer_evaluation(self, pending: Pending, future: concurrent.futures.Future) -> None:
        """Tell the study the trial's objective once its Evaluate ended."""
        import optuna

        from ..summary import flatten, read as read_summary

        results_path = pending.evaluation / RESULTS
        if future.exception() is not None or not results_path.exists():
            logger.warning("Trial %d: its Evaluate %s failed (log: %s)", pending.number,
                           pending.evaluation.name[:12], pending.evaluation)
            self.storage.set_trial_user_attr(pending.trial_id, "error", str(pending.evaluation))
            self.ostudy.tell(pending.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            return
        results = read_summary(pending.evaluation)
        metrics = flatten(read_summary(pending.path))
        metrics.update({EVALUATE_PREFIX + key: value for key, value in results.items()
                        if isinstance(value, (int, float)) and not isinstance(value, bool)})
        self.tell(pending, metrics, results_path)

    def tell(self, pending: Pending, metrics: dict[str, Any], source: Path) -> None:
        """Tell the study the objective found in ``metrics`` (FAIL when absent)."""
        import optuna

        value = metrics.get(self.study.metric)
        if value is None:
            self.storage.set_trial_user_attr(pending.trial_id, "error", f"no '{self.study.metric}' in {source}")
            self.ostudy.tell(pending.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            return
        self.ostudy.tell(pending.number, float(value), skip_if_finished=True)

    def running_elsewhere(self, job_id: str) -> Optional[str]:
        """The live driver (not this one) running a trial of ``job_id``, if any."""
        import optuna

        for trial in self.ostudy.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            driver = trial.user_attrs.get("driver")
            if trial.user_attrs.get("job") == job_id and driver not in self.lock.held and self.lock.alive(driver):
                return driver
        return None

    def answer(self, pending: Pending, future: concurrent.futures.Future) -> None:
        """Tell the study how the trial's Learn job ended."""
        import optuna

        from ..summary import flatten, read as read_summary

        if self.storage.get_trial(pending.trial_id).state.is_finished():
            return  # answered by another driver
        if pending.evaluation is not None:
            self.answer_evaluation(pending, future)
            return
        if future.exception() is None and future.result() == ORPHANED:
            self.launch(pending.number, pending.trial_id, pending.values)  # its driver died: run it here
            return
        final_path = pending.path / FINAL
        if future.exception() is not None or not final_path.exists() or not jobfolder.is_done(pending.path):
            logger.warning("Trial %d: job %s failed (log: %s)", pending.number, pending.path.name[:12],
                           pending.path)
            self.storage.set_trial_user_attr(pending.trial_id, "error", str(pending.path))
            self.ostudy.tell(pending.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            return
        final = read_summary(pending.path)
        self.report_history(pending, final)
        if final.get("pruned"):
            self.ostudy.tell(pending.number, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True)
            return
        if self.study.evaluate:
            self.evaluate(pending)
            return
        self.tell(pending, flatten(final), final_path)

    def report_history(self, pending: Pending, final: dict[str, Any]) -> None:
        """Fill the intermediate values the Learn did not report to this trial
        (a job trained for another trial or study), so pruners compare with it."""
        reported = self.storage.get_trial(pending.trial_id).intermediate_values
        for step, value in epoch_values(pending.path / METRICS, final.get("score_metric")).items():
            if step not in reported:
                self.storage.set_trial_intermediate_value(pending.trial_id, step, value)


TUNE_N_TRIALS = "tune_n_trials"
"""Study user attribute: best trial number -> ``n_trials`` of its Tune task"""


def wait_in_thread(job) -> concurrent.futures.Future:
    """A future set when ``job`` ends (a daemon thread waits for it, so an
    interrupted plan exits at once)."""
    future: concurrent.futures.Future = concurrent.futures.Future()

    def wait():
        try:
            future.set_result(job.wait())
        except BaseException as error:  # noqa: BLE001 - handed to the driver
            future.set_exception(error)

    threading.Thread(target=wait, name=f"tune-wait-{job.identifier[:8]}", daemon=True).start()
    return future


ORPHANED = "orphaned"


def follow_in_thread(path: Path, alive, poll_s: float = 2.0) -> concurrent.futures.Future:
    """A future set when the Learn job in ``path`` (run by another driver)
    ends, or to :data:`ORPHANED` when that driver died before it ended."""
    future: concurrent.futures.Future = concurrent.futures.Future()

    def follow():
        while jobfolder.finished_state(path) is None:
            if not alive():
                future.set_result(ORPHANED)
                return
            time.sleep(poll_s)
        future.set_result(None)

    threading.Thread(target=follow, name=f"tune-follow-{path.name[:8]}", daemon=True).start()
    return future


def epoch_values(metrics_path: Path, score_metric: Optional[str] = "val_accuracy") -> dict[int, float]:
    """``{epochs done: score}`` from a Learn's ``metrics.jsonl`` (validation
    rows, or training rows when there is no validation split); ``score_metric``
    is the summary's (``val_mse``...). Empty for a job that logs no such rows
    (a training function reports its own values through ``ctx.should_prune``)."""
    from ..metrics import metric_names, read_metrics
    from ..summary import key

    if not metrics_path.exists() or not score_metric:
        return {}
    rows = read_metrics(metrics_path)
    split = "val" if any(r.get("split") == "val" for r in rows) else "train"
    return {int(r["epoch"]) + 1: float(r[name]) for r in rows if r.get("split") == split
            for name in metric_names(r) if score_metric in (name, key(split, name))
            and isinstance(r[name], (int, float))}
