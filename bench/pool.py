"""Benchmark: a study on a Slurm pool (:mod:`xpm_train.launchers.pool`) against the local launcher.

- **The tune plan** (``experiments/tune``: 20 trials, 2 in parallel, tracking
  off), first run, through a pool launcher (one 2-core node of the running
  Slurm, ``max_allocations: 1``) and through the local launcher (2 cores) of
  the same machine, ``repeats`` interleaved pairs (the order alternates). The
  pool side starts with no allocation: its ``sbatch``, Slurm's scheduling and
  the node's fork server importing torch are in its wall time; its allocation
  is released after each run, so that each run counts its own. The local side
  runs on a warm host (its fork server started before the plan, as in
  :mod:`bench.warm`). ``sbatch_calls``: the jobs ``sacct`` lists under the
  run's workspace (an allocation's working folder is its workspace), the most
  of any run.
- **1,000 trivial jobs** (``bench/plans/slurmgrid``: each writes a file)
  through the pool: wall time, allocations (``sacct``), and the job steps
  ``sacct`` shows in them (one per job).
- **Warm start of a step**: once a pooled Learn job (``bench/plans/learn``,
  one job, ``log_interval=1``) has run, its allocation's fork server is up;
  the job is run again ``repeats`` times as the pool runs it (the command of
  :meth:`PoolLauncher.step_command`), the step's first process writing the
  time it started on the node. Latency = the job's first training step (its
  ``start`` event + the first ``train_step``'s ``elapsed``) - that time;
  from the ``srun`` call as well, in the notes.

Needs a Slurm (``tests/slurmhelpers.find_slurm``): run it under the host's
Slurm lock: ``flock /tmp/xpm-train-slurm.lock python -m bench --only pool``.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from xpm_train.launchers.pool.allocations import SERVER_STEP

from .arrays import cluster
from .common import PYTHON, BenchError, bench_env, job_folders, load, median, read_jsonl, run_plan
from .startup import reset
from .warm import run_tune_plan, server_up, spread

NAME = "pool"
"""The pool launcher's name (its allocations: ``xpm-pool-pool``)"""
POOL = "pool: {time: 30m, idle: 1m, max_allocations: 1}"
SPEC = "duration=10m & cpu(cores=1)"
TASK = "xpm_train.launchers.testing.recorddevices"


def launchers_files(tmp: Path, slurm) -> dict[str, Path]:
    """The two sides' launchers.yaml: the pool, and a local launcher of as many cores."""
    files = {"pool": tmp / "pool-launchers.yaml", "local": tmp / "local-launchers.yaml"}
    files["pool"].write_text("launchers:\n" + slurm.launcher_yaml(NAME, extra=POOL))
    files["local"].write_text(f"launchers:\n  - name: local\n    type: local\n"
                              f"    cpu: {{cores: {slurm.cpus}, memory: {slurm.memory_mb}MiB}}\n")
    return files


def side_env(tmp: Path, files: dict[str, Path], side: str) -> dict[str, str]:
    return {"XPM_TRAIN_LAUNCHERS": str(files[side]), "XPM_TRAIN_POOL_DIR": str(tmp / "pool-registry")}


def release_all(slurm) -> None:
    """End the pool's allocations (a run counts its own) and wait until Slurm lists none."""
    from xpm_train.launchers.pool import allocations as pool

    found = [a.jobid for a in pool.allocations(slurm.binpath, NAME)]
    pool.release(slurm.binpath, found)
    deadline = time.monotonic() + 60
    while pool.allocations(slurm.binpath, NAME):
        if time.monotonic() > deadline:
            raise BenchError(f"allocations {found} still listed 60 s after scancel")
        time.sleep(0.5)


def allocations_of(slurm, workdir: Path) -> list[dict[str, Any]]:
    """The sbatch jobs ``sacct`` lists under ``workdir`` (the pool's allocations)."""
    return slurm.sacct_jobs(workdir, count=1)


def steps_of(slurm, jobids: list[str]) -> list[str]:
    """Names of the job steps of ``jobids`` (not batch, extern or fork servers)."""
    out = subprocess.run([f"{slurm.binpath}/sacct", "-n", "-P", "-j", ",".join(jobids),
                          "--format=JobID,JobName"], capture_output=True, text=True, timeout=120).stdout
    return job_steps(out)


