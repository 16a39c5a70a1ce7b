"""The typed configs of digits_lightning's classes: their constructor
arguments as documented Params (the job ID), and how to build them.

Importing this module does not import Lightning (the plan imports it):
digits_lightning is imported inside ``module()`` / ``datamodule()``, which
run in the task's process.
"""

from __future__ import annotations

from typing import Annotated

from experimaestro import Param, field

from xpm_train import Positive, Range
from xpm_train import DataModuleConfig, ModuleConfig


class DigitsClassifier(ModuleConfig):
    """digits_lightning.DigitsClassifier: an MLP on the 64 pixels, Adam with a step decay."""

    hidden: Annotated[Param[int], Positive()] = field(default=64, ignore_default=True)
    """Width of the hidden layer"""

    lr: Annotated[Param[float], Positive()] = field(default=1e-3, ignore_default=True)
    """Adam learning rate"""

    dropout: Annotated[Param[float], Range(0, 1)] = field(default=0.1, ignore_default=True)
    """Dropout probability after the hidden layer"""

    lr_step: Annotated[Param[int], Positive()] = field(default=5, ignore_default=True)
    """Halve the learning rate every this many epochs"""

    def module(self):
        from digits_lightning import DigitsClassifier

        return DigitsClassifier(hidden=self.hidden, lr=self.lr, dropout=self.dropout, lr_step=self.lr_step)


class DigitsData(DataModuleConfig):
    """digits_lightning.DigitsDataModule: scikit-learn's digits, 80/20 train/test, validation held out."""

    batch_size: Annotated[Param[int], Positive()] = field(default=32, ignore_default=True)
    """Training batch size"""

    val_fraction: Annotated[Param[float], Range(0, 1, low_open=True)] = field(default=0.15, ignore_default=True)
    """Share of the training split held out for validation"""

    split_seed: Param[int] = field(default=0, ignore_default=True)
    """Seed of the train/validation split"""

    def datamodule(self):
        from digits_lightning import DigitsDataModule

        return DigitsDataModule(batch_size=self.batch_size, val_fraction=self.val_fraction,
                                split_seed=self.split_seed)
