"""Benchmark 4: time to accuracy, a Learn + Evaluate plan run for real.

- **CPU, digits -> 0.97** test accuracy: scikit-learn's 8x8 digits (1438
  train / 359 test), MLP 64-128-10, Adam 3e-3 with cosine decay, batch 32,
  10 epochs, no validation split (``bench/plans/learn``, ``evaluate=true``).
- **GPU, MNIST -> 0.99**: the real MNIST (``prepare_mnist()``: fetched and
  checked once, outside the timing), the demo CNN with 64 channels, batch
  128, Adam 2e-3 with cosine decay, 6 epochs; only where CUDA is present.

Reported: the Learn task's training time (``final.json``'s ``wall_time``:
from the moment its data are loaded and its model and optimizer built, to
its end: the epochs with their validation and checkpoints; the process start,
imports and data loading are not in it), the test accuracy of its Evaluate
job, and the whole plan's wall time (``run-experiment``: scheduler, both job
processes, their imports and data loading included).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .common import job_folders, load, run_plan

DIGITS = ("data=digits", "model=mlp", "hidden=128", "lr=0.003", "cosine=true", "batch_size=32", "epochs=10",
          "val_fraction=0.0", "evaluate=true", "device=cpu")
MNIST = ("data=mnist", "model=cnn", "hidden=64", "lr=0.002", "cosine=true", "batch_size=128", "epochs=6",
         "val_fraction=0.0", "evaluate=true", "device=cuda")


def learn_and_evaluate(workdir: Path, *overrides: str) -> dict[str, Any]:
    load_before = load()
    plan_wall = run_plan("learn", workdir, *overrides)
    (learn,) = job_folders(workdir, "xpm_train.learn.learn")
    (evaluate,) = job_folders(workdir, "xpm_train.evaluate.evaluate")
    final = json.loads((learn / "final.json").read_text())
    results = json.loads((evaluate / "results.json").read_text())
    return {"learn_wall_s": final["wall_time"], "accuracy": results["accuracy"], "plan_wall_s": plan_wall,
            "epochs": final["epochs"], "load_before": load_before}


def run(tmp: Path, quick: bool, cuda: bool) -> list[dict[str, Any]]:
    rows = []
    digits = learn_and_evaluate(tmp / "tta-digits", *DIGITS)
    rows.append({
        "benchmark": "time_to_accuracy", "case": "digits to 0.97 test accuracy, CPU (MLP, 10 epochs)", "unit": "s",
        "xpm_train": digits["learn_wall_s"], "baseline": None, "accuracy": digits["accuracy"],
        "notes": (f"test accuracy {digits['accuracy']:.4f} ({'reached' if digits['accuracy'] >= 0.97 else 'NOT reached'}); "
                  f"whole plan {digits['plan_wall_s']:.1f} s; load {digits['load_before']:.1f}"),
        "detail": digits,
    })
    case = "MNIST to 0.99 test accuracy, GPU (demo CNN x64, 6 epochs)"
    if not cuda:
        rows.append({"benchmark": "time_to_accuracy", "case": case, "skipped": "no CUDA device on this host"})
        return rows
    try:
        from xpm_train.data import prepare_mnist

        folder = Path(prepare_mnist().train.folder)
    except Exception as error:  # no network and no local copy: say so, do not fail the suite
        rows.append({"benchmark": "time_to_accuracy", "case": case,
                     "skipped": f"real MNIST unavailable ({type(error).__name__}: {error})"})
        return rows
    mnist = learn_and_evaluate(tmp / "tta-mnist", *MNIST, f"mnist_folder={folder}")
    import torch

    rows.append({
        "benchmark": "time_to_accuracy", "case": case, "unit": "s", "xpm_train": mnist["learn_wall_s"],
        "baseline": None, "accuracy": mnist["accuracy"],
        "notes": (f"{torch.cuda.get_device_name(0)}; test accuracy {mnist['accuracy']:.4f} "
                  f"({'reached' if mnist['accuracy'] >= 0.99 else 'NOT reached'}); whole plan {mnist['plan_wall_s']:.1f} s"),
        "detail": mnist,
    })
    return rows
