"""Benchmark: streaming from the prepared format, side by side with
torchvision's ImageFolder + DataLoader and with xpm-train's in-memory path.

On one generated folder of 32x32 RGB PNGs, 10 classes (``SIZES``: 20000
images; ``--quick``: 5000), with subsets of it as hard links:

- **preparation**: fingerprint (hash every file), then decoding into the
  prepared records (:func:`xpm_train.data.stream.prepare_for_streaming`, 2
  processes), at 1x, 4x and 16x of the smallest size: seconds and bytes on disk;
- **throughput** (samples/s of the training loop of :mod:`bench.stream_loop`:
  the same network, Adam, batch size 64, 1 torch thread and 2 readers on
  every side): streaming vs ``torchvision.datasets.ImageFolder`` (PNG decoding
  every epoch, ``DataLoader(num_workers=2)``), and streaming vs the in-memory
  path, for the demo's MLP (all images) and CNN (an eighth of them: a CNN
  epoch of the whole set takes a minute on one core). Each run trains a few
  epochs, timed by the median of its epochs after the first; the sides run
  ``REPEATS`` times interleaved in alternating order; a side's figure is the
  median of its runs, its spread ``(max - min) / median``;
- **memory**: peak resident memory of a streaming run on a set 8x larger
  than another (the process and its largest child), and of the in-memory
  path for contrast.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from .common import PYTHON, REPO, BenchError, bench_env, load, median

REPEATS = 3
"""Runs of each side per throughput case, interleaved"""

SIZES = {False: 20000, True: 5000}
"""Images of the largest folder (full, --quick)"""

IMAGE = (32, 32)
CLASSES = 10


def write_pngs(folder: Path, n: int, seed: int = 0) -> Path:
    """``n`` learnable PNG images (class pattern + noise), ``class<k>/<i>.png``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 256, (CLASSES, *IMAGE, 3))
    for i in range(n):
        k = i % CLASSES
        (folder / f"class{k}").mkdir(parents=True, exist_ok=True)
        pixels = 0.6 * patterns[k] + 0.4 * rng.integers(0, 256, (*IMAGE, 3))
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"class{k}" / f"{i:06d}.png")
    return folder


def subset(source: Path, folder: Path, n: int) -> Path:
    """The first ``n`` images of ``source`` (in index order), as hard links."""
    for path in sorted(source.glob("*/*.png"), key=lambda p: p.name)[:n]:
        target = folder / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(path, target)
    return folder


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def prepare_once(folder: Path, root: Path) -> dict[str, Any]:
    """Fingerprint then prepare ``folder`` in a fresh process (timed there)."""
    script = (
        "import json, sys, time\n"
        "from xpm_train.data import prepare_image_folder\n"
        "from xpm_train.data.stream import Streaming, prepare_for_streaming\n"
        "import torchvision.datasets.folder, torchvision.transforms.v2.functional  # imports not timed\n"
        "t0 = time.perf_counter()\n"
        f"splits = prepare_image_folder({str(folder)!r}, decode=False)\n"
        "t1 = time.perf_counter()\n"
        f"path = prepare_for_streaming(splits.train, Streaming.C(prepare_workers=2, root={str(root)!r}))\n"
        "print(json.dumps({'fingerprint_s': t1 - t0, 'prepare_s': time.perf_counter() - t1, 'folder': str(path)}))\n"
    )
    done = subprocess.run([PYTHON, "-c", script], cwd=REPO, capture_output=True, text=True, env=bench_env(),
                          timeout=3600)
    if done.returncode != 0:
        raise BenchError(f"preparing {folder} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def loop(mode: str, folder: Path, root: Path, model: str, epochs: int) -> dict[str, Any]:
    command = [PYTHON, "-m", "bench.stream_loop", "--mode", mode, "--folder", str(folder), "--model", model,
               "--epochs", str(epochs), "--workers", "2", "--batch-size", "64"]
    env = {**bench_env(), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "XPM_TRAIN_PREPARED": str(root)}
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, timeout=3600)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["rates"] = [result["samples"] / t for t in result["epoch_times"][1:]]
    result["samples_per_s"] = median(result["rates"]) if result["rates"] else None
    return result


def spread(values: list[float]) -> float:
    return (max(values) - min(values)) / median(values)


def side_by_side(sides: dict[str, Any], repeats: int) -> dict[str, list[dict]]:
    """Each side ``repeats`` times, interleaved, the order alternating."""
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    names = list(sides)
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            runs[name].append(sides[name]())
    return runs


