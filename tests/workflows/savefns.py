"""Training functions that save their network in each of the ways ctx.save_model
knows (a top-level module: experimaestro loads it from its file in the jobs).

- ``fit_local``: a Model parameter whose module() defines its nn.Module class
  locally (unpicklable), built with ``build(model, info)``, saved with the Arrays;
- ``fit_loader``: its own DataLoader (no Arrays), the network from
  ``model.module(info)``, saved with ``model=`` and the DataInfo;
- ``fit_plain``: an nn.Module of a top-level class, saved whole without data.

Each writes ``probe.pt``: a fixed input and its network's outputs at the end.
"""

from __future__ import annotations

from experimaestro import Param, field
from torch import nn

from xpm_train import Result, training_function
from xpm_train.extend import DataInfo, Model, build


class LocalMLP(Model):
    """Flatten -> Linear -> a residual block whose class is local to module()."""

    width: Param[int] = field(default=8, ignore_default=True)
    """Width of the hidden layer"""

    def module(self, data):
        from torch import nn

        class Block(nn.Module):
            def __init__(self, width: int):
                super().__init__()
                self.body = nn.Linear(width, width)

            def forward(self, x):
                return x + self.body(x).relu()

        return nn.Sequential(nn.Flatten(), nn.Linear(data.features, self.width), Block(self.width),
                             nn.Linear(self.width, data.outputs))


class TopLevelNet(nn.Module):
    """A network of a top-level class: saved whole (pickled)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, x):
        return self.linear(x)


def probe(ctx, net, inputs) -> None:
    """``probe.pt``: ``inputs`` and ``net``'s outputs for them, in eval mode."""
    import torch

    net.eval()
    with torch.no_grad():
        torch.save({"inputs": inputs, "outputs": net(inputs)}, ctx.job_folder / "probe.pt")


def train_steps(net, batches, steps: int = 5) -> None:
    import torch

    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    for _, (x, y) in zip(range(steps), batches):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@training_function
def fit_local(ctx, model: Model) -> Result:
    """A few steps on the digits; saved with its Arrays."""
    from xpm_train import Digits
    from xpm_train.objectives import Classification

    data = Digits.C(split="train").instance().arrays()
    net = build(model, Classification.C().describe(data))
    inputs = (data.images[:64].float() / 255 - data.mean[0]) / data.std[0]  # as mytrain.py normalises
    train_steps(net, [(inputs, data.labels[:64])] * 5)
    ctx.save_model(net, data)
    probe(ctx, net, inputs[:8])
    return Result(objective=0.5)


@training_function
def fit_loader(ctx, model: Model) -> Result:
    """A few steps over its own DataLoader; saved with model= and a DataInfo."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    x = torch.randn(40, 4)
    loader = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8)
    info = DataInfo(shape=(4,), outputs=2, num_classes=2)
    net = model.module(info)
    train_steps(net, loader)
    ctx.save_model(net, info, model=model)
    probe(ctx, net, x[:8])
    return Result(objective=0.5)


@training_function
def fit_plain(ctx) -> Result:
    """A network of a top-level class, saved whole without data."""
    import torch

    net = TopLevelNet()
    ctx.save_model(net)
    probe(ctx, net, torch.randn(3, 4))
    return Result(objective=0.5)
