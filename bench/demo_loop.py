"""The baseline: the experimaestro demo's training loop (experimaestro-demo,
``mnist_xp/learn.py``), on the same network as xpm-train's Learn.

What it keeps from the demo: ``torchvision.datasets.MNIST`` read from the raw
IDX files, per-sample PIL images through ``transforms.Compose([ToTensor(),
Normalize((0.5,), (0.5,))])``, a ``DataLoader(batch_size, shuffle=True)``
(no workers, as in the demo), Adam, and ``loss.item()`` at every step. What
it drops (which only helps the demo): the TensorBoard ``add_scalar`` of every
step and tqdm. The networks are the same functions with the same parameters
as xpm-train's (the demo's CNN adds a ``log_softmax`` before
``CrossEntropyLoss``; negligible), see :func:`network`.

Run as its own process by :mod:`bench.throughput`::

    python -m bench.demo_loop --root R --model cnn --hidden 32 --epochs 2

prints one JSON line: the wall time of every epoch and the samples per epoch.
"""

from __future__ import annotations

import argparse
import json
import time


def network(model: str, hidden: int, layers: int, kernel_size: int):
    """The network as the demo writes it. The MLP is xpm-train's; the demo's
    CNN is built here in the demo's order (each convolution followed by a
    ReLU, then the max-pool): xpm-train's ``CNN`` computes the same function
    with the same parameters but pools before its last ReLU (cheaper), so
    building it from ``xpm_train.models`` would hand the demo that speed-up."""
    import torch.nn as nn

    from xpm_train.data.base import DataInfo
    from xpm_train.models import MLP

    if model == "mlp":
        return MLP.C(hidden_dims=[hidden]).instance().module(DataInfo(shape=(1, 28, 28), outputs=10))
    blocks: list[nn.Module] = []
    for i in range(layers):
        blocks += [nn.Conv2d(1 if i == 0 else hidden, hidden, kernel_size, padding="same"), nn.ReLU()]
    return nn.Sequential(*blocks, nn.MaxPool2d(2), nn.Flatten(), nn.Linear(hidden * 14 * 14, 10))


def train(root: str, model: str, hidden: int, layers: int, kernel_size: int, batch_size: int,
          epochs: int, device: str, lr: float = 1e-3) -> dict:
    import torch
    import torch.nn as nn
    import torch.optim as optim
    import torchvision.transforms as transforms
    from torchvision.datasets import MNIST

    torch.manual_seed(0)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    trainset = MNIST(root, train=True, transform=transform)
    trainloader = torch.utils.data.DataLoader(trainset, batch_size=batch_size, shuffle=True)

    net = network(model, hidden, layers, kernel_size).to(device)
    net.train()
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(net.parameters(), lr=lr)

    epoch_times, losses = [], []
    for _ in range(epochs):
        start = time.perf_counter()
        running_loss = 0.0
        for images, labels in trainloader:
            images, labels = images.to(device), labels.to(device)
            output = net(images)
            optimizer.zero_grad()
            loss = criterion(output, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        epoch_times.append(time.perf_counter() - start)
        losses.append(running_loss / len(trainloader))
    return {"epoch_times": epoch_times, "samples": len(trainset), "losses": losses,
            "threads": torch.get_num_threads()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="torchvision root (holds MNIST/raw/)")
    parser.add_argument("--model", choices=["mlp", "cnn"], default="cnn")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--kernel-size", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    result = train(args.root, args.model, args.hidden, args.layers, args.kernel_size,
                   args.batch_size, args.epochs, args.device)
    print(json.dumps(result))  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
