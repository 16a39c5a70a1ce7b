"""A Lightning project as its authors write it: a LightningModule and a
LightningDataModule for scikit-learn's 8x8 digits. Nothing here knows about
xpm-train (digits_configs.py declares the typed configs of these classes).

This file is a top-level module (params.yaml puts this folder on the path
with ``pythonpath: [.]``); in a project it lives in your installed package.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class DigitsDataModule(L.LightningDataModule):
    """Digits: a stratified 80/20 train/test split, part of train held out for validation."""

    def __init__(self, batch_size: int = 32, val_fraction: float = 0.15, split_seed: int = 0):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        images, labels = load_digits(return_X_y=True)
        images = torch.tensor(images / 16.0, dtype=torch.float32)
        labels = torch.tensor(labels)
        train_x, test_x, train_y, test_y = train_test_split(images, labels, test_size=0.2, stratify=labels,
                                                            random_state=0)
        fit_x, val_x, fit_y, val_y = train_test_split(train_x, train_y, test_size=self.hparams.val_fraction,
                                                      stratify=train_y, random_state=self.hparams.split_seed)
        self.train_set = TensorDataset(fit_x, fit_y)
        self.val_set = TensorDataset(val_x, val_y)
        self.test_set = TensorDataset(test_x, test_y)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=256)

    def test_dataloader(self):
        return DataLoader(self.test_set, batch_size=256)


class DigitsClassifier(L.LightningModule):
    """An MLP on the 64 pixels, trained with Adam and a step decay of the learning rate."""

    def __init__(self, hidden: int = 64, lr: float = 1e-3, dropout: float = 0.1, lr_step: int = 5):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def evaluate(self, batch, split: str):
        x, y = batch
        logits = self(x)
        # sync_dist: on several devices (DDP) the mean over every rank's shard; nothing on one
        self.log(f"{split}_loss", nn.functional.cross_entropy(logits, y), sync_dist=True)
        self.log(f"{split}_accuracy", (logits.argmax(1) == y).float().mean(), sync_dist=True)

    def validation_step(self, batch, batch_idx):
        self.evaluate(batch, "val")

    def test_step(self, batch, batch_idx):
        self.evaluate(batch, "test")

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=self.hparams.lr_step, gamma=0.5)
        return {"optimizer": optimizer, "lr_scheduler": schedule}
