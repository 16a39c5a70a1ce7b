"""The Lightning classes of ``SlowLinear`` / ``Points`` (slowmodel.py): a linear
classifier whose training steps sleep ``pause`` s, on 64 random points in
batches of 32 (2 steps per epoch: a segment between two time limits makes progress) (imported in the job only)."""

import time

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Points(L.LightningDataModule):
    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(64, 4, generator=generator)
        self.y = (self.x[:, 0] > 0).long()

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y), batch_size=32, shuffle=True)

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y), batch_size=64)


class SlowLinear(L.LightningModule):
    def __init__(self, pause: float = 0.0):
        super().__init__()
        self.pause = pause
        self.net = nn.Linear(4, 2)

    def training_step(self, batch, batch_idx):
        time.sleep(self.pause)
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_accuracy", (self.net(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
