"""What the Lightning task adds to a ``Trainer``: checkpoints in the job
folder, preemption, Optuna pruning.

- :class:`JobCheckpointIO` makes Lightning write and read the job's
  checkpoints (``checkpoints/``) with :mod:`xpm_train.checkpoint` (atomic,
  checksummed, ``.prev`` fallback); checkpoints elsewhere (your own
  ``ModelCheckpoint``'s) stay in Lightning's format.
- :class:`JobCheckpoint` saves ``checkpoints/last.ckpt`` at the end of every
  epoch, with the global RNG states (Lightning does not save them), and
  ``checkpoints/best.pt`` (the weights with the best ``monitor``, the file
  ``load(...).network`` and export read). A run resumed from ``last.ckpt``
  sets the RNG states back before anything draws from them, so on the CPU it
  ends with the weights of an uninterrupted run (under DDP every rank's
  states are saved, and each rank takes back its own). Your own
  ``ModelCheckpoint`` without a ``dirpath`` writes to ``<job>/user-checkpoints``
  (Lightning would pick a folder inside the job's), never to ``checkpoints/``.
- :class:`Preemption` turns SIGTERM/SIGUSR1 into experimaestro's
  ``GracefulTimeout`` after the current step (under DDP the ranks agree
  after every step, so all stop after the same one): the job is run again and
  resumes from the last epoch's checkpoint (Lightning's own mid-epoch
  checkpoints cannot resume a plain DataLoader where it stopped).
- :class:`TrialPruning` reports ``monitor`` to the Optuna trial after each
  epoch and stops the run when the trial is pruned (rank 0 asks the trial,
  every rank stops).

This module imports Lightning: only the Lightning task process imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.plugins.io import CheckpointIO

from .. import checkpoint, jobfolder
from ..hooks import Trial
from .ddp import gather
from ..runtime import PreemptionFlag
from ..metrics import MetricsLogger
from ..summary import check_result

# Lightning sets ``callback.log`` to the module's ``log`` method: the job's
# MetricsLogger is ``job_log`` in these callbacks

STATE_KEY = "xpm_train"
"""Key of the adapter's own state inside a Lightning checkpoint"""


class JobCheckpointIO(CheckpointIO):
    """Lightning checkpoints under ``folder`` (the job's ``checkpoints/``)
    written and read by :mod:`xpm_train.checkpoint`; others (a user's
    ``ModelCheckpoint``) by Lightning's ``TorchCheckpointIO``, so that
    ``load_from_checkpoint`` reads them.

    ``resume_state``: a checkpoint already read (and checked) by the task,
    handed to Lightning instead of reading the file again."""

    def __init__(self, folder: Path, resume_state: Optional[dict[str, Any]] = None):
        self.folder, self.resume_state = Path(folder).resolve(), resume_state
        self.plain = TorchCheckpointIO()

    def owned(self, path) -> bool:
        return Path(path).resolve().is_relative_to(self.folder)

    def save_checkpoint(self, checkpoint_dict: dict[str, Any], path, storage_options=None) -> None:
        if not self.owned(path):
            return self.plain.save_checkpoint(checkpoint_dict, path, storage_options)
        checkpoint.save(Path(path), checkpoint_dict)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        if self.resume_state is not None:
            state, self.resume_state = self.resume_state, None
            return state
        if not self.owned(path):
            return self.plain.load_checkpoint(path, map_location, weights_only)
        state = checkpoint.load_latest(Path(path))
        if state is None:
            raise FileNotFoundError(f"no intact checkpoint at {path} (nor {path}.prev)")
        return state

    def remove_checkpoint(self, path) -> None:
        Path(path).unlink(missing_ok=True)


def better(value: float, best: Optional[float], mode: str) -> bool:
    if best is None:
        return True
    return value > best if mode == "max" else value < best


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """Lightning's ``callback_metrics`` (tensors) as floats."""
    return {key: float(value) for key, value in metrics.items() if getattr(value, "numel", lambda: 1)() == 1}


