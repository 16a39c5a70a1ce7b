"""Fault injection for the reliability tests (run as a script, not collected).

Both modes import torch once, then fork children that do the work and are
killed with SIGKILL by this process, so that many injections cost one import.

``learn JOB_SCRIPT N SEED``
    Runs a Learn job script (``<job>/learn.py``, written by experimaestro) in a
    forked child ``N`` times, each killed at a random step (read from
    ``metrics.jsonl``, which logs every step) plus a random delay of 0-20 ms,
    which lands the kill inside steps, validation and checkpoint writes. After
    each kill, the checkpoints are checked. Prints a JSON report.

``learn JOB_SCRIPT N SEED TOTAL_STEPS SIGNAL``
    The same with another signal (``SIGTERM``, ``SIGUSR1``: preemption); the
    child is waited for, and the time it took to exit is reported.

``checkpoint FOLDER N SEED``
    After a first checkpoint (version 0), a child saves checkpoints of growing
    versions in a loop, going on from the version found; it is killed after a
    random delay, then ``load_latest`` must return an intact version that was
    written, never older than the one found before. Prints a JSON report.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import torch  # noqa: F401  (imported once, before forking)
from experimaestro.run import run as run_task

from xpm_train import checkpoint


def run_child(target, *args) -> int:
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            target(*args)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:  # noqa: BLE001
            import traceback

            traceback.print_exc()
            code = 1
        os._exit(code)
    return pid


def run_job(script: Path):
    """Execute the job's task from its ``params.json``, as its script does, without
    the scheduler's resource tokens (the plan that reserved them was killed)."""
    os.chdir(script.parent)
    run_task(script.parent / "params.json")


def steps_logged(metrics: Path, offset: int) -> tuple[int, int]:
    """(largest step logged after byte ``offset``, new offset)."""
    if not metrics.exists():
        return -1, offset
    with metrics.open("rb") as fp:
        fp.seek(offset)
        data = fp.read()
    end = data.rfind(b"\n") + 1
    largest = -1
    for line in data[:end].splitlines():
        try:
            largest = max(largest, json.loads(line).get("step", -1))
        except json.JSONDecodeError:
            pass
    return largest, offset + end


def check_checkpoints(folder: Path) -> dict:
    corrupt = []
    state = checkpoint.load_latest(folder / "last.pt", on_corrupt=lambda p, e: corrupt.append(str(p)))
    return {"corrupt": corrupt, "epoch": None if state is None else state["run"]["epoch"]}


def learn_mode(script: Path, kills: int, seed: int, total_steps: int, sig: int = signal.SIGKILL) -> dict:
    rng = random.Random(seed)
    job = script.parent
    metrics = job / "metrics.jsonl"
    targets = sorted(rng.randrange(1, total_steps) for _ in range(kills))
    if os.environ.get("XPM_TRAIN_KILL_AFTER"):  # a fixed step instead (one kill)
        targets = [int(os.environ["XPM_TRAIN_KILL_AFTER"])] * kills
    report = {"injections": [], "corrupt": [], "finished_early": False}
    for target in targets:
        offset = metrics.stat().st_size if metrics.exists() else 0
        pid = run_child(run_job, script)
        largest = -1
        while True:
            step, offset = steps_logged(metrics, offset)
            largest = max(largest, step)
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                report["finished_early"] = True
                break
            if largest >= target:
                time.sleep(rng.uniform(0, 0.02))
                sent = time.monotonic()
                os.kill(pid, sig)
                _, status = os.waitpid(pid, 0)
                exit_seconds = time.monotonic() - sent
                break
            time.sleep(0.001)
        if report["finished_early"]:
            break
        checked = check_checkpoints(job / "checkpoints")
        report["corrupt"] += checked["corrupt"]
        state = checkpoint.load_latest(job / "checkpoints" / "last.pt")
        report["injections"].append({
            "target_step": target, "seen_step": largest, "checkpoint_epoch": checked["epoch"],
            "checkpoint_step": None if state is None else state["run"]["step"],
            "exit_seconds": exit_seconds, "exit_status": status,
        })
    return report


def write_versions(path: Path, size: int, version: int):
    """Save versions ``version + 1``, ``version + 2``... until killed."""
    while True:
        version += 1
        checkpoint.save(path, {"version": version, "payload": torch.full((size,), float(version))})


def checkpoint_mode(folder: Path, kills: int, seed: int) -> dict:
    rng = random.Random(seed)
    path = folder / "last.pt"
    report = {"injections": [], "corrupt": [], "bad_content": []}
    checkpoint.save(path, {"version": 0, "payload": torch.full((1 << 20,), 0.0)})  # as after a job's first save
    found = 0
    for _ in range(kills):
        pid = run_child(write_versions, path, 1 << 20, found)  # each child goes on from what it finds
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        corrupt = []
        state = checkpoint.load_latest(path, on_corrupt=lambda p, e: corrupt.append(str(p)))
        report["corrupt"] += corrupt
        if state is not None and not bool((state["payload"] == state["version"]).all()):
            report["bad_content"].append(state["version"])
        report["injections"].append(None if state is None else state["version"])
        found = found if state is None else state["version"]
    return report


if __name__ == "__main__":
    # The job scripts of the plan run with one thread (cpu(cores=1): the local
    # launcher sets OMP_NUM_THREADS); CPU results are bitwise identical only
    # for the same number of threads, so the children use one too.
    torch.set_num_threads(1)
    mode, target, count, seed = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    if mode == "learn":
        sig = signal.Signals[sys.argv[6]] if len(sys.argv) > 6 else signal.SIGKILL
        result = learn_mode(target, count, seed, int(sys.argv[5]), sig)
    else:
        result = checkpoint_mode(target, count, seed)
    print(json.dumps(result))
