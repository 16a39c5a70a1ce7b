"""LightningFit: a LightningModule trained by Lightning's ``Trainer`` as a
content-addressed, resumable task.

Params (they make the job ID): the module and data module configs, the seed,
and the trainer options that change results (``max_epochs``, ``max_steps``,
``limit_*_batches``, ``precision``, gradient clipping and accumulation, what
"best" means, your ``callbacks``). Meta: where and how it runs (accelerator,
devices, logging intervals, progress bar, your ``observers`` and ``loggers``,
tracking, trial).

Job folder::

    metrics.jsonl         every self.log(...) of the module (JobLogger)
    events.jsonl          start / resume / checkpoint / preempted / pruned / end / error
    checkpoints/last.ckpt Lightning's checkpoint of the last epoch (atomic, checksummed), RNG states
    checkpoints/best.pt   the weights with the best ``monitor`` (what load() and export read)
    final.json            final and best metrics, best epoch, epochs, steps, wall time, pruned[, test]
    user-checkpoints/     where your own ModelCheckpoint writes when it has no dirpath
    loggers/              the folder given to your LoggerConfigs

A job killed or preempted (SIGTERM/SIGUSR1) is run again by experimaestro and
resumes from ``last.ckpt``; on the CPU it ends with the weights of an
uninterrupted run. A launcher spec asking for ``processes=K`` (``nodes=M``)
runs the job on K (x M) ranks through Lightning's DDP, started by xpm-train's
launcher (:mod:`.ddp`); only rank 0 writes the job folder. See docs/lightning.md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, ClassVar, Optional

from experimaestro import Constant, Meta, Param, PathGenerator, ResumableTask, field

from .. import jobfolder
from ..checks import NonNegative, OneOf, Positive, validated
from ..hooks import Tracking, Trial
from ..jobfolder import LOGGERS, USER_CHECKPOINTS
from .configs import (CallbackConfig, DataModuleConfig, LoggerConfig, ModuleConfig, build_checked,
                      require_lightning)
from .options import (DEVICES_HINT, PRECISIONS, BatchLimit, MaxSteps, PrecisionError, batch_limit,
                      precision_problem, trainer_precision_problem)

logger = logging.getLogger("xpm_train.lightning")

@validated
class LightningFit(ResumableTask):
    """Fit ``module`` on ``datamodule`` with Lightning's ``Trainer``."""

    module: Param[ModuleConfig]
    """The LightningModule to train (its constructor arguments are the config's Params)"""

    datamodule: Param[DataModuleConfig]
    """The LightningDataModule giving the training and validation (and test) data"""

    max_epochs: Annotated[Param[int], Positive()] = field(default=10, ignore_default=True)
    """Number of passes over the training data (``Trainer(max_epochs=...)``)"""

    horizon: Param[Optional[int]] = field(default=None, ignore_default=True)
    """Epochs the schedule spans: ``Trainer(max_epochs=horizon)``, so that
    ``trainer.max_epochs`` and ``estimated_stepping_batches`` give the module
    the horizon, and the run stops after ``max_epochs`` (its budget, at most
    ``horizon``); a larger budget continues the done run of a smaller one
    (prefix budgets, :mod:`xpm_train.budget`). None: ``max_epochs``"""

    prefixes: Meta[Optional[list[str]]] = field(default=None, ignore_default=True)
    """Set by the plan when ``horizon`` is set, not by hand: the IDs of this
    config with each smaller ``max_epochs``, the runs it may continue"""

    __xpm_train_budget__: ClassVar[str] = "max_epochs"

    seed: Param[int] = field(default=0, ignore_default=True)
    """Seed of the initialisation, the sample order and dropout (``seed_everything``)"""

    precision: Annotated[Param[str], OneOf(*PRECISIONS)] = field(default="32-true", ignore_default=True)
    """``Trainer(precision=...)``: it changes results, so it is a Param"""

    gradient_clip_val: Annotated[Param[float], NonNegative()] = field(default=0.0, ignore_default=True)
    """Clip gradients to this value (0: no clipping)"""

    gradient_clip_algorithm: Annotated[Param[str], OneOf("norm", "value")] = field(default="norm",
                                                                                   ignore_default=True)
    """Clip the gradients' ``norm`` or each ``value``"""

    accumulate_grad_batches: Annotated[Param[int], Positive()] = field(default=1, ignore_default=True)
    """Accumulate the gradients of this many batches per optimizer step"""

    monitor: Param[str] = field(default="val_accuracy", ignore_default=True)
    """Metric logged by the module that picks the best epoch (``best.pt``),
    and that is reported to the Optuna trial under Tune"""

    mode: Annotated[Param[str], OneOf("max", "min")] = field(default="max", ignore_default=True)
    """Whether ``monitor`` is better when higher (``max``) or lower (``min``)"""

    test: Param[bool] = field(default=False, ignore_default=True)
    """After fitting, run ``Trainer.test`` with the best weights (the data
    module's ``test_dataloader``); its metrics go to ``final.json`` under ``test``"""

    max_steps: Annotated[Param[Optional[int]], MaxSteps()] = field(default=None, ignore_default=True)
    """Stop after this many optimizer steps, or at ``max_epochs``, whichever
    comes first (``Trainer(max_steps=...)``; None: no step limit)"""

    limit_train_batches: Annotated[Param[Optional[float]], BatchLimit()] = field(default=None,
                                                                                 ignore_default=True)
    """Training batches per epoch (``Trainer(limit_train_batches=...)``): a
    fraction of the epoch in (0, 1), or a whole number of batches (``1``: one
    batch, unlike Lightning's float ``1.0``); None: all of them"""

    limit_val_batches: Annotated[Param[Optional[float]], BatchLimit(zero=True)] = field(default=None,
                                                                                        ignore_default=True)
    """Validation batches per validation run (``Trainer(limit_val_batches=...)``),
    as ``limit_train_batches``; 0: no validation (``monitor`` must then be a training metric)"""

    callbacks: Param[list[CallbackConfig]] = field(default=[], ignore_default=True)
    """Your Lightning callbacks that change results (``EarlyStopping``,
    ``StochasticWeightAveraging``, a schedule...), built by their configs, after the task's own"""

    observers: Meta[list[CallbackConfig]] = field(default=[], ignore_default=True)
    """Your Lightning callbacks that only watch (``LearningRateMonitor``, a
    timer, a printer): they must not change results (same job ID)"""

    loggers: Meta[list[LoggerConfig]] = field(default=[], ignore_default=True)
    """Lightning loggers besides the job's own (``CSVLogger``, TensorBoard...),
    built by their configs with the folder ``<job>/loggers``"""

    accelerator: Meta[str] = field(default="auto", ignore_default=True)
    """``Trainer(accelerator=...)``: ``auto`` (a GPU when present), ``cpu``, ``gpu``..."""

    devices: Annotated[Meta[int], OneOf(1, hint=DEVICES_HINT)] = field(default=1, ignore_default=True)
    """Always 1: several devices are asked for in the launcher spec
    (``processes=K``, one rank per device, ``nodes=M`` on Slurm), and each rank
    then runs ``Trainer(strategy="ddp", devices=K, num_nodes=M)``"""

    log_every_n_steps: Annotated[Meta[int], Positive()] = field(default=50, ignore_default=True)
    """Log step-level metrics every this many steps"""

    num_sanity_val_steps: Meta[int] = field(default=0, ignore_default=True)
    """Validation batches run before training (Lightning runs them with the
    RNG isolated: no effect on results)"""

    enable_progress_bar: Meta[bool] = field(default=False, ignore_default=True)
    """Lightning's progress bar (off: job logs stay readable)"""

    deterministic: Meta[bool] = field(default=False, ignore_default=True)
    """``Trainer(deterministic=True)``: deterministic CUDA algorithms (CPU runs are always reproducible)"""

    tracking: Meta[Optional[Tracking]] = field(default=None, ignore_default=True)
    """Where metrics are mirrored besides the job folder (e.g. MLflow)"""

    trial: Meta[Optional[Trial]] = field(default=None, ignore_default=True)
    """The Optuna trial this training answers (set by Tune): ``monitor`` is
    reported every epoch and training stops when the trial is pruned"""

    checkpoints: Meta[Path] = field(default_factory=PathGenerator("checkpoints"))
    """Folder of ``last.ckpt`` and ``best.pt``"""

    metrics_path: Meta[Path] = field(default_factory=PathGenerator(jobfolder.METRICS))
    """Metrics, one JSON object per line"""

    events_path: Meta[Path] = field(default_factory=PathGenerator(jobfolder.EVENTS))
    """Events, one JSON object per line"""

    final_path: Meta[Path] = field(default_factory=PathGenerator(jobfolder.FINAL))
    """Summary written at the end"""

    version: Constant[str] = "1"
    """Bumped only to invalidate previous trainings on purpose"""

    def __validate__(self):
        """Refuse at submit a precision that would run as another one (16-mixed on a CPU)."""
        problem = precision_problem(self.precision, self.accelerator)
        if problem:
            raise PrecisionError(problem)
        from .. import budget

        budget.plan(self)  # a budget beyond the horizon; the runs a larger budget may continue

    def execute(self):
        from ..runtime import PreemptionFlag

        # From the start SIGTERM/SIGUSR1 are caught: Slurm may warn up to a minute
        # early, while Lightning imports and the data loads (SIGUSR1 would kill the
        # job uncaught); they stop the training after its first step
        with PreemptionFlag() as stop:
            self._fit(stop)

    def _fit(self, stop):
        require_lightning()
        import lightning.pytorch as pl

        from .. import atomic, budget, checkpoint, distributed, summary as summaries
        from ..metrics import lifecycle, open_log
        from . import ddp
        from .callbacks import STATE_KEY, JobCheckpoint, JobCheckpointIO, Preemption, StopAtBudget, TrialPruning
        from .logger import JobLogger

        # --- One process, or this process's rank of a job the launcher gave
        # several (rank 0 of a local job starts the others now): Lightning
        # adopts them, it spawns nothing, and picks the device itself
        info, followers = distributed.start_followers(distributed.rank_info())
        ranks = distributed.Ranks(info, device=None, followers=followers)
        if ranks.distributed:
            parallel, environments = ddp.trainer_arguments(info), []
        else:
            parallel, environments = {"devices": self.devices}, one_process_plugins()

        # --- The job folder (only rank 0 writes it): logger, last checkpoint (if any)
        last_path = self.checkpoints / jobfolder.LAST_LIGHTNING
        if ranks.is_main:
            atomic.remove_stale_temporaries(self.checkpoints)
        # a smaller budget's run becomes this job's last.ckpt, and its metrics.jsonl (before the log opens it)
        prefix = budget.continuation(self, ranks, last_path)
        extent = budget.summary_fields(self, prefix)
        log = open_log(self, ranks)
        state = checkpoint.load_latest(
            last_path,
            on_corrupt=lambda path, error: log.event("corrupt_checkpoint", path=str(path), error=str(error)),
        )
        resumed = state.get(STATE_KEY) if state is not None else None
        if resumed is not None:
            log.elapsed_offset = resumed["run"]["elapsed"]

        # --- The user's module and data, built from their configs
        for config in (self.module, self.datamodule):
            beside_config_module(type(config))
        pl.seed_everything(self.seed, workers=True, verbose=False)
        module = build_checked(self.module, self.module.module)
        datamodule = build_checked(self.datamodule, self.datamodule.datamodule)
        count = {"ranks": ranks.world_size} if ranks.distributed else {}
        if state is None or prefix is not None:
            kind, details = "start", dict(module=type(module).__qualname__,
                                          datamodule=type(datamodule).__qualname__, max_epochs=self.max_epochs,
                                          **count, **extent)
        else:
            kind, details = "resume", dict(epoch=state.get("epoch"), step=state.get("global_step"), **count)
            logger.info("Resuming at epoch %s (step %s)", state.get("epoch"), state.get("global_step"))

        # --- The trainer, with the job's logger, checkpoints, preemption and pruning
        # (the lifecycle writes start/resume, then end, or error on a failure)
        with lifecycle(log, ranks, kind, **details) as job:
            folder = self.final_path.parent
            saver = JobCheckpoint(self.checkpoints, self.monitor, self.mode, log, resumed,
                                  user_checkpoints=folder / USER_CHECKPOINTS)
            preemption = Preemption(log, stop)
            pruning = TrialPruning(self.trial, self.monitor, log) if self.trial is not None else None
            own = [saver, preemption] + ([pruning] if pruning else [])
            own += [StopAtBudget(self.max_epochs)] if self.horizon is not None else []
            job_logger = JobLogger(log)
            trainer = pl.Trainer(
                max_epochs=budget.horizon_of(self),  # the schedule's span; StopAtBudget stops at max_epochs
                max_steps=self.max_steps if self.max_steps is not None else -1,
                limit_train_batches=batch_limit(self.limit_train_batches),
                limit_val_batches=batch_limit(self.limit_val_batches),
                precision=self.precision,
                gradient_clip_val=self.gradient_clip_val or None,
                gradient_clip_algorithm=self.gradient_clip_algorithm,
                accumulate_grad_batches=self.accumulate_grad_batches,
                accelerator=self.accelerator,
                **parallel,  # devices (and DDP's strategy and num_nodes on several ranks)
                deterministic=self.deterministic or None,
                log_every_n_steps=self.log_every_n_steps,
                num_sanity_val_steps=self.num_sanity_val_steps,
                enable_progress_bar=self.enable_progress_bar,
                enable_model_summary=False,
                enable_checkpointing=True,  # JobCheckpoint (a Checkpoint: no default ModelCheckpoint is added)
                logger=[job_logger, *(config.logger(folder / LOGGERS) for config in self.loggers)],
                callbacks=own + [config.callback() for config in (*self.callbacks, *self.observers)],
                plugins=[JobCheckpointIO(self.checkpoints, resume_state=state), *environments],
                default_root_dir=str(folder),
            )
            job_logger.trainer = trainer  # the epoch and step of self.logger.experiment's points
            problem = trainer_precision_problem(trainer, self.precision)
            if problem:
                raise PrecisionError(problem)
            if trainer.world_size != ranks.world_size:
                raise distributed.RanksError(f"Lightning sees {trainer.world_size} rank(s), the launcher started "
                                             f"{ranks.world_size}")
            try:
                trainer.fit(module, datamodule=datamodule, ckpt_path=str(last_path) if state is not None else None)
                pruned = pruning is not None and pruning.pruned
                tested = self.run_test(trainer, module, datamodule) if self.test and not pruned else None
            except BaseException as error:
                from experimaestro import GracefulTimeout

                if preemption.requested and not isinstance(error, GracefulTimeout):
                    # Lightning stopped on SIGTERM itself (e.g. during validation)
                    log.event("preempted", signal=preemption.flag.signal_name, step=trainer.global_step)
                    raise GracefulTimeout(f"stopped by {preemption.flag.signal_name}")
                raise
            finally:
                preemption.restore()
            ranks.close()  # leaves the process group; rank 0 fails when another rank did
            if not ranks.is_main:
                return

            # --- Summary
            wall = log.elapsed()
            final = summary(saver.run, self.monitor, trainer.current_epoch, trainer.global_step, wall, pruned,
                            self.mode)
            final.update(extent)
            if tested is not None:
                final["test"] = tested
            summaries.write(self.final_path, final)
            job.end(wall_time=wall)

    # --- The TrainingTask protocol (xpm_train/training.py)

    training_kind: ClassVar[str] = "lightning"

    def study_score(self) -> tuple[str, Optional[str]]:
        """A Study's default, as before this protocol: Learn's default objective
        (classification: ``best.val_accuracy``, maximised), whatever ``monitor``/``mode``."""
        from ..summary import CLASSIFICATION_METRIC

        return CLASSIFICATION_METRIC, "maximize"

    def no_network_message(self, folder: Path, name: str) -> str:
        from ..trained import no_trained_network

        return no_trained_network(folder, name)

    def check_ranks(self, world_size: int) -> None:
        """Called at ``submit()`` when the launcher gives the job several
        ranks: any number runs (Lightning's DDP). Each rank's DataLoader keeps
        its ``batch_size`` (Lightning's rule), so the global batch is
        ``world_size`` times larger, while the job ID does not change."""

    def run_test(self, trainer, module, datamodule) -> dict[str, float]:
        """``Trainer.test`` with the best weights; its metrics."""
        from .. import checkpoint

        module.load_state_dict(checkpoint.load_weights(self.checkpoints / jobfolder.BEST))
        results = trainer.test(module, datamodule=datamodule, verbose=False)
        return {key: float(value) for result in results for key, value in result.items()}



