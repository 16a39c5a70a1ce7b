"""Typed configs of tinylit's classes (tinylit is imported in the job only)."""

from __future__ import annotations

from pathlib import Path

from experimaestro import Meta, Param, field

from xpm_train import CallbackConfig, DataModuleConfig, LoggerConfig, ModuleConfig


class Tiny(ModuleConfig):
    """tinylit.TinyModule"""

    lr: Param[float] = field(default=0.1, ignore_default=True)
    """SGD learning rate"""

    def module(self):
        from tinylit import TinyModule

        return TinyModule(lr=self.lr)


class TinyData(DataModuleConfig):
    """tinylit.TinyData: 64 random points, batches of 4"""

    def datamodule(self):
        from tinylit import TinyData

        return TinyData()


class HalveLr(CallbackConfig):
    """tinylit.HalveLr: halves the learning rate every epoch (changes results: a Param)"""

    def callback(self):
        from tinylit import HalveLr

        return HalveLr()


class KillOnce(CallbackConfig):
    """tinylit.KillOnce: SIGKILL of the job's own process, once"""

    marker: Meta[Path]
    """Exists once the process was killed"""

    epoch: Param[int] = 1
    """The epoch of the kill"""

    batch: Param[int] = 2
    """The batch of the kill"""

    def callback(self):
        from tinylit import KillOnce

        return KillOnce(self.marker, self.epoch, self.batch)


class Csv(LoggerConfig):
    """Lightning's CSVLogger in the folder the task gives"""

    def logger(self, folder):
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=folder, name="csv")


class LrMonitor(CallbackConfig):
    """Lightning's LearningRateMonitor (only watches: Meta)"""

    def callback(self):
        from lightning.pytorch.callbacks import LearningRateMonitor

        return LearningRateMonitor(logging_interval="step")


class SignalledTiny(Tiny):
    """tinylit.TinyModule, built after this process sent itself SIGUSR1 (as
    Slurm's warning may arrive while the job sets up, before the fit starts)"""

    def module(self):
        import os
        import signal

        os.kill(os.getpid(), signal.SIGUSR1)
        return super().module()
