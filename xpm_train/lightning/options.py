"""LightningFit's Trainer options: their checks (in the plan) and the
values the Trainer gets (in the task).

- ``precision``: one spelling per setting (:data:`PRECISIONS`), and
  :class:`PrecisionError` for a setting Lightning would run as another one
  (``16-mixed`` on a CPU runs as ``bf16-mixed``): refused at submit when the
  accelerator is ``cpu``, at the start of the job when ``auto`` resolves to a CPU;
- ``limit_train_batches`` / ``limit_val_batches``: a fraction, a number of
  batches, or None (all): :class:`BatchLimit`, :func:`batch_limit`;
- ``max_steps``: :class:`MaxSteps`.

Nothing here imports Lightning.
"""

from __future__ import annotations

from typing import Optional

from experimaestro.checkers import Checker

from ..checks import InvalidValue
from ..errors import UserError

DEVICES_HINT = ("several devices are asked for in the launcher spec, not here: submit with e.g. "
                "find_launcher('cuda(mem=40G)*2 & processes=2') (one rank per device; nodes=M on Slurm) and "
                "every rank runs Trainer(strategy='ddp', devices=2)")

PRECISIONS = ("32-true", "64-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true")
"""Lightning's precision settings accepted by :class:`LightningFit`"""

CPU_PRECISIONS = ("32-true", "64-true", "bf16-mixed", "bf16-true")
"""What runs as itself on a CPU (Lightning runs ``16-mixed`` as ``bf16-mixed`` there)"""


class PrecisionError(UserError, ValueError):
    """A precision that Lightning would run as another one on this device."""


def precision_problem(precision: str, accelerator: str, runs_as: Optional[str] = None) -> Optional[str]:
    """Why ``precision`` cannot run as asked on ``accelerator`` (None: it can).
    ``runs_as``: the precision Lightning's Trainer chose (known in the task)."""
    substituted = runs_as is not None and runs_as != precision
    if not substituted and not (accelerator == "cpu" and precision == "16-mixed"):
        return None
    instead = runs_as or "bf16-mixed"
    return (f"precision={precision!r} on accelerator={accelerator!r}: Lightning would run it as {instead!r} "
            f"(fp16 mixed precision needs a GPU), under another job ID than precision={instead!r}. "
            f"On a CPU use one of {', '.join(CPU_PRECISIONS)}; for fp16 AMP run on a GPU (accelerator='gpu' or 'auto' "
            "with a launcher giving one)")


def trainer_precision_problem(trainer, precision: str) -> Optional[str]:
    """:func:`precision_problem` of a built Trainer (``accelerator="auto"``
    is resolved only there)."""
    accelerator = type(trainer.accelerator).__name__.removesuffix("Accelerator").lower()
    return precision_problem(precision, accelerator, runs_as=trainer.precision)


class BatchLimit(Checker):
    """``Trainer(limit_*_batches=...)``: None (all), a fraction in (0, 1), or
    a whole number of batches >= 1 (0 too when ``zero`` is allowed)."""

    def __init__(self, zero: bool = False):
        self.zero = zero

    def check(self, value):
        if value is None or 0 < value < 1 or (value >= 1 and float(value).is_integer()) or (self.zero and value == 0):
            return True
        raise InvalidValue(f"must be {self}, got {value!r}")

    def __str__(self):
        return ("None (all batches), a fraction in (0, 1) or a whole number of batches >= 1"
                + (" (0: none)" if self.zero else ""))


def batch_limit(value: Optional[float]):
    """The Trainer's value: ``None`` -> 1.0 (all), ``0.25`` a fraction, ``3.0`` -> 3 batches."""
    if value is None:
        return 1.0
    return value if 0 < value < 1 else int(value)


class MaxSteps(Checker):
    """None (no limit) or a positive number of optimizer steps."""

    def check(self, value):
        if value is None or value > 0:
            return True
        raise InvalidValue(f"must be {self}, got {value!r}")

    def __str__(self):
        return "None (max_epochs decides) or > 0"
