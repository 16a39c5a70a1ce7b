"""Benchmark 1: training samples/s, xpm-train's Learn against the experimaestro
demo loop, same network, batch size and images, side by side.

Both read the same real-format MNIST files (synthetic images written by
``xpm_train.data.write_idx_dataset``, 28x28 grey, 10 classes): Learn through
``MNIST.C(split="train", folder=...)``, the demo through
``torchvision.datasets.MNIST`` over decompressed copies of the same files.

- **Learn** runs for real as a task: ``experimaestro run-experiment`` of
  ``bench/plans/learn`` (one job, ``cpu(cores=2)``, ``val_fraction=0`` so it
  trains on the same 60000 images as the demo). Its throughput is read from
  its ``metrics.jsonl``: epoch ``e >= 1`` trains ``n`` samples between the
  ``train`` records of epochs ``e-1`` and ``e`` (a whole epoch, including the
  per-epoch checkpoint; epoch 0 holds the warm-up).
- **Demo** runs as its own process (:mod:`bench.demo_loop`); its epochs after
  the first are timed the same way.

Each side trains 3 epochs; the figure is the median of epochs 1 and 2 (samples/s).
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .common import PYTHON, REPO, BenchError, bench_env, job_folders, load, median, read_jsonl, run_plan

MODELS = {
    "MLP (784-128-10)": {"model": "mlp", "hidden": 128},
    "demo CNN (2 conv x32, k3)": {"model": "cnn", "hidden": 32},
    "MLP (784-128-10), Learn with Adam(fused=False)": {"model": "mlp", "hidden": 128, "fused": False},
}
"""Learn uses xpm_train.Adam's default, torch's fused kernel; the demo, torch's
default for-loop Adam. The last row gives Learn the demo's for-loop Adam too
(``Adam.C(fused=False)``): what the data pipeline and the loop alone gain."""


def write_mnist_files(folder: Path, n_train: int, n_test: int) -> tuple[Path, Path]:
    """Synthetic MNIST-format files: (folder of the .gz IDX files for
    ``MNIST.C``, torchvision root with the decompressed copies in ``MNIST/raw``)."""
    from xpm_train.data import write_idx_dataset

    idx = folder / "idx"
    idx.mkdir(parents=True, exist_ok=True)
    write_idx_dataset(idx, n_train=n_train, n_test=n_test)
    raw = folder / "torchvision" / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for path in idx.glob("*.gz"):
        with gzip.open(path, "rb") as src, (raw / path.stem).open("wb") as dst:
            shutil.copyfileobj(src, dst)
    return idx, folder / "torchvision"


def learn_epoch_rates(job: Path, samples: int) -> list[float]:
    """samples/s of every epoch after the first, from Learn's ``metrics.jsonl``."""
    ends = [r["elapsed"] for r in read_jsonl(job / "metrics.jsonl") if r.get("split") == "train"]
    return [samples / (b - a) for a, b in zip(ends, ends[1:]) if b > a]


def run_learn(workdir: Path, idx: Path, spec: dict, batch_size: int, epochs: int, device: str) -> dict:
    wall = run_plan(
        "learn", workdir, "data=mnist", f"mnist_folder={idx}", f"model={spec['model']}",
        f"hidden={spec['hidden']}", f"epochs={epochs}", f"batch_size={batch_size}", "val_fraction=0.0",
        f"device={device}", "launcher=duration=1h & cpu(cores=2)", f"fused={str(spec.get('fused', True)).lower()}",
    )
    (job,) = job_folders(workdir, "xpm_train.learn.learn")
    start = next(e for e in read_jsonl(job / "events.jsonl") if e["event"] == "start")
    final = json.loads((job / "final.json").read_text())
    rates = learn_epoch_rates(job, start["train_samples"])
    if not rates:
        raise BenchError(f"{job}: fewer than 2 epochs in metrics.jsonl, no steady-state epoch to time")
    return {"samples_per_s": median(rates), "epoch_rates": rates, "final_samples_per_s": final["samples_per_s"],
            "plan_wall_s": wall, "job": str(job)}


def run_demo(tv_root: Path, spec: dict, batch_size: int, epochs: int, device: str) -> dict:
    command = [PYTHON, "-m", "bench.demo_loop", "--root", str(tv_root), "--model", spec["model"],
               "--hidden", str(spec["hidden"]), "--batch-size", str(batch_size), "--epochs", str(epochs),
               "--device", device]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=bench_env(), timeout=7200)
    if done.returncode != 0:
        raise BenchError(f"demo loop failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rates = [result["samples"] / t for t in result["epoch_times"][1:]]
    return {"samples_per_s": median(rates), "epoch_rates": rates, "threads": result["threads"]}


def run(tmp: Path, quick: bool, cuda: bool) -> list[dict[str, Any]]:
    n_train, n_test = (6000, 1000) if quick else (60000, 10000)
    batch_size, epochs = 64, 3
    idx, tv_root = write_mnist_files(tmp / "mnist", n_train, n_test)
    rows = []
    for device in ("cpu", "cuda"):
        for name, spec in MODELS.items():
            case = f"{name}, batch {batch_size}, {n_train} MNIST-format images, {device}"
            if device == "cuda" and not cuda:
                rows.append({"benchmark": "throughput", "case": case, "skipped": "no CUDA device on this host"})
                continue
            load_before = load()
            folder = f"learn-{spec['model']}{'-loop' if spec.get('fused') is False else ''}-{device}"
            learn = run_learn(tmp / folder, idx, spec, batch_size, epochs, device)
            load_between = load()
            demo = run_demo(tv_root, spec, batch_size, epochs, device)
            rows.append({
                "benchmark": "throughput", "case": case, "unit": "samples/s",
                "xpm_train": learn["samples_per_s"], "baseline": demo["samples_per_s"],
                "ratio": learn["samples_per_s"] / demo["samples_per_s"],
                "notes": (f"median of {len(learn['epoch_rates'])} steady-state epochs; {demo['threads']} torch "
                          f"thread(s); load {load_before:.1f} / {load_between:.1f}"),
                "learn": learn, "demo": demo, "load_before": load_before, "load_between": load_between,
                "load_after": load(),
            })
    return rows
