"""The benchmark suite in one command::

    python -m bench [--quick] [--threads N] [--out bench/results/<date>.json] [--only throughput,startup]

Runs, side by side in one process tree: training throughput against the
experimaestro demo loop (:mod:`bench.throughput`), start-up
(:mod:`bench.startup`), scheduler overhead (:mod:`bench.scheduler`) and time
to accuracy (:mod:`bench.time_to_accuracy`), tracking overhead
(:mod:`bench.tracking`), warm start and tracked job ends, the tune plan against plain Optuna (:mod:`bench.warm`,
:mod:`bench.plain_optuna`), streaming from disk (:mod:`bench.streaming`), a refresh of
``xpm-train watch`` on 10,000 job folders (:mod:`bench.watch`), ASHA against a pruner and no
pruning (:mod:`bench.budgets`), a grid of 200 jobs on Slurm as job arrays against one sbatch
per job (:mod:`bench.arrays`), the tune plan and 1,000 jobs on a Slurm pool against the local
launcher (:mod:`bench.pool`) (both need a Slurm: run them under the host's Slurm lock); prints one markdown table (paste
it into the README) and writes the JSON (every measurement, the machine, the
command) and the table (``.md``) beside it. ``--quick``: small sizes (6000
MNIST-format images, 10 tasks per plan, 3 repeats). GPU rows are skipped
without CUDA and say so. Everything runs in a temporary folder, removed at
the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import arrays, budgets, pool, scheduler, startup, streaming, throughput, time_to_accuracy, tracking, warm, watch
from .common import REPO, cuda_available, load, machine, uptime

BENCHMARKS = ("throughput", "startup", "scheduler", "time_to_accuracy", "tracking", "warm", "tune-vs-optuna",
              "streaming", "watch", "budgets", "arrays", "pool")
AGAINST = {"throughput": "demo loop", "startup": "import torch", "scheduler": "re-run", "time_to_accuracy": "",
           "tracking": "", "warm": "cold", "tune-vs-optuna": "plain Optuna", "streaming": "",
           "watch": "", "budgets": "", "arrays": "", "pool": ""}


def written_mnist(tmp: Path) -> Path | None:
    """The MNIST-format files the throughput benchmark wrote, when it ran first."""
    folder = tmp / "mnist" / "idx"
    return folder if folder.exists() else None


def run_benchmark(name: str, tmp: Path, quick: bool, cuda: bool) -> list[dict[str, Any]]:
    if name == "throughput":
        return throughput.run(tmp, quick, cuda)
    if name == "startup":
        return startup.run(tmp, quick, mnist_folder=written_mnist(tmp))
    if name == "scheduler":
        return scheduler.run(tmp, quick)
    if name == "tracking":
        return tracking.run(tmp, quick, mnist_folder=written_mnist(tmp))
    if name == "warm":
        return warm.run(tmp, quick)
    if name == "tune-vs-optuna":
        return warm.tune_rows(tmp, repeats=2 if quick else 3)
    if name == "streaming":
        return streaming.run(tmp, quick, cuda)
    if name == "watch":
        return watch.run(tmp, quick)
    if name == "arrays":
        return arrays.run(tmp, quick)
    if name == "pool":
        return pool.run(tmp, quick)
    if name == "budgets":
        return budgets.run(tmp, quick)
    return time_to_accuracy.run(tmp, quick, cuda)


def value(number: float | None, unit: str) -> str:
    if number is None:
        return ""
    if unit == "samples/s":
        return f"{number:,.0f} samples/s"
    if unit == "ms":
        return f"{number:.3f} ms"
    if unit == "MB":
        return f"{number:,.0f} MB"
    return f"{number:.2f} s"


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    lines = ["| Benchmark | Case | xpm-train | Against | Ratio | Notes |", "|---|---|---|---|---|---|"]
    for row in rows:
        name = row["benchmark"].replace("_", " ")
        if "skipped" in row:
            lines.append(f"| {name} | {row['case']} | skipped | | | {row['skipped']} |")
            continue
        if "error" in row:
            lines.append(f"| {name} | {row.get('case', '')} | error | | | {row['error']} |")
            continue
        unit = row.get("unit", "")
        against = ""
        if row.get("baseline") is not None:
            against = f"{row.get('against', AGAINST[row['benchmark']])} {value(row['baseline'], unit)}".strip()
        ratio = f"{row['ratio']:.2f}x" if row.get("ratio") is not None else ""
        lines.append(f"| {name} | {row['case']} | {value(row.get('xpm_train'), unit)} | {against} | {ratio} "
                     f"| {row.get('notes', '')} |")
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w") as fp:
        fp.write(text)
        fp.flush()
        os.fsync(fp.fileno())
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (minutes, not an hour)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON output (default: bench/results/<UTC date-time>[-quick].json)")
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspaces (path printed)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads of every process, both sides alike (OMP_NUM_THREADS); "
                             "0: torch's default")
    args = parser.parse_args(argv)
    if args.threads < 0:
        parser.error(f"--threads must be >= 0, got {args.threads}")
    if args.threads:  # before torch is imported here; inherited by every command and job
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    selected = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(selected) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose among {', '.join(BENCHMARKS)}")

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    out = args.out or REPO / "bench" / "results" / f"{stamp}{'-quick' if args.quick else ''}.json"
    command = "python -m bench " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    info = machine()
    cuda = cuda_available()
    print(f"# xpm-train benchmarks ({'quick' if args.quick else 'full'}), {stamp}", flush=True)  # noqa: T201
    print(f"machine: {info}", flush=True)  # noqa: T201

    tmp = Path(tempfile.mkdtemp(prefix="xpm-train-bench-"))
    rows: list[dict[str, Any]] = []
    timings = {}
    try:
        for name in selected:
            started = time.perf_counter()
            print(f"... {name}", flush=True)  # noqa: T201
            try:
                rows += run_benchmark(name, tmp, args.quick, cuda)
            except Exception as error:  # one broken benchmark must not hide the others
                traceback.print_exc()
                rows.append({"benchmark": name, "case": "", "error": f"{type(error).__name__}: {str(error)[:300]}"})
            timings[name] = time.perf_counter() - started
    finally:
        if args.keep:
            print(f"workspaces kept in {tmp}")  # noqa: T201
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    info["load_at_end"] = round(load(), 2)
    info["uptime_at_end"] = uptime()
    markdown = table(rows)
    header = (f"Measured {stamp} with `{command}` on {info['cpu']} ({info['cores']} cores, "
              f"torch {info['torch']}, {info['torch_threads']} threads; GPU: {info['gpu'] or 'none'}); "
              f"load average {info['load_at_start']} at start, {info['load_at_end']} at end "
              f"(`uptime` at start: {info['uptime_at_start']}; at end: {info['uptime_at_end']}).")
    print("\n" + header + "\n\n" + markdown)  # noqa: T201
    report = {"command": command, "date": stamp, "quick": args.quick, "machine": info,
              "benchmark_wall_s": timings, "rows": rows}
    write_atomic(out, json.dumps(report, indent=2, default=str))
    write_atomic(out.with_suffix(".md"), header + "\n\n" + markdown + "\n")
    print(f"\nwrote {out} and {out.with_suffix('.md')}")  # noqa: T201
    return 1 if any("error" in row for row in rows) else 0
