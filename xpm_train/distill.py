"""Distill: train a student classifier from a trained teacher (knowledge
distillation, Hinton et al. 2015), resumable like ``Learn``.

The teacher is the output of a finished ``Learn`` given as init task, so that
its training is a cached job shared by every student::

    teacher = MLP.C(hidden_dims=[256])
    trained_teacher = Learn.C(model=teacher, data=train, ...).submit()
    student = Distill.C(model=MLP.C(hidden_dims=[16]), teacher=teacher, data=train,
                        optimizer=Adam.C(lr=3e-3), temperature=4.0, alpha=0.5)
    trained_student = student.submit(init_tasks=[trained_teacher])

The init task is part of the job ID: a student of another teacher training is
another job. The loss of a batch is::

    alpha * CE(student, y) + (1 - alpha) * T^2 * KL(softmax(teacher/T) || softmax(student/T))

Job folder: as ``Learn`` (``metrics.jsonl`` with the ``ce`` and ``kl`` parts of
the training loss, ``events.jsonl``, ``checkpoints/``, ``final.json``).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

from experimaestro import Constant, Meta, Param, PathGenerator, ResumableTask, field

from . import checkpoint
from .checks import DeviceName, NonNegative, Positive, Range
from .data.base import ImageDataset
from .hooks import Tracking, Trial
from .models import LoadWeights, Model
from .optim import Optimizer, Schedule

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("xpm_train.distill")


def distillation_loss(student_logits: "torch.Tensor", teacher_logits: "torch.Tensor",
                      labels: "torch.Tensor", temperature: float, alpha: float):
    """``(loss, ce, kl)`` of a batch: ``loss = alpha * ce + (1 - alpha) * T^2 * kl``
    with ``kl = KL(softmax(teacher/T) || softmax(student/T))`` averaged over
    the batch (the ``T^2`` factor keeps the gradients of the soft part at the
    scale of the hard part when ``T`` changes)."""
    import torch.nn.functional as F

    ce = F.cross_entropy(student_logits, labels)
    kl = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=1),
        F.log_softmax(teacher_logits / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return alpha * ce + (1 - alpha) * temperature**2 * kl, ce, kl


class Distill(ResumableTask):
    """Train the student ``model`` on ``data`` with the soft targets of a
    trained ``teacher`` (given as init task, see the module documentation)."""

    model: Param[Model]
    """The student model to train"""

    teacher: Param[Model]
    """The teacher model; its trained weights come from the init task (the
    output of the Learn that trained it)"""

    data: Param[ImageDataset]
    """Training split; ``val_fraction`` of it is held out for validation"""

    optimizer: Param[Optimizer]
    """Optimizer of the student and its base learning rate"""

    temperature: Annotated[Param[float], Positive()] = field(default=4.0, ignore_default=True)
    """Softmax temperature T of the soft targets"""

    alpha: Annotated[Param[float], Range(0, 1, high_open=False)] = field(default=0.5, ignore_default=True)
    """Weight of the cross-entropy with the labels (1: no distillation)"""

    schedule: Param[Optional[Schedule]] = field(default=None, ignore_default=True)
    """Learning-rate schedule (None: constant, no warm-up)"""

    epochs: Annotated[Param[int], Positive()] = field(default=10, ignore_default=True)
    """Number of passes over the training data"""

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

    device: Annotated[Meta[str], DeviceName()] = field(default="auto", ignore_default=True)
    """``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``..."""

    gpu_memory_fraction: Meta[Optional[float]] = field(default=None, ignore_default=True)
    """Cap on this job's share of its GPU's memory, in (0, 1] (None: no cap)"""

    tracking: Meta[Optional[Tracking]] = field(default=None, ignore_default=True)
    """Where metrics are mirrored besides the job folder (e.g. MLflow)"""

    trial: Meta[Optional[Trial]] = field(default=None, ignore_default=True)
    """The Optuna trial this training answers (pruned on validation accuracy)"""

    log_interval: Meta[int] = field(default=50, ignore_default=True)
    """Log the training loss every this many steps"""

    checkpoint_interval: Meta[int] = field(default=1, ignore_default=True)
    """Save ``last.pt`` every this many epochs (and always at the end)"""

    checkpoints: Meta[Path] = field(default_factory=PathGenerator("checkpoints"))
    """Folder of ``last.pt`` and ``best.pt``"""

    metrics_path: Meta[Path] = field(default_factory=PathGenerator("metrics.jsonl"))
    """Metrics, one JSON object per line"""

    events_path: Meta[Path] = field(default_factory=PathGenerator("events.jsonl"))
    """Events, one JSON object per line"""

    final_path: Meta[Path] = field(default_factory=PathGenerator("final.json"))
    """Summary written at the end"""

    version: Constant[str] = "1"
    """Bumped only to invalidate previous distillations on purpose"""

    def task_outputs(self, dep):
        """The trained student: an init task loading ``checkpoints/best.pt``."""
        return dep(LoadWeights.C(model=self.model, path=self.checkpoints / "best.pt"))

    def execute(self):
        import torch
        from experimaestro import GracefulTimeout, progress

        from .evaluate import classification_metrics
        from .learn import PreemptionFlag, cap_gpu_memory, fresh_run_state, restore, snapshot, summary
        from .metrics import MetricsLogger
        from .models import build
        from .pipeline import DeviceData, epoch_order, pick_device, split_indices

        device = pick_device(self.device)
        cap_gpu_memory(device, self.gpu_memory_fraction)
        torch.manual_seed(self.seed)

        # --- Data (same split and sample order as Learn with the same seeds)
        arrays = self.data.arrays()
        train_idx, val_idx = split_indices(len(arrays), self.val_fraction, self.split_seed)
        train = DeviceData(arrays.subset(train_idx), device)
        val = DeviceData(arrays.subset(val_idx), device) if len(val_idx) else None
        steps_per_epoch = math.ceil(len(train) / self.batch_size)
        total_steps = steps_per_epoch * self.epochs

        # --- Teacher (frozen) and student
        if self.model is self.teacher:
            raise ValueError("Distill.model and Distill.teacher are the same config object: the student "
                             "would start from the teacher's weights; give the student its own config")
        # The student is built first: with the same seed it starts from the
        # very weights of a plain Learn (a paired comparison)
        net = build(self.model, arrays.shape, arrays.num_classes).to(device)
        teacher = build_teacher(self.teacher, arrays.shape, arrays.num_classes).to(device)
        optimizer = self.optimizer.create(net.parameters())
        base_lrs = [group["lr"] for group in optimizer.param_groups]

        # --- Resume from the last intact checkpoint, if any
        sinks = self.tracking.sinks(self) if self.tracking is not None else []
        log = MetricsLogger(self.metrics_path, self.events_path, sinks)
        last_path = self.checkpoints / "last.pt"
        checkpoint.remove_stale_temporaries(self.checkpoints)
        state = checkpoint.load_latest(
            last_path,
            on_corrupt=lambda path, error: log.event("corrupt_checkpoint", path=str(path), error=str(error)),
        )
        run = fresh_run_state() if state is None else restore(state, net, optimizer)
        run.setdefault("kd_sums", {"ce": 0.0, "kl": 0.0})
        log.elapsed_offset = run["elapsed"]
        if state is None:
            log.event("start", device=str(device), train_samples=len(train), steps=total_steps,
                      temperature=self.temperature, alpha=self.alpha)
        else:
            log.event("resume", epoch=run["epoch"], batch=run["batch"], step=run["step"])

        def save_last():
            checkpoint.save(last_path, snapshot(net, optimizer, run, log.elapsed()))
            log.event("checkpoint", epoch=run["epoch"], batch=run["batch"], step=run["step"])

        # --- Training loop
        stop = PreemptionFlag()
        try:
            while run["epoch"] < self.epochs:
                epoch = run["epoch"]
                net.train()
                sums = {k: torch.tensor(float(v), device=device)
                        for k, v in {**run["sums"], **run["kd_sums"]}.items() if k != "samples"}
                order = epoch_order(len(train), self.seed, epoch)
                for images, labels in train.batches(self.batch_size, order, start=run["batch"]):
                    factor = self.schedule.factor(run["step"], total_steps, steps_per_epoch) if self.schedule else 1.0
                    for group, base_lr in zip(optimizer.param_groups, base_lrs):
                        group["lr"] = base_lr * factor
                    with torch.no_grad():
                        teacher_logits = teacher(images)
                    logits = net(images)
                    loss, ce, kl = distillation_loss(logits, teacher_logits, labels, self.temperature, self.alpha)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if self.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(net.parameters(), self.grad_clip)
                    optimizer.step()
                    run["step"] += 1
                    run["batch"] += 1
                    n = len(labels)
                    sums["loss"] += loss.detach() * n
                    sums["ce"] += ce.detach() * n
                    sums["kl"] += kl.detach() * n
                    sums["correct"] += (logits.argmax(1) == labels).sum()
                    run["sums"]["samples"] += n
                    if run["step"] % self.log_interval == 0:
                        log.log(epoch=epoch, step=run["step"], split="train_step",
                                loss=float(loss.detach()), lr=base_lrs[0] * factor)
                    if stop.requested:
                        keep_sums(run, sums)
                        save_last()
                        log.event("preempted", signal=stop.signal_name)
                        log.close()
                        raise GracefulTimeout(f"stopped by {stop.signal_name} at step {run['step']}")

                # --- End of epoch: metrics, best model, checkpoint
                samples = max(run["sums"]["samples"], 1)
                run["samples_seen"] += run["sums"]["samples"]
                record = {k: float(sums[k]) / samples for k in ("loss", "ce", "kl")}
                record["accuracy"] = float(sums["correct"]) / samples
                log.log(epoch=epoch, step=run["step"], split="train", **record)
                if val is not None:
                    metrics = classification_metrics(net, val, arrays.num_classes)
                    record = {"loss": metrics["loss"], "accuracy": metrics["accuracy"]}
                    log.log(epoch=epoch, step=run["step"], split="val", **record)
                run["last"] = {f"{'val' if val else 'train'}_{k}": v for k, v in record.items()}
                if run["best"] is None or record["accuracy"] > run["best"]["accuracy"]:
                    run["best"] = {"epoch": epoch, "loss": record["loss"], "accuracy": record["accuracy"]}
                    checkpoint.save(self.checkpoints / "best.pt",
                                    {"model": net.state_dict(), "epoch": epoch}, keep_previous=False)
                run["epoch"] += 1
                run["batch"] = 0
                run["sums"] = {"loss": 0.0, "correct": 0, "samples": 0}
                run["kd_sums"] = {"ce": 0.0, "kl": 0.0}
                if run["epoch"] % self.checkpoint_interval == 0 or run["epoch"] == self.epochs:
                    save_last()
                log.sync()
                progress(run["epoch"] / self.epochs, desc="epochs")
                logger.info("epoch %d/%d %s", run["epoch"], self.epochs,
                            " ".join(f"{k}={v:.4f}" for k, v in run["last"].items()))
                if self.trial is not None and self.trial.should_prune(epoch, record["accuracy"]):
                    run["pruned"] = True
                    log.event("pruned", epoch=epoch)
                    break
        except BaseException as error:
            if not isinstance(error, GracefulTimeout):
                log.event("error", error=f"{type(error).__name__}: {error}")
                log.close()
            raise
        finally:
            stop.restore()

        # --- Summary
        wall = log.elapsed()
        final = summary(run, val is not None, wall)
        final["distillation"] = {"temperature": self.temperature, "alpha": self.alpha}
        checkpoint.atomic_write_bytes(self.final_path, json.dumps(final, indent=2).encode())
        log.event("end", wall_time=wall)
        log.close()


def build_teacher(teacher: Model, shape, num_classes: int) -> "torch.nn.Module":
    """The teacher network with its trained weights, frozen in eval mode.

    :raises ValueError: when no init task gave the teacher's weights
    """
    from .models import build

    if teacher.__dict__.get("_xpm_train_weights") is None:
        raise ValueError(
            "Distill.teacher has no trained weights: submit the Distill with the output of the "
            "Learn that trained this very teacher config as init task, e.g. "
            "Distill.C(teacher=teacher, ...).submit(init_tasks=[Learn.C(model=teacher, ...).submit()])"
        )
    net = build(teacher, shape, num_classes)
    net.eval()
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    return net


def keep_sums(run: dict, sums: dict) -> None:
    """Store the running epoch sums (device tensors) in ``run`` before a checkpoint."""
    run["sums"].update(loss=float(sums["loss"]), correct=int(sums["correct"]))
    run["kd_sums"] = {"ce": float(sums["ce"]), "kl": float(sums["kl"])}
