"""One training run of the streaming benchmark (:mod:`bench.streaming`), as its own process.

``--mode`` says where the batches come from; everything else is the same
loop (the network, Adam, batch size, one ``loss.item()`` per step, the same
number of torch threads and of DataLoader workers):

- ``stream``: xpm-train's streaming path (:class:`xpm_train.data.stream.StreamData`
  over the prepared records: ``--workers`` DataLoader workers, normalisation on
  the device), the order of :func:`xpm_train.sampler.epoch_order`;
- ``memory``: xpm-train's in-memory path (:class:`xpm_train.pipeline.DeviceData`
  over ``ImageFolder.arrays()``), same order;
- ``torchvision``: ``torchvision.datasets.ImageFolder`` with ``ToTensor`` +
  ``Normalize`` and a ``DataLoader(shuffle=True, num_workers=--workers,
  persistent_workers=True)``, as a user would write it.

Prints one JSON line: the wall time of every epoch, the samples per epoch, the
torch threads, and the peak resident memory of this process and of its
(worker) children, in MB.

    python -m bench.stream_loop --mode stream --folder F --model mlp --epochs 3
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path


def network(model: str):
    from xpm_train.data.base import DataInfo
    from xpm_train.models import CNN, MLP

    info = DataInfo(shape=(3, 32, 32), outputs=10, num_classes=10)
    if model == "mlp":
        return MLP.C(hidden_dims=[128]).instance().module(info)
    return CNN.C(n_layers=2, hidden_dim=32, kernel_size=3).instance().module(info)


def batches_of(mode: str, folder: Path, batch_size: int, workers: int):
    """``(samples, epoch -> iterator of normalised (images, labels))``."""
    import torch

    from xpm_train.data import prepare_image_folder
    from xpm_train.data.stream import Streaming, open_split
    from xpm_train.pipeline import DeviceData
    from xpm_train.sampler import epoch_order

    cpu = torch.device("cpu")
    if mode == "torchvision":
        import torchvision.transforms as transforms
        from torchvision.datasets import ImageFolder

        mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
        dataset = ImageFolder(str(folder), transform=transforms.Compose([transforms.ToTensor(),
                                                                          transforms.Normalize(mean, std)]))
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                                             persistent_workers=workers > 0)
        return len(dataset), lambda epoch: iter(loader)
    config = prepare_image_folder(folder, test_fraction=0.05, decode=mode == "memory").train.instance()
    if mode == "memory":
        data = DeviceData(config.arrays(), cpu)
    else:
        streamed, _ = open_split(config, Streaming.C(mode="always", workers=workers))
        data = streamed.data(None, cpu)
    return len(data), lambda epoch: data.batches(batch_size, epoch_order(len(data), 0, epoch))


def train(mode: str, folder: Path, model: str, batch_size: int, epochs: int, workers: int) -> dict:
    import torch

    torch.manual_seed(0)
    samples, epoch_batches = batches_of(mode, folder, batch_size, workers)
    net = network(model)
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    epoch_times, losses = [], []
    for epoch in range(epochs):
        start, total, steps = time.perf_counter(), 0.0, 0
        for images, labels in epoch_batches(epoch):
            loss = torch.nn.functional.cross_entropy(net(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
            steps += 1
        epoch_times.append(time.perf_counter() - start)
        losses.append(total / max(steps, 1))
    return {"epoch_times": epoch_times, "samples": samples, "losses": losses, "threads": torch.get_num_threads(),
            "rss_mb": peak_rss_mb(resource.RUSAGE_SELF), "children_rss_mb": peak_rss_mb(resource.RUSAGE_CHILDREN)}


def peak_rss_mb(who: int) -> float:
    """Peak resident set of this process (or the largest of its waited-for children), MB."""
    return resource.getrusage(who).ru_maxrss / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["stream", "memory", "torchvision"], required=True)
    parser.add_argument("--folder", type=Path, required=True, help="the PNG folder (one sub-folder per class)")
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    print(json.dumps(train(args.mode, args.folder, args.model, args.batch_size, args.epochs, args.workers)))  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
