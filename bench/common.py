"""What every benchmark shares: running plans and commands, timing, reading job folders."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PLANS = REPO / "bench" / "plans"
PYTHON = sys.executable


class BenchError(RuntimeError):
    """A benchmark could not run (the message says which command failed and where its log is)."""


def bench_env(workdir: Path | None = None) -> dict[str, str]:
    """The environment of every command: the repository on ``PYTHONPATH`` (job
    processes import ``bench.tasks``), MLflow pointed at a throw-away store,
    no carbon tracking, unbuffered output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    store = (workdir or Path("/tmp")) / "mlflow"
    env["MLFLOW_TRACKING_URI"] = store.resolve().as_uri()
    env["PYTHONUNBUFFERED"] = "1"
    # Host-wide job counters of xpm-train's local launcher: private to the
    # benchmark, so that jobs of other experiments on this host do not hold ours
    env["XPM_TRAIN_TOKENS_DIR"] = str((workdir or Path("/tmp")).parent / "tokens")
    env.pop("XPM_TRAIN_CARBON", None)
    return env


def run_plan(plan: str, workdir: Path, *overrides: str, timeout: float = 3600,
             env: dict[str, str] | None = None) -> float:
    """Run ``bench/plans/<plan>/params.yaml`` with ``experimaestro run-experiment``
    in ``workdir`` (``env``: variables added to :func:`bench_env`'s); returns its
    wall time (seconds). Fails with the log's tail."""
    command = [PYTHON, "-m", "experimaestro", "run-experiment", "--workdir", str(workdir)]
    for item in ("tracking_uri=off", *overrides):
        command += ["-c", item]
    command.append(str(PLANS / plan / "params.yaml"))
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir.parent / f"{workdir.name}.log"
    start = time.perf_counter()
    with log.open("a") as out:
        done = subprocess.run(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                              env={**bench_env(workdir), **(env or {})}, timeout=timeout)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        tail = log.read_text()[-3000:]
        raise BenchError(f"plan {plan} failed (exit {done.returncode}); log: {log}\n{tail}")
    return wall


def job_folders(workdir: Path, task: str) -> list[Path]:
    """Job folders of ``task`` (e.g. ``xpm_train.learn.learn``) in ``workdir``."""
    return sorted(p for p in (workdir / "jobs" / task).glob("*") if p.is_dir())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def done_markers(workdir: Path) -> dict[str, int]:
    """``.done`` marker of every job -> its modification time (ns): two equal
    snapshots mean that no job ran in between."""
    return {str(p.relative_to(workdir)): p.stat().st_mtime_ns for p in (workdir / "jobs").glob("*/*/*.done")}


def median(values: list[float]) -> float:
    return statistics.median(values)


def load() -> float:
    """1-minute load average of this host."""
    return os.getloadavg()[0]


def uptime() -> str:
    """``uptime``'s line: the load averages over 1, 5 and 15 minutes (the host may be shared)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def machine() -> dict[str, Any]:
    """The host the numbers were taken on."""
    import torch

    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "load_at_start": round(load(), 2),
        "uptime_at_start": uptime(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    from importlib.metadata import version

    info["experimaestro"] = version("experimaestro")
    info["torchvision"] = version("torchvision")
    return info
