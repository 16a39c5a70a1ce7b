"""A tiny MLP, and a Lightning module, whose training steps take ``pause``
seconds longer: a training that outlasts a Slurm time limit of one minute for
the price of a sleep."""

import time

from experimaestro import Meta, field

from xpm_train import MLP, DataModuleConfig, ModuleConfig


class SlowMLP(MLP):
    """:class:`xpm_train.MLP`, each training forward pass ``pause`` s longer."""

    pause: Meta[float] = field(default=0.0, ignore_default=True)
    """Seconds each training step sleeps (Meta: the same job, the same weights)"""

    def module(self, data):
        from torch import nn

        class Paused(nn.Module):
            def __init__(self, net: nn.Module, pause: float):
                super().__init__()
                self.net, self.pause = net, pause

            def forward(self, x):
                if self.training and self.pause:
                    time.sleep(self.pause)
                return self.net(x)

        return Paused(super().module(data), self.pause)


class SlowLinear(ModuleConfig):
    """slowlit.SlowLinear: a linear classifier whose training steps take ``pause`` s longer."""

    pause: Meta[float] = field(default=0.0, ignore_default=True)
    """Seconds each training step sleeps (Meta: the same job, the same weights)"""

    def module(self):
        from slowlit import SlowLinear

        return SlowLinear(pause=self.pause)


class Points(DataModuleConfig):
    """slowlit.Points: 64 random points, batches of 32"""

    def datamodule(self):
        from slowlit import Points

        return Points()