def job_steps(sacct: str) -> list[str]:
    """The job steps' names in ``sacct -P --format=JobID,JobName`` output: numbered steps, not the
    allocations, their ``batch``/``extern`` steps or their fork servers."""
    rows = (line.split("|")[:2] for line in sacct.splitlines() if line.count("|") >= 1)
    return [name for step, name in rows
            if step.partition(".")[2].isdigit() and name != SERVER_STEP]


def marked(command: list[str], mark: Path) -> list[str]:
    """``command`` (a pool step's, :meth:`PoolLauncher.step_command`) with its step's first process,
    the warm start's client, started by a shell that first writes the time to ``mark``."""
    at = command.index(PYTHON, command.index("--kill-on-bad-exit=1"))
    return command[:at] + ["/bin/sh", "-c", 'date +%s.%N > "$0"; exec "$@"', str(mark)] + command[at:]


def tune_pair(tmp: Path, slurm, files: dict[str, Path], index: int) -> dict[str, Any]:
    """One pool run and one local run of the tune plan (alternating which goes first)."""
    result = {}
    for side in (("pool", "local") if index % 2 == 0 else ("local", "pool")):
        workdir = tmp / f"pool-tune-{side}-{index}"
        env = side_env(tmp, files, side)
        if side == "local":
            server_up({**bench_env(workdir), **env})
        else:
            release_all(slurm)
        result[side] = run_tune_plan(workdir, warm=True, env=env)
        learns = job_folders(workdir, "xpm_train.learn.learn")
        if len(learns) < 20:
            raise BenchError(f"{workdir}: {len(learns)} Learn jobs, expected 20")
        if side == "pool":
            release_all(slurm)  # then sacct lists it ended, at once
            jobs = allocations_of(slurm, workdir)
            result[side]["sbatch_calls"] = len(jobs)
            result[side]["allocations"] = [j["id"] for j in jobs]
            result[side]["steps"] = len(steps_of(slurm, [j["id"] for j in jobs]))
    return result


def tune_rows(tmp: Path, slurm, files: dict[str, Path], repeats: int) -> dict[str, Any]:
    pairs = [tune_pair(tmp, slurm, files, i) for i in range(repeats)]
    pool = [p["pool"]["wall_s"] for p in pairs]
    local = [p["local"]["wall_s"] for p in pairs]
    calls = max(p["pool"]["sbatch_calls"] for p in pairs)
    ratio = median(pool) / median(local)
    return {
        "benchmark": "pool", "unit": "s",
        "case": "tune plan (20 trials, 2 in parallel, tracking off), first run: pool vs local launcher",
        "xpm_train": median(pool), "baseline": median(local), "ratio": ratio, "against": "local launcher",
        "sbatch_calls": calls,
        "notes": (f"pool {spread(pool)}, local {spread(local)}: median (min-max) of {repeats} interleaved "
                  f"pairs; {ratio:.2f}x (target <= 1.5x); sbatch calls {calls} per run (sacct; target <= 2); "
                  f"job steps per run {[p['pool']['steps'] for p in pairs]}; loads before "
                  f"{[round(p['pool']['load_before'], 1) for p in pairs]} (pool) / "
                  f"{[round(p['local']['load_before'], 1) for p in pairs]} (local)"),
        "detail": pairs}


def many_jobs(tmp: Path, slurm, files: dict[str, Path], count: int) -> dict[str, Any]:
    workdir = tmp / "pool-grid"
    release_all(slurm)
    before = load()
    wall = run_plan("slurmgrid", workdir, f"count={count}", env=side_env(tmp, files, "pool"), timeout=3000)
    done = list((workdir / "jobs" / TASK).glob("*/recorddevices.done"))
    if len(done) != count:
        raise BenchError(f"{workdir}: {len(done)} jobs done, expected {count}")
    release_all(slurm)
    jobs = allocations_of(slurm, workdir)
    steps = steps_of(slurm, [j["id"] for j in jobs])
    return {
        "benchmark": "pool", "unit": "s", "case": f"{count} trivial jobs through a pool: wall",
        "xpm_train": wall, "sbatch_calls": len(jobs),
        "notes": (f"{len(jobs)} sbatch call(s) (sacct; target <= 4), {len(steps)} job steps in them; "
                  f"{wall / count * 1000:.0f} ms a job; load {before:.1f} before"),
        "detail": {"allocations": jobs, "steps": len(steps), "load_before": before}}


