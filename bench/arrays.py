"""Benchmark: a grid of trivial jobs on Slurm, as job arrays against today's path.

``bench/plans/slurmgrid`` with ``count`` trivial tasks (each writes a file:
:class:`xpm_train.launchers.testing.RecordDevices`, ``hold=0``), run through

- xpm-train's Slurm launcher: jobs ready together go out as job arrays, their
  ends read from their folders (:mod:`xpm_train.launchers.slurmarray`);
- the baseline: experimaestro's own ``SlurmLauncher`` with the same sbatch
  options and poll interval (one ``sbatch`` per job, ends from ``sacct``);

then the same plan with ``count=0 chain=true``: a 1 s job and its dependent,
whose latency is the dependent task's start minus its dependency's end (both
as the tasks recorded them). The grid uses ``poll_interval: 10`` on both sides
(the launchers.yaml example), the chain ``poll_interval: 60`` (experimaestro's
default) on both sides. The sides alternate (xpm-train, baseline, baseline,
xpm-train: :data:`ROUNDS` of each, one with ``--quick``) on the running
Slurm's default partition (``tests/slurmhelpers.find_slurm``); each row gives
the median and each run's figures; ``sbatch_calls`` counts the job IDs
``sacct`` lists under the workspace. Run it under the host's Slurm lock
(about 15 minutes on this cluster, 5 with ``--quick``):
``flock /tmp/xpm-train-slurm.lock python -m bench --only arrays``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from .common import REPO, BenchError, load, median, run_plan

POLL = 10
"""poll_interval of both sides for the grid (seconds)"""
CHAIN_POLL = 60
"""poll_interval of both sides for the chain (experimaestro's default)"""
ROUNDS = 2
"""Runs of each side (interleaved: A B B A); 1 with ``--quick``"""
TASK = "xpm_train.launchers.testing.recorddevices"


def cluster():
    sys.path.insert(0, str(REPO / "tests"))
    from slurmhelpers import find_slurm

    return find_slurm()


def launchers_file(tmp: Path, slurm, poll: float) -> Path:
    path = tmp / f"arrays-launchers-{poll:g}.yaml"
    path.write_text("launchers:\n" + slurm.launcher_yaml("slurm", poll_interval=poll))
    return path


def sacct_view(slurm, masters: list[str]) -> str:
    """``sacct -X --format=JobID,JobName,State,Elapsed`` of the grid's jobs."""
    return subprocess.run([f"{slurm.binpath}/sacct", "-X", "-j", ",".join(masters),
                           "--format=JobID,JobName%20,State,Elapsed"],
                          capture_output=True, text=True, timeout=60).stdout


def side(tmp: Path, slurm, name: str, baseline: bool, count: int) -> dict[str, Any]:
    """One run of the grid, then one of the chain, on one side."""
    flag = f"baseline={'true' if baseline else 'false'}"
    grid, chain = tmp / f"arrays-{name}-grid", tmp / f"arrays-{name}-chain"
    started = load()
    env = {"XPM_TRAIN_LAUNCHERS": str(launchers_file(tmp, slurm, POLL))}
    wall = run_plan("slurmgrid", grid, f"count={count}", flag, env=env)
    rows = slurm.sacct_jobs(grid, count=count if baseline else 1)
    masters = sorted({row["id"].split("_")[0] for row in rows}, key=int)
    view = "" if baseline else sacct_view(slurm, masters)
    env = {"XPM_TRAIN_LAUNCHERS": str(launchers_file(tmp, slurm, CHAIN_POLL))}
    run_plan("slurmgrid", chain, "count=0", "chain=true", flag, env=env)
    ended = load()
    records = {r["index"]: r for r in (json.loads(p.read_text())
                                       for p in (chain / "jobs" / TASK).glob("*/record.json"))}
    if set(records) != {-1, -2}:
        raise BenchError(f"{chain}: the chain's records are {sorted(records)}")
    done = list((grid / "jobs" / TASK).glob("*/recorddevices.done"))
    if len(done) != count:
        raise BenchError(f"{grid}: {len(done)} jobs done, expected {count}")
    print(f"    {name}: grid {wall:.1f}s, {len(masters)} sbatch calls, latency "  # noqa: T201
          f"{records[-2]['start'] - records[-1]['end']:.2f}s, load {started:.1f} -> {ended:.1f}", flush=True)
    return {"wall_s": wall, "sbatch_calls": len(masters), "sacct": view,
            "latency_s": records[-2]["start"] - records[-1]["end"], "load": [started, ended]}


def run(tmp: Path, quick: bool) -> list[dict[str, Any]]:
    slurm = cluster()
    if slurm is None:
        return [{"benchmark": "arrays", "case": "", "skipped": "no Slurm answers (sinfo/sacct)"}]
    count, rounds = (50, 1) if quick else (200, ROUNDS)
    load_before = load()
    runs: dict[str, list[dict[str, Any]]] = {"xpm_train": [], "baseline": []}
    order = ["xpm_train", "baseline", "baseline", "xpm_train"][:2 * rounds]
    for index, name in enumerate(order):
        runs[name].append(side(tmp, slurm, f"{name}-{index}", name == "baseline", count))
    load_after = load()
    arrays, base = runs["xpm_train"], runs["baseline"]
    wall = {name: median([r["wall_s"] for r in values]) for name, values in runs.items()}
    latency = {name: median([r["latency_s"] for r in values]) for name, values in runs.items()}
    calls = {name: max(r["sbatch_calls"] for r in values) for name, values in runs.items()}
    def each(key: str) -> str:
        return "; ".join(f"{name} " + ", ".join(f"{r[key]:.2f}" for r in values)
                         for name, values in runs.items())

    where = (f"partition {slurm.partition} ({slurm.cpus} CPUs); median of {rounds} run(s) per side, "
             f"interleaved (A B B A)")
    detail = {name: [{k: v for k, v in r.items() if k != "sacct"} for r in values]
              for name, values in runs.items()}
    return [{
        "benchmark": "arrays", "case": f"{count} trivial jobs on Slurm: wall", "unit": "s",
        "xpm_train": wall["xpm_train"], "baseline": wall["baseline"],
        "ratio": wall["baseline"] / wall["xpm_train"], "against": "one sbatch per job",
        "sbatch_calls": calls["xpm_train"], "baseline_sbatch_calls": calls["baseline"],
        "notes": (f"sbatch calls {calls['xpm_train']} vs {calls['baseline']} (sacct); ratio: "
                  f"baseline / xpm-train; each run (s): {each('wall_s')}; poll_interval {POLL} s on both "
                  f"sides; {where}; load {load_before:.1f} before, {load_after:.1f} after"),
        "detail": detail, "sacct": arrays[0]["sacct"],
    }, {
        "benchmark": "arrays", "case": "a job's end -> its dependent's start", "unit": "s",
        "xpm_train": latency["xpm_train"], "baseline": latency["baseline"],
        "ratio": latency["baseline"] / latency["xpm_train"], "against": "sacct polling",
        "notes": ("the dependent task's start minus its dependency's end, as the tasks recorded "
                  "them (Slurm's start and Python's included); each run (s): "
                  f"{each('latency_s')}; poll_interval {CHAIN_POLL} s on both sides; {where}"),
    }]
