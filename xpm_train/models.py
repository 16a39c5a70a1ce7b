"""Models: typed configs that build a ``torch.nn.Module``.

A model config only holds the hyper-parameters that change results (its
``Param``s); the input shape and the output size come from the data and the
objective at build time (a :class:`~xpm_train.data.base.DataInfo`), so one
``CNN.C(hidden_dim=64)`` can be trained on MNIST or CIFAR, one ``MLP`` on
images or a table, for classes or values.

The weights of a trained model travel as an init task: ``Learn`` outputs a
:class:`LoadWeights` that, run before a task such as ``Evaluate``, tells the
model config which checkpoint :func:`build` must load.
"""

from __future__ import annotations

import logging
import os
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from experimaestro import Config, LightweightTask, Meta, Param, field

from .errors import config_name
from .checks import Positive, Range

if TYPE_CHECKING:
    from torch import nn

    from .data.base import DataInfo
    from .objectives import Objective

logger = logging.getLogger("xpm_train.models")


class Model(Config):
    """A network for some data (interface: subclasses implement :meth:`module`).

    A user's model is a subclass in the user's own module (see
    docs/extending.md); give it a ``version: Constant[str] = "1"`` to bump
    when its code changes results, so that every job using it runs again.
    """

    def module(self, data: "DataInfo") -> "nn.Module":
        """A freshly initialised network for inputs of shape ``data.shape``
        (one sample) with ``data.outputs`` values out per sample."""
        raise NotImplementedError(f"{config_name(self)} does not implement module(data)")

    def channels_last(self) -> bool:
        """Whether the network runs faster on channels-last (NHWC) inputs: true of
        convolutional networks, on CPUs (oneDNN) as on GPUs. A layout changes
        no result beyond floating-point rounding."""
        return False

    def build(self, data: "DataInfo") -> "nn.Module":
        """Its network for ``data`` as Learn builds it (:func:`build`: the
        weights an init task attached, the layout): how
        :func:`xpm_train.trained.rebuild` rebuilds a trained job's network
        without knowing the kinds of model config (one method, not overridden)."""
        return build(self, data)


