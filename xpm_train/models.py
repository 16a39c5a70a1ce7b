"""Models: typed configs that build a ``torch.nn.Module``.

A model config only holds the hyper-parameters that change results (its
``Param``s); the input shape and the number of classes come from the data at
build time, so one ``CNN.C(hidden_dim=64)`` can be trained on MNIST or CIFAR.

The weights of a trained model travel as an init task: ``Learn`` outputs a
:class:`LoadWeights` that, run before a task such as ``Evaluate``, tells the
model config which checkpoint :func:`build` must load.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from experimaestro import Config, LightweightTask, Meta, Param, field

from .checks import Positive, Range

if TYPE_CHECKING:
    from torch import nn


class Model(Config):
    """A classifier over images (interface: subclasses implement :meth:`module`)."""

    def module(self, shape: tuple[int, int, int], num_classes: int) -> "nn.Module":
        """A freshly initialised network for ``shape`` = (C, H, W) inputs."""
        raise NotImplementedError(f"{type(self).__name__} does not implement module()")

    def channels_last(self) -> bool:
        """Whether the network runs faster on channels-last (NHWC) inputs: true of
        convolutional networks, on CPUs (oneDNN) as on GPUs. A layout changes
        no result beyond floating-point rounding."""
        return False


class MLP(Model):
    """A multi-layer perceptron on flattened pixels."""

    hidden_dims: Annotated[Param[list[int]], Positive()] = field(default=[128], ignore_default=True)
    """Width of each hidden layer (empty: a linear classifier)"""

    dropout: Annotated[Param[float], Range(0, 1)] = field(default=0.0, ignore_default=True)
    """Dropout probability after each hidden layer"""

    def module(self, shape, num_classes):
        from torch import nn

        layers: list[nn.Module] = [nn.Flatten()]
        width = shape[0] * shape[1] * shape[2]
        for hidden in self.hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            if self.dropout > 0:
                layers.append(nn.Dropout(self.dropout))
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        return nn.Sequential(*layers)


class CNN(Model):
    """The experimaestro demo's CNN: ``n_layers`` same-padded convolutions, a
    2x2 max-pool and a linear classifier."""

    n_layers: Annotated[Param[int], Positive()] = field(default=2, ignore_default=True)
    """Number of convolution layers"""

    hidden_dim: Annotated[Param[int], Positive()] = field(default=64, ignore_default=True)
    """Channels of each convolution layer"""

    kernel_size: Annotated[Param[int], Positive()] = field(default=3, ignore_default=True)
    """Kernel size of the convolutions"""

    def module(self, shape, num_classes):
        from torch import nn

        channels, height, width = shape
        layers: list[nn.Module] = []
        for i in range(self.n_layers):
            layers.append(nn.Conv2d(channels if i == 0 else self.hidden_dim, self.hidden_dim,
                                    self.kernel_size, padding="same"))
            if i < self.n_layers - 1:
                layers.append(nn.ReLU())
        # The demo applies ReLU then the max-pool; both are monotone, so they
        # commute: pooling first gives the very same outputs and gradients with
        # a quarter of the last ReLU's work (the same parameter names, too)
        layers += [
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(self.hidden_dim * (height // 2) * (width // 2), num_classes),
        ]
        return nn.Sequential(*layers)

    def channels_last(self) -> bool:
        return True


class ResNet(Model):
    """torchvision's ResNet-18/34 adapted to small images (28x28, 32x32): a 3x3
    stem with stride 1 and no max-pool, as is usual for CIFAR."""

    depth: Param[int] = field(default=18, ignore_default=True)
    """18 or 34"""

    def module(self, shape, num_classes):
        from torch import nn
        from torchvision.models import resnet18, resnet34

        if self.depth not in (18, 34):
            raise ValueError(f"ResNet.depth must be 18 or 34, got {self.depth}")
        net = (resnet18 if self.depth == 18 else resnet34)(num_classes=num_classes)
        net.conv1 = nn.Conv2d(shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        return net

    def channels_last(self) -> bool:
        return True


class LoadWeights(LightweightTask):
    """Init task produced by ``Learn``: the trained weights of ``model``.

    Run before a task (``init_tasks=[...]``), it records which checkpoint the
    model must be built with; :func:`build` then loads it.
    """

    model: Param[Model]
    """The model whose weights were trained"""

    path: Meta[Path]
    """Checkpoint holding the trained weights"""

    def execute(self):
        self.model.__dict__["_xpm_train_weights"] = self.path


def build(model: Model, shape, num_classes: int) -> "nn.Module":
    """The network of ``model``, with its trained weights when an init task
    (:class:`LoadWeights`) provided them, in channels-last layout when the
    model prefers it (:meth:`Model.channels_last`)."""
    from .checkpoint import load_weights

    net = model.module(tuple(shape), num_classes)
    path = model.__dict__.get("_xpm_train_weights")
    if path is not None:
        net.load_state_dict(load_weights(Path(path)))
    if model.channels_last():
        import torch

        net = net.to(memory_format=torch.channels_last)
    return net
