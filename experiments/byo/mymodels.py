"""A model written by a user, outside xpm_train: a residual MLP.

A top-level module beside the plan (params.yaml: ``pythonpath: [.]``):
experimaestro records its file, so every task process (Learn, Evaluate,
the study's trials) loads the class from there, as does ``xpm_train.load``.
"""

from __future__ import annotations

from typing import Annotated

from experimaestro import Constant, Param, field

from xpm_train import Positive
from xpm_train.extend import DataInfo, Model


class ResidualMLP(Model):
    """Flattened inputs -> ``blocks`` residual blocks of width ``width`` -> ``data.outputs``."""

    width: Annotated[Param[int], Positive()] = field(default=64, ignore_default=True)
    """Width of the residual stream"""

    blocks: Annotated[Param[int], Positive()] = field(default=2, ignore_default=True)
    """Number of residual blocks (Linear-ReLU-Linear, added to their input)"""

    version: Constant[str] = "1"
    """Bump it when a change of this code changes results: every job using it runs again"""

    def module(self, data: DataInfo):
        from torch import nn

        class Block(nn.Module):
            def __init__(self, width: int):
                super().__init__()
                self.body = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))

            def forward(self, x):
                return x + self.body(x)

        return nn.Sequential(nn.Flatten(), nn.Linear(data.features, self.width),
                             *[Block(self.width) for _ in range(self.blocks)],
                             nn.ReLU(), nn.Linear(self.width, data.outputs))