def run(tmp: Path, quick: bool, cuda: bool) -> list[dict[str, Any]]:
    largest = SIZES[quick]
    root = tmp / "prepared"
    started = time.perf_counter()
    full = write_pngs(tmp / "png" / f"{largest}", largest)
    generated_s = time.perf_counter() - started
    rows: list[dict[str, Any]] = []

    # --- Preparation at 1x, 4x, 16x
    base = largest // 16
    folders = {}
    for factor in (1, 4, 16):
        n = base * factor
        folders[n] = full if n == largest else subset(full, tmp / "png" / f"{n}", n)
        result = prepare_once(folders[n], root)
        size = disk_bytes(Path(result["folder"]))
        rows.append({
            "benchmark": "streaming", "case": f"preparation, {n} PNGs ({factor}x), 2 processes", "unit": "s",
            "xpm_train": result["prepare_s"], "baseline": None,
            "notes": (f"+ fingerprint {result['fingerprint_s']:.2f} s; records {size / 1e6:.1f} MB on disk "
                      f"(PNGs {disk_bytes(folders[n]) / 1e6:.1f} MB)"),
            "prepared_bytes": size, "png_bytes": disk_bytes(folders[n]), **result})

    # --- Throughput: streaming vs torchvision, streaming vs in memory
    cnn_n = largest // 8
    folders.setdefault(cnn_n, subset(full, tmp / "png" / f"{cnn_n}", cnn_n))
    for model, n, epochs in (("mlp", largest, 3), ("cnn", cnn_n, 2)):
        folder = folders[n]
        prepare_once(folder, root)  # prepared before timing (as a plan would)
        load_before = load()
        runs = side_by_side({mode: (lambda mode=mode: loop(mode, folder, root, model, epochs))
                             for mode in ("stream", "torchvision", "memory")}, REPEATS)
        rate = {mode: median([r["samples_per_s"] for r in rs]) for mode, rs in runs.items()}
        spreads = {mode: spread([r["samples_per_s"] for r in rs]) for mode, rs in runs.items()}
        name = "MLP (3072-128-10)" if model == "mlp" else "demo CNN (2 conv x32, k3)"
        for against in ("torchvision", "memory"):
            rows.append({
                "benchmark": "streaming", "unit": "samples/s",
                "case": f"{name}, batch 64, {n} PNGs 32x32, cpu: stream vs {against}",
                "against": "torchvision ImageFolder+DataLoader" if against == "torchvision" else "in memory",
                "xpm_train": rate["stream"], "baseline": rate[against], "ratio": rate["stream"] / rate[against],
                "notes": (f"median of {REPEATS} interleaved runs per side (spread {spreads['stream']:.0%} / "
                          f"{spreads[against]:.0%}); 1 torch thread, 2 readers both sides; load {load_before:.1f}"),
                "runs": {mode: runs[mode] for mode in ("stream", against)}})
    rows.append({"benchmark": "streaming", "case": "the same rows on CUDA", "skipped": "no CUDA device on this host"}
                if not cuda else {"benchmark": "streaming", "case": "the same rows on CUDA",
                                  "skipped": "not measured: CPU rows only in this benchmark"})

    # --- Memory: a set 8x larger
    small = largest // 8
    peaks = {}
    for mode in ("stream", "memory"):
        for n in (small, largest):
            result = loop(mode, folders[n], root, "mlp", 1)
            peaks[(mode, n)] = result
        a, b = peaks[(mode, small)], peaks[(mode, largest)]
        growth = b["rss_mb"] / a["rss_mb"] - 1
        rows.append({
            "benchmark": "streaming", "unit": "MB",
            "case": f"peak RSS, {'streaming' if mode == 'stream' else 'in memory'}, {small} -> {largest} PNGs (8x)",
            "xpm_train": b["rss_mb"], "baseline": a["rss_mb"], "ratio": b["rss_mb"] / a["rss_mb"],
            "against": f"{small} PNGs",
            "notes": (f"growth {growth:+.1%}; largest child {a['children_rss_mb']:.0f} -> "
                      f"{b['children_rss_mb']:.0f} MB; records {small * 3 * 32 * 32 / 1e6:.1f} -> "
                      f"{largest * 3 * 32 * 32 / 1e6:.1f} MB"),
            "runs": [a, b]})
    rows[0]["generated_s"] = generated_s
    return rows
