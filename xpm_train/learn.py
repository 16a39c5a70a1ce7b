"""Learn: train a model for an objective, resumable from its last checkpoint.

Job folder::

    metrics.jsonl        one JSON object per logged point
    events.jsonl         start / resume / checkpoint / preempted / end / error
    checkpoints/last.pt  everything needed to resume (atomic, checksummed)
    checkpoints/best.pt  weights with the best validation score (see Learn.objective)
    final.json           final and best metrics, score, best epoch, wall time,
                         samples/s (schema: xpm_train.summary)

Resuming: the sample order of an epoch depends only on ``(seed, epoch)`` and
the checkpoint holds model, optimizer, RNG states, epoch, batch and step, so a
run killed and submitted again ends (on CPU) with exactly the weights of an
uninterrupted run. SIGTERM or SIGUSR1 (Slurm preemption) make Learn save a
checkpoint after the current step and stop with experimaestro's
``GracefulTimeout``, so the scheduler runs it again.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Annotated, ClassVar, Optional

from experimaestro import Constant, Meta, Param, PathGenerator, ResumableTask, field

from .errors import config_name
from . import atomic, budget, checkpoint, jobfolder
from .checks import DeviceName, NonNegative, Positive, Range, validated
from .data.base import Dataset
from .data.stream import Streaming
from .augment import Augment
from .distill import Distillation
from .models import LoadWeights, Model, check_model_outputs
from .jobfolder import done_in_current_workspace
from .objectives import Classification, Objective, ObjectiveError, objective_of
from .optim import Optimizer, Schedule
from .runtime import PreemptionFlag  # stdlib only: installed first thing in execute()
from .hooks import Tracking, Trial

logger = logging.getLogger("xpm_train.learn")


@validated
class Learn(ResumableTask):
    """Train ``model`` on ``data`` with a held-out validation split."""

    model: Param[Model]
    """The model to train (may start from trained weights given as init task)"""

    data: Param[Dataset]
    """Training split; ``val_fraction`` of it is held out for validation"""

    objective: Param[Objective] = field(default=Classification.C(), ignore_default=True)
    """Loss, metrics and score (best checkpoint, pruning, Tune): Classification
    (the default), Regression, Reconstruction (see :mod:`xpm_train.objectives`)"""

    optimizer: Param[Optimizer]
    """Optimizer and its base learning rate"""

    schedule: Param[Optional[Schedule]] = field(default=None, ignore_default=True)
    """Learning-rate schedule (None: constant, no warm-up)"""

    epochs: Annotated[Param[int], Positive()] = field(default=10, ignore_default=True)
    """Number of passes over the training data: where the run stops (its
    budget; the schedule's horizon too unless ``horizon`` is set)"""

    horizon: Param[Optional[int]] = field(default=None, ignore_default=True)
    """Epochs the schedule spans (None: ``epochs``). With a horizon, ``epochs``
    is only where the run stops, at most ``horizon``: a run of a larger budget
    continues from the last checkpoint of the same run stopped earlier, and ends
    with the same weights (see :mod:`xpm_train.budget`)"""

    batch_size: Annotated[Param[int], Positive()] = field(default=64, ignore_default=True)
    """Training batch size"""

    val_fraction: Annotated[Param[float], Range(0, 1)] = field(default=0.1, ignore_default=True)
    """Fraction of ``data`` held out for validation (0: none; best = last)"""

    split_seed: Param[int] = field(default=0, ignore_default=True)
    """Seed of the train/validation split"""

    grad_clip: Annotated[Param[float], NonNegative()] = field(default=0.0, ignore_default=True)
    """Clip the gradient norm to this value (0: no clipping)"""

    seed: Param[int] = field(default=0, ignore_default=True)
    """Seed of the initialisation, the sample order and dropout"""

    augment: Param[Optional[Augment]] = field(default=None, ignore_default=True)
    """Batch augmentation of the training split, on the device (None: none)"""

    distill: Param[Optional[Distillation]] = field(default=None, ignore_default=True)
    """Knowledge distillation from a trained teacher, given as init task (None:
    cross-entropy with the labels only); see :mod:`xpm_train.distill`"""

    device: Annotated[Meta[str], DeviceName()] = field(default="auto", ignore_default=True)
    """``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``..."""

    gpu_memory_fraction: Meta[Optional[float]] = field(default=None, ignore_default=True)
    """Cap on this job's share of its GPU's memory, in (0, 1] (None: no cap;
    ignored on CPU), so that several jobs can share one GPU"""

    tracking: Meta[Optional[Tracking]] = field(default=None, ignore_default=True)
    """Where metrics are mirrored besides the job folder (e.g. MLflow)"""

    streaming: Meta[Optional[Streaming]] = field(default=None, ignore_default=True)
    """When to stream ``data`` from disk instead of holding it in memory (None:
    ``Streaming.C()``, when it exceeds half the available memory); see
    :mod:`xpm_train.data.stream`. The batches, hence the results, are the same"""

    trial: Meta[Optional[Trial]] = field(default=None, ignore_default=True)
    """The Optuna trial this training answers (set by Tune): the validation
    score is reported to it every epoch and training stops when pruned"""

    amp: Meta[str] = field(default="auto", ignore_default=True)
    """Mixed precision: ``auto`` (bf16 autocast on CUDA GPUs that support it,
    off on CPUs, where it is several times slower), ``bf16`` or ``off``"""

    compile: Meta[bool] = field(default=False, ignore_default=True)
    """Compile the model with ``torch.compile`` (pays off on long GPU runs;
    share ``TORCHINDUCTOR_CACHE_DIR`` between jobs to cut its start-up cost)"""

    deterministic: Meta[bool] = field(default=False, ignore_default=True)
    """On CUDA, use deterministic algorithms (and no cuDNN autotuning): bitwise
    reproducible GPU runs, somewhat slower. CPU runs are always reproducible"""

    log_interval: Meta[int] = field(default=50, ignore_default=True)
    """Log the training loss every this many steps"""

    checkpoint_interval: Meta[int] = field(default=1, ignore_default=True)
    """Save ``last.pt`` every this many epochs (and always at the end)"""

    prefixes: Meta[Optional[list[str]]] = field(default=None, ignore_default=True)
    """Set by the plan when ``horizon`` is set, not by hand: the IDs of this
    config with each smaller ``epochs``, largest first; a job without a
    checkpoint of its own continues from the first one done"""

    checkpoints: Meta[Path] = field(default_factory=PathGenerator("checkpoints"))
    """Folder of ``last.pt`` and ``best.pt``"""

    metrics_path: Meta[Path] = field(default_factory=PathGenerator(jobfolder.METRICS))
    """Metrics, one JSON object per line"""

    events_path: Meta[Path] = field(default_factory=PathGenerator(jobfolder.EVENTS))
    """Events, one JSON object per line"""

    final_path: Meta[Path] = field(default_factory=PathGenerator(jobfolder.FINAL))
    """Summary written at the end"""

    version: Constant[str] = "1"
    """Bumped only to invalidate previous trainings on purpose"""

    def task_outputs(self, dep):
        """The trained model: an init task loading ``checkpoints/best.pt``."""
        return dep(LoadWeights.C(model=self.model, path=self.checkpoints / jobfolder.BEST))

    # --- The TrainingTask protocol (xpm_train/training.py)

    training_kind: ClassVar[str] = "learn"

    def study_score(self) -> tuple[str, Optional[str]]:
        """A Study's default: the objective's score, in its direction (a
        classifying Learn keeps its former ``best.val_accuracy``, and so its study names)."""
        from .summary import CLASSIFICATION_METRIC

        objective = objective_of(self)
        return (CLASSIFICATION_METRIC if isinstance(objective, Classification) else "score"), objective.direction

    def no_network_message(self, folder: Path, name: str) -> str:
        from .trained import no_trained_network

        return no_trained_network(folder, name)

    def check_ranks(self, world_size: int) -> None:
        """Called at ``submit()`` when the launcher gives the job several ranks
        (:mod:`xpm_train.distributed`): the global batch must split evenly."""
        from .launchers.ranks import RanksSpecError

        if self.batch_size % world_size:
            multiple = -(-self.batch_size // world_size) * world_size
            raise RanksSpecError(
                f"Learn.batch_size={self.batch_size} does not split into the {world_size} ranks of its "
                f"launcher: make it a multiple of {world_size} (e.g. {multiple}) or change processes=/nodes=")

    def __validate__(self):
        """Refuse, when the plan submits it, a budget beyond the horizon, an
        objective that does not fit the data, or a model whose output size does
        not fit the objective; record the jobs a budget may continue."""
        budget.plan(self)
        objective = objective_of(self)
        where = f"Learn(model={config_name(self.model)}, data={config_name(self.data)})"
        objective.check_data(self.data.targets(), where)
        if not done_in_current_workspace(self):  # a cached job: no need to import torch in the plan
            check_model_outputs(self.model, objective, self.data)
        if self.distill is not None and not isinstance(objective, Classification):
            raise ObjectiveError(f"{where}: distillation needs the Classification objective (soft class "
                                 f"targets), not {config_name(objective)}: drop distill= or the objective")

    def held_out(self) -> "HeldOut":
        """The validation part of ``data`` this Learn holds out (to give an Evaluate)."""
        from .data.heldout import HeldOut

        if self.val_fraction <= 0:
            raise ValueError("this Learn holds nothing out (val_fraction=0): nothing to evaluate on")
        return HeldOut.C(data=self.data, fraction=self.val_fraction, seed=self.split_seed)

    def execute(self):
        # From the start SIGTERM/SIGUSR1 stop the training after its next step:
        # a signal that comes while the data loads (Slurm may send its warning
        # up to a minute early) is neither lost nor fatal
        with PreemptionFlag() as stop:
            self._train(stop)

    def _train(self, stop: "PreemptionFlag"):
        import torch
        from experimaestro import GracefulTimeout, progress

        from . import summary as summaries
        from .measure import add_sums, check_outputs, split_metrics
        from .metrics import lifecycle, open_log
        from .models import build
        from .data.stream import PREPARED_KEY, open_split
        from .pipeline import DeviceData, split_indices
        from .runstate import RunState, restore, snapshot, summary
        from .runtime import autocast_bf16, check_loss, mixed_precision, start
        from .sampler import batch_length, check_shards, epoch_order
        from .trained import write_data

        # One process, or this process's rank of a job the launcher gave several
        # (see xpm_train.distributed: only rank 0 writes)
        # (xpm_train.runtime: device, GPU memory cap, seed, deterministic CUDA, precision)
        ranks = start(self.device, gpu_memory_fraction=self.gpu_memory_fraction, seed=self.seed,
                      deterministic=self.deterministic)
        device = ranks.device
        use_bf16 = autocast_bf16(self.amp, device)

        # --- Data: decoded once, held on the device; the objective says what
        # the network must output for it
        # (or streamed from its prepared records when it does not fit the
        # memory budget: xpm_train.data.stream; the same batches either way)
        objective = objective_of(self)
        streamed, why = open_split(self.data, self.streaming)
        arrays = self.data.arrays() if streamed is None else streamed.schema()
        n = len(arrays) if streamed is None else len(streamed)
        logger.info("Data %s: %s", "streamed" if streamed else "in memory", why)
        info = objective.describe(arrays)
        train_idx, val_idx = split_indices(n, self.val_fraction, self.split_seed)
        layout = self.model.channels_last()  # NHWC for convolutional networks
        if streamed is None:
            train = DeviceData(arrays.subset(train_idx), device, channels_last=layout)
            val = DeviceData(arrays.subset(val_idx), device, channels_last=layout) if len(val_idx) else None
        else:
            train = streamed.data(train_idx, device, channels_last=layout)
            val = streamed.data(val_idx, device, channels_last=layout) if len(val_idx) else None
        loading = {"data": "stream" if streamed else "memory", "data_reason": why,
                   **({PREPARED_KEY: str(streamed.prepared.folder)} if streamed else {})}
        check_shards(len(train), self.batch_size, ranks.world_size)
        steps_per_epoch = math.ceil(len(train) / self.batch_size)
        total_steps = steps_per_epoch * budget.horizon_of(self)  # what the schedule spans

        # --- Model, teacher (when distilling) and optimizer
        if self.distill is not None and self.distill.teacher is self.model:
            raise ValueError("Learn.model and Learn.distill.teacher are the same config object: the "
                             "student would start from the teacher's weights; give the student its own config")
        # The student is built first: with the same seed it starts from the
        # very weights of a plain Learn (a paired comparison)
        net = build(self.model, info).to(device)
        check_outputs(net, objective, info, val or train, self.model)
        if ranks.is_main:
            write_data(self.final_path.parent, info, arrays)  # what load and export rebuild the network for
        trained = objective  # what the loop minimises: the objective, or distillation wrapping it
        if self.distill is not None:
            trained = self.distill.wrap(objective, self.distill.teacher_network(info).to(device))
        forward = torch.compile(ranks.wrap(net)) if self.compile else ranks.wrap(net)
        optimizer = self.optimizer.create(net.parameters())
        base_lrs = [group["lr"] for group in optimizer.param_groups]
        schedule = self.schedule

        # --- Resume from the last intact checkpoint, if any; a job without one
        # continues a done run of a smaller budget, if any (xpm_train.budget)
        last_path = self.checkpoints / jobfolder.LAST
        prefix = budget.continuation(self, ranks, last_path)
        log = open_log(self, ranks)
        if ranks.is_main:
            atomic.remove_stale_temporaries(self.checkpoints)
        state = prefix.state if prefix is not None else checkpoint.load_latest(
            last_path,
            on_corrupt=lambda path, error: log.event("corrupt_checkpoint", path=str(path), error=str(error)),
        )
        run = RunState() if state is None else restore(state, net, optimizer)
        if prefix is not None:
            run.continued_from = prefix.id
        if state is not None:
            ranks.restore_rng(state)
            if not ranks.is_main:  # the saved partial sums are the ranks' total: rank 0 holds them
                run.drop_partial_sums()
            logger.info("Resuming at epoch %d, batch %d (step %d)", run.epoch, run.batch, run.step)
        log.elapsed_offset = run.elapsed
        if state is None or prefix is not None:
            kind, details = "start", dict(
                device=str(device), threads=torch.get_num_threads(), train_samples=len(train),
                **({"ranks": ranks.world_size} if ranks.distributed else {}),
                val_samples=len(val) if val else 0, steps=steps_per_epoch * self.epochs, **loading,
                **({"distillation": self.distill.summary()} if self.distill else {}),
                **({"horizon": self.horizon} if self.horizon is not None else {}),
                **({"continued_from": prefix.id, "epoch": run.epoch, "step": run.step} if prefix else {}))
        else:
            kind, details = "resume", dict(epoch=run.epoch, batch=run.batch, step=run.step, **loading)

        def save_last():
            state = {**snapshot(net, optimizer, run, log.elapsed()), **ranks.rng_states()}
            if ranks.is_main:
                checkpoint.save(last_path, state)
                log.event("checkpoint", epoch=run.epoch, batch=run.batch, step=run.step)

        # --- Training loop (the lifecycle writes start/resume, then end, or error on a failure)
        with lifecycle(log, ranks, kind, **details) as job:
            try:
                while run.epoch < self.epochs:
                    epoch = run.epoch
                    net.train()
                    order = epoch_order(len(train), self.seed, epoch)
                    # Epoch sums stay on the device: no host synchronisation per step
                    sums = {k: torch.as_tensor(v, device=device) for k, v in run.sums.items()}
                    parts = {k: torch.tensor(float(run.parts.get(k, 0.0)), device=device) for k in trained.parts}
                    for images, labels in train.batches(self.batch_size, order, start=run.batch,
                                                        rank=ranks.rank, world=ranks.world_size):
                        factor = schedule.factor(run.step, total_steps, steps_per_epoch) if schedule else 1.0
                        for group, base_lr in zip(optimizer.param_groups, base_lrs):
                            group["lr"] = base_lr * factor
                        if self.augment is not None:
                            images = self.augment.apply(images, self.seed, epoch, run.batch)
                        target = objective.target(images, labels, train)
                        with mixed_precision(use_bf16, device):
                            logits = forward(images)
                            loss = trained.training_loss(logits, target, images, parts)
                        optimizer.zero_grad(set_to_none=True)
                        # With several ranks, each rank's share of the global batch's mean
                        weight = ranks.loss_weight(len(labels), batch_length(len(train), self.batch_size, run.batch))
                        (loss * weight if weight != 1.0 else loss).backward()
                        if self.grad_clip > 0:
                            torch.nn.utils.clip_grad_norm_(net.parameters(), self.grad_clip)
                        optimizer.step()
                        run.step += 1
                        run.batch += 1
                        with torch.no_grad():
                            add_sums(sums, objective.sums(logits.detach(), target, loss.detach()))
                        run.samples += len(labels)
                        if run.step % self.log_interval == 0:  # (a NaN or inf loss stops the job)
                            check_loss(sums, epoch, run.step, self.log_interval, ranks)
                            log.log(epoch=epoch, step=run.step, split="train_step",
                                    loss=float(loss.detach()), lr=base_lrs[0] * factor)
                        if ranks.any(stop.requested):  # every rank stops after the same step
                            samples = torch.tensor(float(run.samples), device=device)
                            ranks.sum_(samples, *sums.values(), *parts.values())
                            run.samples = int(samples)
                            run.sums = {k: v.cpu() for k, v in sums.items()}
                            run.parts = {k: float(v) for k, v in parts.items()}
                            check_loss(sums, epoch, run.step, self.log_interval)  # never save broken weights
                            save_last()
                            log.event("preempted", signal=stop.signal_name)
                            raise GracefulTimeout(f"stopped by {stop.signal_name} at step {run.step}")

                    # --- End of epoch: metrics (summed over the ranks), best model (by the
                    # objective's score), checkpoint
                    samples = torch.tensor(float(run.samples), device=device)
                    ranks.sum_(samples, *sums.values(), *parts.values())
                    run.samples = int(samples)
                    check_loss(sums, epoch, run.step, self.log_interval)
                    samples = max(run.samples, 1)
                    run.samples_seen += run.samples
                    record = objective.metrics(sums)
                    log.log(epoch=epoch, step=run.step, split="train", **record,
                            **{k: float(v) / samples for k, v in parts.items()})
                    if val is not None:
                        record = split_metrics(net, val, objective)  # the whole split on every rank: the same values
                        log.log(epoch=epoch, step=run.step, split="val", **record)
                    run.last = {summaries.key("val" if val else "train", k): v for k, v in record.items()}
                    score = record[objective.score]
                    if run.consider(epoch, record, objective):  # (a NaN score never is the best)
                        if ranks.is_main:
                            checkpoint.save(self.checkpoints / jobfolder.BEST,
                                            {"model": net.state_dict(), "epoch": epoch}, keep_previous=False)
                    run.next_epoch()
                    if run.epoch % self.checkpoint_interval == 0 or run.epoch == self.epochs:
                        save_last()
                    log.sync()
                    progress(run.epoch / self.epochs, desc="epochs")
                    logger.info("epoch %d/%d %s", run.epoch, self.epochs,
                                " ".join(f"{k}={v:.4f}" for k, v in run.last.items()))
                    if self.trial is not None and ranks.any(ranks.is_main and self.trial.should_prune(epoch, score)):
                        run.pruned = True
                        log.event("pruned", epoch=epoch)
                        break
            finally:
                stop.restore()

            # --- Summary
            ranks.close()
            if not ranks.is_main:
                return
            wall = log.elapsed()
            final = summary(run, val is not None, wall, objective,
                            self.distill.directions if self.distill is not None else None)
            if self.distill is not None:
                final["distillation"] = self.distill.summary()
            if self.horizon is not None:
                final["horizon"] = self.horizon
            summaries.write(self.final_path, final)
            job.end(wall_time=wall)
