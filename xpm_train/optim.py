"""Optimizers and learning-rate schedules as typed configs.

A schedule is a pure function of the step (:meth:`Schedule.factor`): Learn sets
the learning rate of every parameter group to ``lr * factor(step, ...)`` before
each step, so resuming needs nothing but the step counter.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated

from experimaestro import Config, Param, field
from experimaestro import Constant as Fixed  # the alias `Constant` below is the old name of ConstantRate

from .checks import NonNegative, Positive, Range

if TYPE_CHECKING:
    import torch


class Optimizer(Config):
    """An optimizer (interface: subclasses implement :meth:`create`)."""

    lr: Annotated[Param[float], Positive()] = field(default=1e-3, ignore_default=True)
    """Base learning rate (before the schedule)"""

    weight_decay: Annotated[Param[float], NonNegative()] = field(default=0.0, ignore_default=True)
    """Weight decay (L2 for SGD and Adam, decoupled for AdamW)"""

    def create(self, parameters) -> "torch.optim.Optimizer":
        raise NotImplementedError(f"{type(self).__name__} does not implement create()")



class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum."""

    momentum: Annotated[Param[float], Range(0, 1)] = field(default=0.9, ignore_default=True)
    """Momentum factor"""

    nesterov: Param[bool] = field(default=False, ignore_default=True)
    """Use Nesterov momentum"""

    def create(self, parameters):
        import torch

        return torch.optim.SGD(
            parameters,
            lr=self.lr,
            momentum=self.momentum,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
        )


class Adam(Optimizer):
    """Adam."""

    version: Fixed[str] = "2"
    """2: torch's fused kernel by default (``fused``). Configs of version 1
    (before 2026-11-30) used the for-loop implementation; the bump gave every
    Adam and AdamW job a new ID rather than new numbers under an old one."""

    beta1: Annotated[Param[float], Range(0, 1)] = field(default=0.9, ignore_default=True)
    """Decay of the running average of the gradient"""

    beta2: Annotated[Param[float], Range(0, 1)] = field(default=0.999, ignore_default=True)
    """Decay of the running average of the squared gradient"""

    fused: Param[bool] = field(default=True, ignore_default=True)
    """torch's fused implementation: one kernel updates every parameter, on the
    CPU and on GPUs (an MLP step is 1.2x faster on CPU here). ``False``: torch's
    own default (a loop over parameters on the CPU, ``foreach`` on CUDA), whose
    results differ from the fused kernel's in the last bits (another job ID)"""

    def create(self, parameters):
        import torch

        return torch.optim.Adam(parameters, lr=self.lr, betas=(self.beta1, self.beta2),
                                weight_decay=self.weight_decay, fused=self.fused or None)


class AdamW(Adam):
    """Adam with decoupled weight decay (same parameters as :class:`Adam`)."""

    weight_decay: Annotated[Param[float], NonNegative()] = field(default=1e-2, ignore_default=True)
    """Decoupled weight decay"""

    def create(self, parameters):
        import torch

        return torch.optim.AdamW(parameters, lr=self.lr, betas=(self.beta1, self.beta2),
                                 weight_decay=self.weight_decay, fused=self.fused or None)


class Schedule(Config):
    """A learning-rate schedule: a multiplier of the base rate per step."""

    warmup_epochs: Annotated[Param[float], NonNegative()] = field(default=0.0, ignore_default=True)
    """Linear warm-up from 0 over this many epochs (may be fractional)"""

    def decay(self, progress: float) -> float:
        """Multiplier after warm-up, ``progress`` in [0, 1] over the remaining steps."""
        raise NotImplementedError

    def factor(self, step: int, total_steps: int, steps_per_epoch: int) -> float:
        """Learning-rate multiplier before optimizer step ``step`` (0-based)."""
        warmup = int(round(self.warmup_epochs * steps_per_epoch))
        if step < warmup:
            return (step + 1) / warmup
        remaining = max(total_steps - warmup, 1)
        return self.decay(min((step - warmup) / remaining, 1.0))



class ConstantRate(Schedule):
    """The base learning rate throughout (after the warm-up)."""

    __xpmid__ = "xpm_train.optim.constant"
    # The identifier of the class when it was named Constant (an identifier is
    # the module and class name by default): the IDs of its jobs stay the same

    def decay(self, progress):
        return 1.0


Constant = ConstantRate
"""The old name of :class:`ConstantRate` (it shadowed experimaestro's
``Constant``): the params.json of the jobs made before the rename name it"""


class StepDecay(Schedule):
    """Multiply the rate by ``gamma`` at each of ``milestones`` (fractions of training)."""

    milestones: Annotated[Param[list[float]], Range(0, 1, low_open=True)] = field(default=[0.5, 0.75], ignore_default=True)
    """Points of training (fractions in (0, 1)) where the rate drops"""

    gamma: Annotated[Param[float], Positive()] = field(default=0.1, ignore_default=True)
    """Multiplier applied at each milestone"""

    def decay(self, progress):
        return self.gamma ** sum(progress >= m for m in self.milestones)


class Cosine(Schedule):
    """Cosine decay from the base rate to ``min_factor`` times it."""

    min_factor: Annotated[Param[float], Range(0, 1, high_open=False)] = field(default=0.0, ignore_default=True)
    """Final rate as a fraction of the base rate"""

    def decay(self, progress):
        cos = 0.5 * (1 + math.cos(math.pi * progress))
        return self.min_factor + (1 - self.min_factor) * cos
