"""Benchmark 1: training samples/s, xpm-train's Learn against the experimaestro
demo loop, same network, batch size and images, side by side.

Both read the same real-format MNIST files (synthetic images written by
``xpm_train.data.write_idx_dataset``, 28x28 grey, 10 classes): Learn through
``MNIST.C(split="train", folder=...)``, the demo through
``torchvision.datasets.MNIST`` over decompressed copies of the same files.

- **Learn** runs for real as a task: ``experimaestro run-experiment`` of
  ``bench/plans/learn`` (one job, ``cpu(cores=THREADS)``, ``val_fraction=0`` so it
  trains on the same 60000 images as the demo). Its throughput is read from
  its ``metrics.jsonl``: epoch ``e >= 1`` trains ``n`` samples between the
  ``train`` records of epochs ``e-1`` and ``e`` (a whole epoch, including the
  per-epoch checkpoint; epoch 0 holds the warm-up).
- **Demo** runs as its own process (:mod:`bench.demo_loop`); its epochs after
  the first are timed the same way.

Each run trains 3 epochs and is timed by the median of its epochs 1 and 2.
Each side runs ``REPEATS`` times, interleaved and in alternating order
(Learn, demo; demo, Learn; Learn, demo), so that a slow spell of a shared
machine falls on both sides; a side's figure is the median of its runs, its
spread ``(max - min) / median``. Both sides run with the same number of torch
threads (``THREADS``, or ``--threads``), recorded from each process
(``torch.get_num_threads()``) and checked equal.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .common import PYTHON, REPO, BenchError, bench_env, job_folders, load, median, read_jsonl, run_plan

REPEATS = 3
"""Runs of each side per case, interleaved"""

THREADS = 2
"""Torch threads of both sides (and cores of the Learn job) unless ``--threads`` sets OMP_NUM_THREADS"""

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


def run_learn(workdir: Path, idx: Path, spec: dict, batch_size: int, epochs: int, device: str,
              threads: int) -> dict:
    wall = run_plan(
        "learn", workdir, "data=mnist", f"mnist_folder={idx}", f"model={spec['model']}",
        f"hidden={spec['hidden']}", f"epochs={epochs}", f"batch_size={batch_size}", "val_fraction=0.0",
        f"device={device}", f"launcher=duration=1h & cpu(cores={threads})",
        f"fused={str(spec.get('fused', True)).lower()}", env=thread_env(threads),
    )
    (job,) = job_folders(workdir, "xpm_train.learn.learn")
    start = next(e for e in read_jsonl(job / "events.jsonl") if e["event"] == "start")
    final = json.loads((job / "final.json").read_text())
    rates = learn_epoch_rates(job, start["train_samples"])
    if not rates:
        raise BenchError(f"{job}: fewer than 2 epochs in metrics.jsonl, no steady-state epoch to time")
    return {"samples_per_s": median(rates), "epoch_rates": rates, "final_samples_per_s": final["samples_per_s"],
            "plan_wall_s": wall, "threads": start["threads"], "job": str(job)}


def run_demo(tv_root: Path, spec: dict, batch_size: int, epochs: int, device: str, threads: int) -> dict:
    command = [PYTHON, "-m", "bench.demo_loop", "--root", str(tv_root), "--model", spec["model"],
               "--hidden", str(spec["hidden"]), "--batch-size", str(batch_size), "--epochs", str(epochs),
               "--device", device]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                          env={**bench_env(), **thread_env(threads)}, timeout=7200)
    if done.returncode != 0:
        raise BenchError(f"demo loop failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rates = [result["samples"] / t for t in result["epoch_times"][1:]]
    return {"samples_per_s": median(rates), "epoch_rates": rates, "threads": result["threads"]}


def thread_env(threads: int) -> dict[str, str]:
    """Both thread pools of a process (torch sizes its pool from them)."""
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def spread(values: list[float]) -> float:
    """``(max - min) / median`` of the runs of one side."""
    return (max(values) - min(values)) / median(values)


def compare(run_learn_once, run_demo_once, repeats: int = REPEATS) -> dict[str, Any]:
    """``repeats`` runs of each side, interleaved in alternating order; the
    medians, spreads and thread counts of both sides (checked equal)."""
    learns, demos, order = [], [], []
    for repeat in range(repeats):
        sides = ("learn", "demo") if repeat % 2 == 0 else ("demo", "learn")
        for side in sides:
            if side == "learn":
                learns.append(run_learn_once(repeat))
            else:
                demos.append(run_demo_once(repeat))
            order.append(side)
    threads = {"learn": sorted({r["threads"] for r in learns}), "demo": sorted({r["threads"] for r in demos})}
    if threads["learn"] != threads["demo"] or len(threads["learn"]) != 1:
        raise BenchError(f"torch thread counts differ between the two sides: {threads}; not comparable")
    learn = median([r["samples_per_s"] for r in learns])
    demo = median([r["samples_per_s"] for r in demos])
    return {"learn": learn, "demo": demo, "ratio": learn / demo, "threads": threads["learn"][0], "order": order,
            "learn_spread": spread([r["samples_per_s"] for r in learns]),
            "demo_spread": spread([r["samples_per_s"] for r in demos]), "learn_runs": learns, "demo_runs": demos}


def run(tmp: Path, quick: bool, cuda: bool) -> list[dict[str, Any]]:
    n_train, n_test = (6000, 1000) if quick else (60000, 10000)
    batch_size, epochs = 64, 3
    threads = int(os.environ.get("OMP_NUM_THREADS") or THREADS)
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
            result = compare(
                lambda repeat: run_learn(tmp / f"{folder}-{repeat}", idx, spec, batch_size, epochs, device, threads),
                lambda repeat: run_demo(tv_root, spec, batch_size, epochs, device, threads),
            )
            rows.append({
                "benchmark": "throughput", "case": case, "unit": "samples/s",
                "xpm_train": result["learn"], "baseline": result["demo"], "ratio": result["ratio"],
                "notes": (f"median of {REPEATS} interleaved runs per side (spread {result['learn_spread']:.0%} / "
                          f"{result['demo_spread']:.0%}); {result['threads']} torch thread(s) both sides; "
                          f"load {load_before:.1f}"),
                **result, "load_before": load_before, "load_after": load(),
            })
    return rows
