"""Benchmark 2: start-up, from process start to the first training step of a
Learn job, against a bare ``python -c "import torch"``.

Every baseline is timed like the job: from spawning the process to a mark
(the script prints ``time.time()`` right after its statement,
:func:`time_to_mark`), not to the process's exit, which costs another 0.5-1 s
with torch loaded.

- **Learn job**: ``bench/plans/learn`` (one job, ``log_interval=1``) is run
  once with experimaestro to create the job folder and its script; then the
  job script experimaestro wrote (``learn.py``: TaskRunner -> Learn.execute)
  is run again ``repeats`` times in that folder, its outputs cleared before
  each run. Time to first step = (``start`` event's timestamp - the time the
  process was spawned) + the ``elapsed`` of the first ``train_step`` record
  of ``metrics.jsonl`` (both clocks start together in the task's logger).
  One more run under ``python -X importtime`` lists which heavy modules the
  job process imported.
- **Second baseline**: the smallest torch training script (:data:`TORCH_STEP`:
  ``import torch``, a ``Linear``, one Adam step). Every ``torch.optim``
  optimizer imports ``torch._dynamo`` (and sympy, triton) when it is built and
  at each step (torch 2.x: ``_disable_dynamo``, ``_use_grad_for_differentiable``),
  about 1 s here: any torch training script pays it, the demo loop
  included. The overhead above this baseline is what experimaestro and
  xpm-train add.
- **Imports**: time to the end of ``python -c "import X"`` (median of ``repeats``)
  for ``pass``, ``torch``, ``xpm_train``, ``xpm_train.learn`` and each heavy
  module, and the module's cumulative import time from ``-X importtime``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from .common import PYTHON, REPO, BenchError, bench_env, job_folders, median, read_jsonl, run_plan

TORCH_STEP = ("import torch; net = torch.nn.Linear(4, 2); "
              "optimizer = torch.optim.Adam(net.parameters(), fused=True); "
              "net(torch.ones(1, 4)).sum().backward(); optimizer.step()")
"""The smallest torch training script: one step of Adam (as Learn's default)"""

HEAVY = ("torchvision", "mlflow", "pandas", "optuna", "sklearn")
OUTPUTS = ("metrics.jsonl", "events.jsonl", "final.json", "checkpoints", "learn.done", "learn.failed")


def importtime_report(stderr: str) -> dict[str, int]:
    """Module -> cumulative microseconds, from ``-X importtime`` output."""
    times: dict[str, int] = {}
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+\d+\s+\|\s+(\d+)\s+\|\s*(\S+)", line)
        if match:
            times[match.group(2)] = max(times.get(match.group(2), 0), int(match.group(1)))
    return times


def time_to_mark(statement: str) -> float:
    """Seconds from spawning ``python -c statement`` to the end of ``statement``.

    The script prints ``time.time()`` when ``statement`` is done, so the
    interpreter's exit is not counted: 0.5 s after ``import torch`` and about
    1 s after a torch.optim step here, which a whole-process wall time would
    add to the baseline (the job's clock stops at its first step)."""
    spawned = time.time()
    done = subprocess.run([PYTHON, "-c", f"{statement}\nimport time\nprint(repr(time.time()))"], cwd=REPO,
                          capture_output=True, text=True, env=bench_env(), timeout=300)
    if done.returncode != 0:
        raise BenchError(f"python -c {statement!r} failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1]) - spawned


def import_time(module: str, repeats: int) -> dict[str, Any]:
    statement = "pass" if module == "pass" else f"import {module}"
    times = [time_to_mark(statement) for _ in range(repeats)]
    result = {"seconds": median(times), "runs": times}
    if module != "pass":
        done = subprocess.run([PYTHON, "-X", "importtime", "-c", statement], capture_output=True, text=True,
                              env=bench_env(), timeout=300)
        result["importtime_s"] = importtime_report(done.stderr).get(module, 0) / 1e6
    return result


def reset(job: Path) -> None:
    for name in OUTPUTS:
        path = job / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def time_job(job: Path, importtime: bool = False) -> dict[str, Any]:
    """Run the job script once more; seconds to its ``start`` event and to its first step.

    Outside the scheduler the job holds no launcher reservation (host-wide
    counter), so its ``locks.json`` is emptied: acquiring it is a few file
    operations, and the scheduler's own waiting is what benchmark 3 measures."""
    reset(job)
    (job / "locks.json").write_text(json.dumps({"dynamic_locks": []}))
    script = next(job.glob("learn.py"))
    command = [PYTHON, *(["-X", "importtime"] if importtime else []), str(script)]
    spawned = time.time()
    done = subprocess.run(command, cwd=job, capture_output=True, text=True, env=bench_env(job.parent.parent.parent),
                          timeout=600)
    ended = time.time()
    if done.returncode != 0:
        raise BenchError(f"job script {script} failed:\n{done.stderr[-2000:]}")
    start = next(e for e in read_jsonl(job / "events.jsonl") if e["event"] == "start")
    first = next(r for r in read_jsonl(job / "metrics.jsonl") if r["split"] == "train_step")
    result = {"to_start_event_s": start["time"] - spawned,
              "to_first_step_s": start["time"] - spawned + first["elapsed"],
              "process_s": ended - spawned}
    if importtime:
        imported = importtime_report(done.stderr)
        result["heavy_imported"] = sorted(name for name in HEAVY if name in imported)
    return result


def learn_job(workdir: Path, repeats: int, *overrides: str) -> dict[str, Any]:
    """Time the job ``repeats`` times, each run paired with a bare ``import
    torch`` just before it (so both see the same load of the host)."""
    run_plan("learn", workdir, "epochs=1", "log_interval=1", "device=cpu", *overrides)
    (job,) = job_folders(workdir, "xpm_train.learn.learn")
    runs = []
    for _ in range(repeats):
        torch_s = time_to_mark("import torch")
        optim_s = time_to_mark(TORCH_STEP)
        runs.append({**time_job(job), "import_torch_s": torch_s, "torch_optim_s": optim_s})
    traced = time_job(job, importtime=True)
    return {
        "to_first_step_s": median([r["to_first_step_s"] for r in runs]),
        "to_start_event_s": median([r["to_start_event_s"] for r in runs]),
        "process_s": median([r["process_s"] for r in runs]),
        "import_torch_s": median([r["import_torch_s"] for r in runs]),
        "overhead_s": median([r["to_first_step_s"] - r["import_torch_s"] for r in runs]),
        "torch_optim_s": median([r["torch_optim_s"] for r in runs]),
        "overhead_over_optim_s": median([r["to_first_step_s"] - r["torch_optim_s"] for r in runs]),
        "runs": runs,
        "heavy_imported": traced["heavy_imported"],
    }


def run(tmp: Path, quick: bool, mnist_folder: Path | None = None) -> list[dict[str, Any]]:
    repeats = 3 if quick else 5
    imports = {name: import_time(name, repeats) for name in ("pass", "torch", "xpm_train", "xpm_train.learn", *HEAVY)}
    torch_s = imports["torch"]["seconds"]
    rows = []
    cases = {"Synthetic 8x8 data": ("data=synthetic",)}
    if mnist_folder is not None:
        cases["MNIST-format files (decoded cache)"] = ("data=mnist", f"mnist_folder={mnist_folder}")
    for index, (name, overrides) in enumerate(cases.items()):
        job = learn_job(tmp / f"startup-{index}", repeats, *overrides)
        rows.append({
            "benchmark": "startup", "case": f"Learn job: process start -> first step ({name})", "unit": "s",
            "xpm_train": job["to_first_step_s"], "baseline": job["import_torch_s"],
            "overhead_s": job["overhead_s"],
            "notes": (f"{job['overhead_s']:+.2f} s over bare import torch (median of {repeats} paired runs); "
                      f"{job['overhead_over_optim_s']:+.2f} s over a one-step torch script "
                      f"({job['torch_optim_s']:.2f} s: torch.optim imports torch._dynamo); "
                      f"task start event at {job['to_start_event_s']:.2f} s; "
                      f"heavy modules imported: {', '.join(job['heavy_imported']) or 'none'}"),
            "job": job,
        })
    for name in ("xpm_train", "xpm_train.learn", *HEAVY):
        item = imports[name]
        rows.append({
            "benchmark": "startup", "case": f'python -c "import {name}"', "unit": "s",
            "xpm_train": item["seconds"], "baseline": torch_s,
            "notes": (f"-X importtime cumulative {item['importtime_s']:.3f} s; process start to end of import, "
                      f"median of {repeats}"),
            "imports": item,
        })
    rows.append({"benchmark": "startup", "case": 'python -c "pass" / "import torch"', "unit": "s",
                 "xpm_train": imports["pass"]["seconds"], "baseline": torch_s,
                 "notes": "interpreter alone / bare torch (the baseline of the rows above)"})
    return rows
