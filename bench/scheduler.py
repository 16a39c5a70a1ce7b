"""Benchmark 3: scheduler overhead, the wall time of whole plans run with
``experimaestro run-experiment``.

- ``bench/plans/noop`` with 0 tasks (the fixed cost of a plan: interpreter,
  experimaestro, workspace), then with ``count`` trivial tasks
  (:class:`bench.tasks.Noop`, one process each);
- ``bench/plans/learn`` with ``count`` short Learn tasks (Synthetic 8x8
  data, 256 samples, 1 epoch, an MLP), seeds ``0..count-1``;

each run a first time, then again: the re-run must start nothing (checked:
every job's ``.done`` marker is unchanged), so it measures what finding
``count`` finished jobs costs. Jobs ask for ``cpu(cores=1)``: on this 2-core
host the local launcher runs 2 at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import BenchError, done_markers, load, run_plan


def first_and_rerun(plan: str, workdir: Path, *overrides: str) -> dict[str, Any]:
    load_before = load()
    first = run_plan(plan, workdir, *overrides)
    before = done_markers(workdir)
    rerun = run_plan(plan, workdir, *overrides)
    if done_markers(workdir) != before:
        raise BenchError(f"re-running {plan} in {workdir} started jobs again: caching is broken")
    return {"first_s": first, "rerun_s": rerun, "jobs": len(before), "load_before": load_before}


def run(tmp: Path, quick: bool) -> list[dict[str, Any]]:
    count = 10 if quick else 50
    empty = first_and_rerun("noop", tmp / "sched-empty", "count=0")
    noop = first_and_rerun("noop", tmp / "sched-noop", f"count={count}")
    learn = first_and_rerun("learn", tmp / "sched-learn", f"count={count}", "data=synthetic", "epochs=1",
                            "device=cpu")
    rows = [{
        "benchmark": "scheduler", "case": "empty plan (0 tasks)", "unit": "s",
        "xpm_train": empty["first_s"], "baseline": None, "rerun_s": empty["rerun_s"],
        "notes": f"re-run {empty['rerun_s']:.1f} s; the fixed cost of run-experiment", "detail": empty,
    }]
    for name, result in ((f"{count} trivial tasks", noop), (f"{count} Learn tasks (Synthetic, 1 epoch)", learn)):
        if result["jobs"] != count:
            raise BenchError(f"{name}: {result['jobs']} jobs finished, expected {count}")
        per_task = (result["first_s"] - empty["first_s"]) / count
        rows.append({
            "benchmark": "scheduler", "case": f"{name}: first run / re-run", "unit": "s",
            "xpm_train": result["first_s"], "baseline": result["rerun_s"], "rerun_s": result["rerun_s"],
            "per_task_s": per_task,
            "notes": (f"re-run started nothing ({result['rerun_s']:.1f} s); {per_task:.2f} s per task "
                      f"above the empty plan; load {result['load_before']:.1f}"),
            "detail": result,
        })
    return rows