def beside_config_module(config_type: type) -> None:
    """Put the folder of a top-level config module (``digits_configs.py`` next
    to the plan) on ``sys.path``, so that the Lightning code beside it imports
    when experimaestro 2.7 runs the job again (a retry after a preemption
    loses the plan's ``pythonpath``; the config module itself is loaded from
    its recorded file)."""
    import sys

    module = sys.modules.get(config_type.__module__)
    path = getattr(module, "__file__", None)
    if "." in config_type.__module__ or path is None:
        return  # in a package: importable like any installed code
    folder = str(Path(path).resolve().parent)
    if folder not in sys.path:
        sys.path.append(folder)


def one_process_plugins() -> list:
    """Lightning plugins of a one-process job: its launcher type's (Slurm:
    its SLURM environment without ``scontrol requeue``, experimaestro resubmits)."""
    from ..launchers.kinds import job_sides

    return [plugin for side in job_sides() for plugin in side.lightning_plugins()]


def summary(run: dict[str, Any], monitor: str, epochs: int, steps: int, wall: float,
            pruned: bool, mode: str = "max") -> dict[str, Any]:
    """Content of ``final.json``: the keys of Learn's summary (``final``,
    ``best``, ``best_epoch``, ``epochs``, ``steps``, ``wall_time``, ``pruned``),
    metrics named as the module logged them: ``final`` holds the epoch-level
    metrics of the last epoch (``*_step`` values left out), ``best`` those of
    the best epoch that share the monitor's split (``val_*`` for ``val_accuracy``);
    and the score keys of every summary (:mod:`xpm_train.summary`): the best ``monitor``."""
    from ..summary import MAXIMIZE, MINIMIZE, PARTS, make, split_directions

    split = monitor.split("_", 1)[0] + "_" if "_" in monitor else monitor
    best = run["best"] or {}
    direction = MAXIMIZE if mode == "max" else MINIMIZE
    return make(
        monitor, best.get(monitor), direction, split_directions({monitor: direction}, ("",), PARTS),
        final={key: value for key, value in run["last"].items() if not key.endswith("_step")},
        best={key: value for key, value in best.items() if key.startswith(split) and not key.endswith("_step")},
        best_epoch=run["best_epoch"],
        monitor=monitor,
        epochs=epochs,
        steps=steps,
        wall_time=wall,
        pruned=pruned,
    )