class StopAtBudget(Callback):
    """Stop after ``epochs`` epochs a Trainer whose ``max_epochs`` is the
    schedule's horizon (``LightningFit.horizon``: prefix budgets)."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


class JobCheckpoint(Checkpoint):
    """``last.ckpt`` every epoch, ``best.pt`` on a better ``monitor``.

    A Lightning ``Checkpoint``: Lightning runs it after the other callbacks'
    and the module's ``on_train_epoch_end`` (what they change at the end of
    an epoch, e.g. a learning rate, is in ``last.ckpt``; what they log is seen).

    ``run`` holds what ``final.json`` needs and is saved in every checkpoint:
    epochs done, last and best metrics, best epoch, elapsed time."""

    def __init__(self, folder: Path, monitor: str, mode: str, log: MetricsLogger,
                 resumed: Optional[dict[str, Any]] = None, user_checkpoints: Optional[Path] = None):
        self.folder, self.monitor, self.mode, self.job_log = folder, monitor, mode, log
        self.user_checkpoints = user_checkpoints
        self.saving_last = False
        resumed = resumed or {}
        self.rng, self.rng_ranks = resumed.get("rng"), resumed.get("rng_ranks")
        self.run: dict[str, Any] = resumed.get("run") or {"last": {}, "best": None, "best_epoch": None}

    @property
    def last_path(self) -> Path:
        return self.folder / jobfolder.LAST_LIGHTNING

    def setup(self, trainer, pl_module, stage: str) -> None:
        # Last of all callbacks, also after the module's configure_callbacks()
        # (Lightning puts those after the Trainer's): last.ckpt holds their state
        # at the end of the epoch (a ModelCheckpoint's best path...)
        if trainer.callbacks[-1] is not self:  # a new list: Lightning is iterating over the old one
            trainer.callbacks = [callback for callback in trainer.callbacks if callback is not self] + [self]
        # Before the ModelCheckpoints' own setup (Lightning runs them last),
        # which would put their files inside the job folder's logger folder
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath is None and self.user_checkpoints:
                callback.dirpath = str(self.user_checkpoints)

    def on_fit_start(self, trainer, pl_module) -> None:
        # After Lightning restored the checkpoint and before the first draw
        # (sanity validation runs under isolate_rng, then the train iterator)
        if self.rng_ranks is not None and len(self.rng_ranks) == trainer.world_size:
            self.rng = self.rng_ranks[trainer.global_rank]  # this rank's own draws
        if self.rng is not None:  # (another number of ranks: rank 0's, resumed but not identically)
            _set_rng_states(self.rng)
            self.rng = self.rng_ranks = None

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        metrics = scalars(trainer.callback_metrics)
        if self.monitor not in metrics:
            raise KeyError(
                f"monitor {self.monitor!r} was not logged by the end of epoch {trainer.current_epoch} "
                f"(logged: {', '.join(sorted(metrics)) or 'nothing'}): log it with self.log({self.monitor!r}, ...) "
                "in the LightningModule, or set the task's monitor to one of these"
            )
        value = check_result(metrics[self.monitor], f"{self.monitor} at epoch {trainer.current_epoch}")
        epoch = trainer.current_epoch
        self.run["last"] = metrics
        if better(value, (self.run["best"] or {}).get(self.monitor), self.mode):
            self.run["best"], self.run["best_epoch"] = metrics, epoch
            if trainer.is_global_zero:
                checkpoint.save(self.folder / jobfolder.BEST, {"model": pl_module.state_dict(), "epoch": epoch},
                                keep_previous=False)
        self.saving_last = True
        try:
            trainer.save_checkpoint(self.last_path)
        finally:
            self.saving_last = False
        if trainer.is_global_zero:
            self.job_log.event("checkpoint", epoch=epoch, step=trainer.global_step)
            self.job_log.sync()

    def on_save_checkpoint(self, trainer, pl_module, checkpoint_dict: dict[str, Any]) -> None:
        # Called on every rank (Lightning writes on rank 0 only): each rank's RNG states
        states = gather(_collect_rng_states(include_cuda=True), trainer.world_size)
        if self.saving_last and trainer.max_steps != -1:
            next_epoch_start(checkpoint_dict["loops"]["fit_loop"])
        checkpoint_dict[STATE_KEY] = {"rng": states[0], **({"rng_ranks": states} if len(states) > 1 else {}),
                                      "run": {**self.run, "elapsed": self.job_log.elapsed()}}


def next_epoch_start(fit_loop: dict[str, Any]) -> None:
    """Make the fit loop's state, saved at the end of an epoch
    (``on_train_epoch_end``), that of the start of the next one. Under
    ``max_steps`` Lightning resumes as "restarting" and would otherwise run
    the end of the saved epoch again (its callbacks, with no metrics logged)
    and then no batch of the next one; without ``max_steps`` it makes the
    same change itself on loading (``RESUMED_ON_EPOCH_END``)."""
    for scope in ("total", "current"):
        progress = fit_loop["epoch_progress"][scope]
        progress["completed"] = progress["processed"]

    def restart(progress: dict[str, Any]) -> None:  # the counters of the epoch that ended
        for key, value in progress.items():
            if key == "current":
                progress[key] = {name: 0 for name in value}
            elif key == "is_last_batch":
                progress[key] = False
            elif isinstance(value, dict):
                restart(value)

    # Lightning adds 1 to the logging step when it resumes this state (meant for
    # a checkpoint of the middle of an epoch): the next step keeps its number
    fit_loop["epoch_loop.state_dict"]["_batches_that_stepped"] -= 1
    for key in ("epoch_loop.batch_progress", "epoch_loop.scheduler_progress",
                "epoch_loop.automatic_optimization.optim_progress", "epoch_loop.val_loop.batch_progress"):
        if key in fit_loop:
            restart(fit_loop[key])


class Preemption(Callback):
    """SIGTERM/SIGUSR1: stop after the current step with ``GracefulTimeout``."""

    def __init__(self, log: MetricsLogger, flag: Optional[PreemptionFlag] = None):
        self.job_log = log
        self.flag = flag
        """Caught since the job started (None: from the fit's start)"""

    def on_fit_start(self, trainer, pl_module) -> None:
        # Installed before Lightning's own SIGTERM handler, which calls it too
        if self.flag is None:
            self.flag = PreemptionFlag()

    def on_train_start(self, trainer, pl_module) -> None:
        # Under DDP, Lightning 2.6's SIGTERM handler broadcasts from inside the
        # handler: a signal landing during another collective deadlocks the
        # ranks. The flag alone handles it; the ranks agree after each step.
        if self.flag is not None and trainer.world_size > 1:
            self.flag.reinstall()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        requested = self.flag is not None and self.flag.requested
        if trainer.world_size > 1:  # locally only rank 0 is signalled: every rank stops after the same step
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        if requested:
            raise self.stopped(trainer)

    def stopped(self, trainer) -> BaseException:
        from experimaestro import GracefulTimeout

        name = self.flag.signal_name if self.flag is not None and self.flag.requested else "another rank's signal"
        self.job_log.event("preempted", signal=name, step=trainer.global_step)
        return GracefulTimeout(f"stopped by {name} at step {trainer.global_step}")

    @property
    def requested(self) -> bool:
        return self.flag is not None and self.flag.requested

    def restore(self) -> None:
        if self.flag is not None:
            self.flag.restore()


class TrialPruning(Callback):
    """Report ``monitor`` to the trial after each epoch; stop when pruned."""

    def __init__(self, trial: Trial, monitor: str, log: MetricsLogger):
        self.trial, self.monitor, self.job_log = trial, monitor, log
        self.pruned = False

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        value = scalars(trainer.callback_metrics).get(self.monitor)
        prune = trainer.is_global_zero and value is not None and self.trial.should_prune(trainer.current_epoch, value)
        if trainer.world_size > 1:  # a rank that went on alone would wait for the others forever
            prune = trainer.strategy.broadcast(prune, src=0)
        if prune:
            self.pruned = True
            self.job_log.event("pruned", epoch=trainer.current_epoch)
            trainer.should_stop = True