class MLP(Model):
    """A multi-layer perceptron on flattened pixels."""

    hidden_dims: Annotated[Param[list[int]], Positive()] = field(default=[128], ignore_default=True)
    """Width of each hidden layer (empty: a linear classifier)"""

    dropout: Annotated[Param[float], Range(0, 1)] = field(default=0.0, ignore_default=True)
    """Dropout probability after each hidden layer"""

    def module(self, data):
        from torch import nn

        layers: list[nn.Module] = [nn.Flatten()]
        width = data.features
        for hidden in self.hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            if self.dropout > 0:
                layers.append(nn.Dropout(self.dropout))
            width = hidden
        layers.append(nn.Linear(width, data.outputs))
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

    def module(self, data):
        from torch import nn

        channels, height, width = image_shape(self, data)
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
            nn.Linear(self.hidden_dim * (height // 2) * (width // 2), data.outputs),
        ]
        return nn.Sequential(*layers)

    def channels_last(self) -> bool:
        return True


class ResNet(Model):
    """torchvision's ResNet-18/34 adapted to small images (28x28, 32x32): a 3x3
    stem with stride 1 and no max-pool, as is usual for CIFAR."""

    depth: Param[int] = field(default=18, ignore_default=True)
    """18 or 34"""

    def module(self, data):
        from torch import nn
        from torchvision.models import resnet18, resnet34

        if self.depth not in (18, 34):
            raise ValueError(f"ResNet.depth must be 18 or 34, got {self.depth}")
        channels = image_shape(self, data)[0]
        net = (resnet18 if self.depth == 18 else resnet34)(num_classes=data.outputs)
        net.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
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
        attach_weights(self.model, self.path)


class SavedModel(Model):
    """The network a training function saved with ``ctx.save_model(net)``;
    get it from the function's task and give the task's output as init task,
    which says which job's network this is (so it is part of the Evaluate's ID)::

        task = train.C(lr=1e-3)
        output = task.submit()
        Evaluate.C(model=task.saved_model(), data=test).submit(init_tasks=[output])
    """

    def module(self, data):
        from .trained import NoTrainedModel, network

        path = attached_weights(self)
        if path is None:
            raise NoTrainedModel("SavedModel has no network: submit the task with the training function's "
                                 "output as init task (init_tasks=[train.C(...).submit()])")
        if not Path(path).exists():
            raise NoTrainedModel(f"the training function saved no model ({path} is missing): call "
                                 "ctx.save_model(net) in it, bump its version and run the plan again")
        return network(Path(path).parent.parent)  # path: checkpoints/best.pt of the function's job


def image_shape(model: Model, data: "DataInfo") -> tuple[int, int, int]:
    """``(C, H, W)`` of ``data``, or a one-line error for a model that needs images."""
    from .objectives import ObjectiveError

    if len(data.shape) != 3:
        raise ObjectiveError(f"{config_name(model)} needs C x H x W images, the data has samples of shape "
                             f"{data.shape}: use MLP (or a model of your own) for this data")
    return data.shape


def attach_weights(model: Model, path: Path) -> None:
    """Say that :func:`build` must load ``model``'s weights from ``path`` (the
    one writer of the attachment; :func:`attached_weights` the one reader)."""
    model.__dict__["_xpm_train_weights"] = Path(path)


def attached_weights(model: Model) -> "Path | None":
    """The checkpoint :func:`attach_weights` gave ``model``, if any."""
    return model.__dict__.get("_xpm_train_weights")


def build(model: Model, data: "DataInfo") -> "nn.Module":
    """The network of ``model`` for ``data``, with its trained weights when an
    init task (:class:`LoadWeights`) provided them, in channels-last layout
    when the model prefers it (:meth:`Model.channels_last`)."""
    import inspect

    from .checkpoint import load_weights

    if len(inspect.signature(model.module).parameters) == 2:  # the former module(shape, num_classes)
        net = model.module(data.shape, data.outputs)
    else:
        net = model.module(data)
    path = attached_weights(model)
    if path is not None:
        net.load_state_dict(load_weights(Path(path)))
    if model.channels_last():
        import torch

        net = net.to(memory_format=torch.channels_last)
    BUILT[net] = (model, data)
    return net


BUILT: "weakref.WeakKeyDictionary[nn.Module, tuple[Model, DataInfo]]" = weakref.WeakKeyDictionary()
"""The model config and DataInfo each network :func:`build` returned was built from (a
training function's ``ctx.save_model`` saves its weights and the config's
name, not the pickled module)"""


def check_model_outputs(model: Model, objective: "Objective", data) -> None:
    """Refuse, when the plan submits a Learn or an Evaluate, a ``model`` whose
    output size does not fit ``objective`` on ``data``: the network is built
    and run on PyTorch's ``meta`` device (no memory, no computation) for the
    data's :meth:`~xpm_train.data.base.Dataset.schema`. Nothing is checked
    when the data cannot describe itself without loading or the model cannot
    run on ``meta`` (e.g. it loads a file): the job checks again when it starts."""
    schema = data.schema()
    if schema is None:
        return
    import torch

    from .objectives import ObjectiveError

    info = objective.describe(schema)
    environment = dict(os.environ)
    try:
        with torch.device("meta"):
            net = build(model, info).eval()
            outputs = net(torch.empty((2, *info.shape)))
    except ObjectiveError:
        raise
    except Exception as error:  # noqa: BLE001 - checked for sure when the job starts
        logger.debug("%s: output size not checked at submit (%s: %s)", config_name(model),
                     type(error).__name__, error)
        return
    finally:
        # The meta device's first use makes torch's inductor write its default
        # TORCHINDUCTOR_CACHE_DIR into os.environ: the plan's jobs would inherit
        # it (and key another warm server than a plan that imported no torch).
        if os.environ != environment:
            os.environ.clear()
            os.environ.update(environment)
    objective.check_outputs(outputs, info, model)
