"""Benchmark: a grid of trivial jobs on Slurm, as job arrays against today's path.

``bench/plans/slurmgrid`` with ``count`` trivial tasks (each writes a file:
:class:`xpm_train.launchers.testing.RecordDevices`, ``hold=0``), run through

- xpm-train's Slurm launcher: jobs ready together go out as job arrays, their
  ends read from their folders (:mod:`xpm_train.launchers.slurmarray`);
- the baseline: experimaestro's own ``SlurmLauncher`` with the same sbatch
  options and poll interval (one ``sbatch`` per job, ends from ``sacct``);

then the same plan with ``count=0 chain=true``: a 1 s job and its dependent,
whose latency is the dependent task's start minus its dependency's end (both
as the tasks recorded them). Both sides use ``poll_interval: 10`` (the
launchers.yaml example), alternate in order, on the running Slurm's default
partition (``tests/slurmhelpers.find_slurm``); ``sbatch_calls`` counts the job
IDs ``sacct`` lists under the workspace. Run it under the host's Slurm lock:
``flock /tmp/xpm-train-slurm.lock python -m bench --only arrays``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .common import REPO, BenchError, load, run_plan

POLL = 10
"""poll_interval of both sides (seconds)"""
TASK = "xpm_train.launchers.testing.recorddevices"


def cluster():
    sys.path.insert(0, str(REPO / "tests"))
    from slurmhelpers import find_slurm

    return find_slurm()


def launchers_file(tmp: Path, slurm) -> Path:
    path = tmp / "arrays-launchers.yaml"
    path.write_text("launchers:\n" + slurm.launcher_yaml("slurm", poll_interval=POLL))
    return path


def side(tmp: Path, slurm, name: str, baseline: bool, count: int, launchers: Path) -> dict[str, Any]:
    """One run of the grid, then one of the chain, on one side."""
    env = {"XPM_TRAIN_LAUNCHERS": str(launchers)}
    flag = f"baseline={'true' if baseline else 'false'}"
    grid = tmp / f"arrays-{name}-grid"
    wall = run_plan("slurmgrid", grid, f"count={count}", flag, env=env)
    rows = slurm.sacct_jobs(grid, count=count if baseline else 1)
    chain = tmp / f"arrays-{name}-chain"
    run_plan("slurmgrid", chain, "count=0", "chain=true", flag, env=env)
    records = {r["index"]: r for r in (json.loads(p.read_text())
                                       for p in (chain / "jobs" / TASK).glob("*/record.json"))}
    if set(records) != {-1, -2}:
        raise BenchError(f"{chain}: the chain's records are {sorted(records)}")
    done = list((grid / "jobs" / TASK).glob("*/recorddevices.done"))
    if len(done) != count:
        raise BenchError(f"{grid}: {len(done)} jobs done, expected {count}")
    return {"wall_s": wall, "sbatch_calls": len({row["id"].split("_")[0] for row in rows}),
            "latency_s": records[-2]["start"] - records[-1]["end"]}


def run(tmp: Path, quick: bool) -> list[dict[str, Any]]:
    slurm = cluster()
    if slurm is None:
        return [{"benchmark": "arrays", "case": "", "skipped": "no Slurm answers (sinfo/sacct)"}]
    count = 50 if quick else 200
    launchers = launchers_file(tmp, slurm)
    load_before = load()
    arrays = side(tmp, slurm, "xpm", False, count, launchers)
    base = side(tmp, slurm, "baseline", True, count, launchers)
    where = f"partition {slurm.partition} ({slurm.cpus} CPUs), poll_interval {POLL} s on both sides"
    return [{
        "benchmark": "arrays", "case": f"{count} trivial jobs on Slurm: wall", "unit": "s",
        "xpm_train": arrays["wall_s"], "baseline": base["wall_s"],
        "ratio": base["wall_s"] / arrays["wall_s"], "against": "one sbatch per job",
        "sbatch_calls": arrays["sbatch_calls"], "baseline_sbatch_calls": base["sbatch_calls"],
        "notes": (f"sbatch calls {arrays['sbatch_calls']} vs {base['sbatch_calls']} (sacct); ratio: "
                  f"baseline / xpm-train; {where}; load {load_before:.1f} before"),
        "detail": {"xpm_train": arrays, "baseline": base},
    }, {
        "benchmark": "arrays", "case": "a job's end -> its dependent's start", "unit": "s",
        "xpm_train": arrays["latency_s"], "baseline": base["latency_s"],
        "ratio": base["latency_s"] / arrays["latency_s"], "against": "sacct polling",
        "notes": ("the dependent task's start minus its dependency's end, as the tasks recorded "
                  f"them (Slurm's start and Python's included); {where}"),
    }]
