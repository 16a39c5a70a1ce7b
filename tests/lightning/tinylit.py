"""A tiny Lightning project for the adapter's tests (imported in the job
process only): a linear classifier on random points, a data module, a
callback that changes results, one that kills its own process once."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class TinyData(L.LightningDataModule):
    def __init__(self, samples: int = 64, batch_size: int = 4):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(samples, 4, generator=generator)
        self.y = (self.x[:, 0] > 0).long()
        self.batch_size = batch_size

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.batch_size)

    def predict_dataloader(self):
        return DataLoader(self.x[:10], batch_size=5)


class TinyModule(L.LightningModule):
    """Logs per-step validation points, writes through self.logger.experiment,
    keeps its own ModelCheckpoint (no dirpath) from configure_callbacks."""

    def __init__(self, lr: float = 0.1):
        super().__init__()
        self.lr = lr
        self.net = nn.Linear(4, 2)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        self.logger.experiment.add_scalar("train_weight_norm", self.net.weight.norm())
        return loss

    def on_train_epoch_end(self):
        self.logger.experiment.log_metrics({"train_epoch_seen": self.current_epoch})

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y), on_step=True, on_epoch=True)
        self.log("val_accuracy", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr)
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5)}

    def configure_callbacks(self):
        return [ModelCheckpoint(monitor="val_accuracy", mode="max", save_last=True)]


class HalveLr(L.Callback):
    """Changes results: halves the learning rate after every epoch."""

    def on_train_epoch_end(self, trainer, pl_module):
        for group in trainer.optimizers[0].param_groups:
            group["lr"] /= 2


class KillOnce(L.Callback):
    """SIGKILLs its own process at a batch of an epoch, once (``marker``)."""

    def __init__(self, marker: Path, epoch: int, batch: int):
        self.marker, self.epoch, self.batch = Path(marker), epoch, batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch and not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