def step_run(job: Path, launcher, allocation: str, node: str) -> dict[str, float]:
    """Run the job's script once more as the pool runs it, as a step of ``allocation``."""
    from xpm_train.launchers.pool.steps import Place

    reset(job)
    (job / "locks.json").write_text(json.dumps({"dynamic_locks": []}))
    mark = job / "step-started"
    mark.unlink(missing_ok=True)
    command, env = launcher.step_command(Place(allocation, node, ()), str(job / "learn.py"))
    command = marked(command, mark)
    spawned = time.time()
    done = subprocess.run(command, cwd=job, capture_output=True, text=True, timeout=600,
                          env={**bench_env(job.parents[2]), **env})
    if done.returncode != 0 or "normal start" in done.stderr:
        raise BenchError(f"the step of {job} failed or started cold (exit {done.returncode}):\n"
                         f"{done.stderr[-2000:]}")
    start = next(e for e in read_jsonl(job / "events.jsonl") if e["event"] == "start")
    first = next(r for r in read_jsonl(job / "metrics.jsonl") if r["split"] == "train_step")
    step = start["time"] + first["elapsed"]
    return {"from_step_start_s": step - float(mark.read_text()), "from_srun_s": step - spawned}


def warm_step(tmp: Path, slurm, files: dict[str, Path], repeats: int) -> dict[str, Any]:
    from xpm_train.launchers.loader import load_file
    from xpm_train.launchers.match import parse_spec
    from xpm_train.launchers.pool import allocations as pool
    from xpm_train.launchers.pool.steps import PoolLauncher, node_names

    workdir = tmp / "pool-warm"
    release_all(slurm)
    run_plan("learn", workdir, "epochs=1", "log_interval=1", "device=cpu", f"launcher={SPEC}",
             env=side_env(tmp, files, "pool"))
    (job,) = job_folders(workdir, "xpm_train.learn.learn")
    running = [a for a in pool.allocations(slurm.binpath, NAME) if a.running]
    if not running:
        raise BenchError("the pooled Learn job's allocation is gone (idle too short?)")
    launcher = PoolLauncher(load_file(files["pool"]).get(NAME), parse_spec(SPEC).requirements[0])
    node = node_names(slurm.binpath, running[0])[0]
    runs = [step_run(job, launcher, running[0].jobid, node) for _ in range(repeats)]
    release_all(slurm)
    warm = [r["from_step_start_s"] for r in runs]
    srun = [r["from_srun_s"] for r in runs]
    return {
        "benchmark": "pool", "unit": "s", "case": "Learn job on a warm node: step start -> first training step",
        "xpm_train": median(warm),
        "notes": (f"{spread(warm)}: median (min-max) of {repeats} steps on a warm allocation (target <= 0.5 s); "
                  f"from the srun call (step creation included) {spread(srun)}"),
        "detail": {"runs": runs}}


def run(tmp: Path, quick: bool) -> list[dict[str, Any]]:
    slurm = cluster()
    if slurm is None:
        return [{"benchmark": "pool", "case": "", "skipped": "no Slurm answers (sinfo/sacct)"}]
    repeats = 3 if quick else 5
    files = launchers_files(tmp, slurm)
    rows = []
    try:
        rows.append(tune_rows(tmp, slurm, files, repeats))
        rows.append(warm_step(tmp, slurm, files, repeats))
        rows.append(many_jobs(tmp, slurm, files, 100 if quick else 1000))
    finally:
        release_all(slurm)
    where = f"partition {slurm.partition} ({slurm.cpus} CPUs, {slurm.memory_mb} MiB), {POOL}"
    for row in rows:
        row["notes"] += f"; {where}"
    return rows
