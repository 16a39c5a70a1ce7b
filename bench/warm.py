"""Benchmark 6: the warm start and the end of a tracked job, side by side.

- **Spawn to first step, warm vs cold**: ``bench/plans/learn`` (one job,
  ``log_interval=1``) is run once to write the job folder and its script;
  then the job is run ``repeats`` times each way, interleaved: *cold* runs the
  script as experimaestro did before the warm start (``python learn.py``),
  *warm* runs what the local launcher now starts (``python -S forkclient.py
  -- learn.py``) with the fork server already up. Time to first step =
  (``start`` event - spawn) + the first ``train_step``'s ``elapsed``, as in
  :mod:`bench.startup`.
- **Tiny Learn tasks, first run**: ``bench/plans/learn`` with ``count`` tasks
  (Synthetic, 1 epoch, ``cpu(cores=1)``), end to end, with
  ``XPM_TRAIN_WARM_START=0`` (today's path before the warm start) then warm
  (a warm host: the server is started before the plan).
- **End of a tracked job**: the same one-job plan with the workspace MLflow
  store; the job is re-run ``repeats`` times (warm) and timed from its
  ``end`` event to the exit of its process (nothing waits for MLflow; the
  forwarder does it).
- **The tune plan** (``experiments/tune``, 20 trials, 2 in parallel,
  tracking off), first run, cold then warm.
- **The tune plan against plain Optuna**: the same plan (warm host, first
  run) and the same study written as plain Optuna in one process
  (:mod:`bench.plain_optuna`, ``study.optimize(n_jobs=2)``), interleaved,
  each timed from its interpreter's start to its end.

Every figure: median and (min-max) spread; the load average is recorded
before each side.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .common import PYTHON, REPO, BenchError, bench_env, job_folders, load, median, read_jsonl, run_plan
from .startup import reset

CLIENT = REPO / "xpm_train" / "warm" / "forkclient.py"


def spread(values: list[float]) -> str:
    return f"{median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


@contextmanager
def warm_start(enabled: bool):
    previous = os.environ.get("XPM_TRAIN_WARM_START")
    os.environ["XPM_TRAIN_WARM_START"] = "1" if enabled else "0"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("XPM_TRAIN_WARM_START")
        else:
            os.environ["XPM_TRAIN_WARM_START"] = previous


def server_up(env: dict[str, str], timeout: float = 300) -> None:
    """Start the fork server of ``env`` (if needed) and wait until it listens."""
    sys.path.insert(0, str(REPO))
    from xpm_train.warm import forkclient
    from xpm_train.locks import held

    key = forkclient.server_key(env, PYTHON)
    files = forkclient.paths(key, env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_UNIX) as sock:
            try:
                sock.connect(files["sock"])
                return
            except OSError:
                pass
        if not held(files["lock"]):
            subprocess.Popen([PYTHON, "-m", "xpm_train.warm.forkserver", key], env=env, cwd="/",
                             stdout=open(files["log"], "ab"), stderr=subprocess.STDOUT,
                             start_new_session=True)
        time.sleep(0.5)
    raise BenchError(f"the fork server did not start: {files['log']}")


def time_run(job: Path, warm: bool) -> dict[str, Any]:
    """Run the job script once (cold or through the warm client)."""
    reset(job)
    (job / "locks.json").write_text(json.dumps({"dynamic_locks": []}))
    script = job / "learn.py"
    command = [PYTHON, "-S", str(CLIENT), "--threads", "1", "--", str(script)] if warm else [str(script)]
    env = bench_env(job.parent.parent.parent)
    spawned = time.time()
    done = subprocess.run(command, cwd=job, capture_output=True, text=True, env=env, timeout=600)
    ended = time.time()
    if done.returncode != 0:
        raise BenchError(f"job script {script} failed:\n{done.stderr[-2000:]}")
    if warm and "normal start" in done.stderr:
        raise BenchError(f"the warm run started cold: {done.stderr[-500:]}")
    events = read_jsonl(job / "events.jsonl")
    start = next(e for e in events if e["event"] == "start")
    end = next(e for e in events if e["event"] == "end")
    first = next(r for r in read_jsonl(job / "metrics.jsonl") if r["split"] == "train_step")
    return {"to_first_step_s": start["time"] - spawned + first["elapsed"], "end_to_exit_s": ended - end["time"],
            "process_s": ended - spawned}


def first_step(tmp: Path, repeats: int) -> dict[str, Any]:
    workdir = tmp / "warm-first-step"
    run_plan("learn", workdir, "epochs=1", "log_interval=1", "device=cpu")
    (job,) = job_folders(workdir, "xpm_train.learn.learn")
    server_up(bench_env(workdir))
    runs = []
    for _ in range(repeats):
        runs.append({"cold": time_run(job, warm=False), "warm": time_run(job, warm=True), "load": load()})
    return {"cold": [r["cold"]["to_first_step_s"] for r in runs],
            "warm": [r["warm"]["to_first_step_s"] for r in runs], "runs": runs}


def tracked_end(tmp: Path, repeats: int) -> dict[str, Any]:
    workdir = tmp / "warm-tracked"
    store = f"sqlite:///{(workdir / 'mlflow' / 'mlflow.db').resolve()}"
    run_plan("learn", workdir, "epochs=1", "log_interval=1", "device=cpu", f"tracking_uri={store}")
    (job,) = job_folders(workdir, "xpm_train.learn.learn")
    server_up(bench_env(workdir))
    runs = [time_run(job, warm=True) for _ in range(repeats)]
    runs += [time_run(job, warm=False) for _ in range(repeats)]
    return {"warm": [r["end_to_exit_s"] for r in runs[:repeats]],
            "cold": [r["end_to_exit_s"] for r in runs[repeats:]], "runs": runs}


def plans(tmp: Path, count: int) -> dict[str, Any]:
    overrides = (f"count={count}", "data=synthetic", "epochs=1", "device=cpu")
    result = {}
    for name, warm in (("cold", False), ("warm", True)):
        workdir = tmp / f"warm-plan-{name}"
        if warm:
            server_up(bench_env(workdir))
        before = load()
        with warm_start(warm):
            wall = run_plan("learn", workdir, *overrides)
        if len(job_folders(workdir, "xpm_train.learn.learn")) != count:
            raise BenchError(f"{workdir}: not {count} jobs")
        result[name] = {"wall_s": wall, "load_before": before}
    return result


def run_tune_plan(workdir: Path, warm: bool, env: dict[str, str] | None = None) -> dict[str, Any]:
    """experiments/tune (tracking off), first run in ``workdir``: wall time
    (``env``: variables added to :func:`bench_env`'s)."""
    params = REPO / "experiments" / "tune" / "params.yaml"
    env = {**bench_env(workdir), **(env or {}), "XPM_TRAIN_WARM_START": "1" if warm else "0"}
    if warm:
        server_up(env)
    before = load()
    start = time.perf_counter()
    done = subprocess.run([PYTHON, "-m", "experimaestro", "run-experiment", "--workdir", str(workdir),
                           "-c", "tracking_uri=off", str(params)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise BenchError(f"tune plan failed: {done.stderr[-2000:]}")
    return {"wall_s": wall, "load_before": before}


def tune_plan(tmp: Path) -> dict[str, Any]:
    """experiments/tune (tracking off), first run, cold then warm."""
    return {name: run_tune_plan(tmp / f"warm-tune-{name}", warm) for name, warm in (("cold", False), ("warm", True))}


def run_plain_optuna() -> dict[str, Any]:
    before = load()
    done = subprocess.run([PYTHON, "-m", "bench.plain_optuna"], cwd=REPO, env=bench_env(), capture_output=True,
                          text=True, timeout=3600)
    if done.returncode != 0:
        raise BenchError(f"plain Optuna failed: {done.stderr[-2000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load_before": before}


def tune_vs_optuna(tmp: Path, repeats: int) -> dict[str, Any]:
    """The tune plan (warm host, first run) and plain Optuna, ``repeats`` interleaved pairs."""
    runs = [{"plan": run_tune_plan(tmp / f"tune-vs-optuna-{i}", warm=True), "optuna": run_plain_optuna()}
            for i in range(repeats)]
    return {"plan": [r["plan"]["wall_s"] for r in runs], "optuna": [r["optuna"]["wall_s"] for r in runs],
            "runs": runs}


def tune_rows(tmp: Path, repeats: int) -> list[dict[str, Any]]:
    """``python -m bench --only tune-vs-optuna``: the tune plan against plain Optuna."""
    versus = tune_vs_optuna(tmp, repeats)
    ratio = median(versus["plan"]) / median(versus["optuna"])
    return [{
        "benchmark": "tune-vs-optuna", "unit": "s",
        "case": "tune plan (20 trials, 2 in parallel, tracking off, warm host, first run) vs plain Optuna "
                "(n_jobs=2, one process)",
        "xpm_train": median(versus["plan"]), "baseline": median(versus["optuna"]),
        "notes": (f"plan {spread(versus['plan'])}, plain Optuna {spread(versus['optuna'])}: median (min-max) of "
                  f"{repeats} interleaved pairs, each from its interpreter's start; {ratio:.1f}x (target <= 2x)"),
        "detail": versus}]


def run(tmp: Path, quick: bool) -> list[dict[str, Any]]:
    repeats = 3 if quick else 5
    count = 10 if quick else 50
    rows = []
    steps = first_step(tmp, repeats)
    rows.append({
        "benchmark": "warm", "case": "Learn job: spawn -> first step, warm vs cold", "unit": "s",
        "xpm_train": median(steps["warm"]), "baseline": median(steps["cold"]),
        "notes": (f"warm {spread(steps['warm'])}, cold {spread(steps['cold'])}: median (min-max) of "
                  f"{repeats} interleaved pairs; target <= 0.5 s warm"), "detail": steps})
    planned = plans(tmp, count)
    rows.append({
        "benchmark": "warm", "case": f"{count} Learn tasks (Synthetic, 1 epoch), first run: warm vs cold",
        "unit": "s", "xpm_train": planned["warm"]["wall_s"], "baseline": planned["cold"]["wall_s"],
        "notes": (f"{planned['cold']['wall_s'] / planned['warm']['wall_s']:.1f}x faster warm (target >= 3x); "
                  f"load {planned['cold']['load_before']:.1f} / {planned['warm']['load_before']:.1f}"),
        "detail": planned})
    ends = tracked_end(tmp, repeats)
    rows.append({
        "benchmark": "warm", "case": "tracked job (workspace MLflow store): end event -> process exit",
        "unit": "s", "xpm_train": median(ends["warm"]), "baseline": median(ends["cold"]),
        "notes": (f"warm {spread(ends['warm'])}, cold {spread(ends['cold'])}; target <= 0.2 s; the MLflow "
                  "worker it replaces took 1.13 s (docs/performance.md, 2026-11-30)"), "detail": ends})
    tune = tune_plan(tmp)
    rows.append({
        "benchmark": "warm", "case": "tune plan (20 trials, 2 in parallel, tracking off), first run",
        "unit": "s", "xpm_train": tune["warm"]["wall_s"], "baseline": tune["cold"]["wall_s"],
        "notes": (f"{tune['cold']['wall_s'] / tune['warm']['wall_s']:.1f}x faster warm; load "
                  f"{tune['cold']['load_before']:.1f} / {tune['warm']['load_before']:.1f}"), "detail": tune})
    return rows


if __name__ == "__main__":
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m bench.warm")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xpm-bench-warm-") as folder:
        for row in run(Path(folder), args.quick):
            row.pop("detail")
            print(json.dumps(row))
