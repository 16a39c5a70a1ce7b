"""Benchmark ``budgets``: pause-and-promote (ASHA) against a pruner and no pruning.

``experiments/asha`` (27 MLP configurations on digits, a cosine schedule over
27 epochs, TPE seed 0, 2 jobs in parallel, tracking off, warm host, first
run in a fresh workspace) three times, only its ``scheduler`` changed:

- ``asha``: :class:`xpm_train.tune.ASHA` (1, 27, 3): rungs of 1, 3, 9 and 27
  epochs, each a Learn job continuing the one below it, paused trials
  promoted later;
- ``halving``: Optuna's ``SuccessiveHalvingPruner`` (min_resource 1,
  reduction factor 3) asked by each trial's Learn after every epoch (our
  pruning path: :class:`xpm_train.tune.SuccessiveHalving`);
- ``none``: every trial trains 27 epochs.

Per row: the plan's wall time, the epochs trained over all its Learn jobs
(counted from their ``metrics.jsonl``, less the epochs copied from the job
each continued), the best validation accuracy (the study's best trial) and
the test accuracy of that trial's model (the plan's Evaluate). A fourth row:
the ASHA study extended to twice the trials in the same workspace, the
epochs that extension trained, against what the journal's rungs call for.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from .common import PYTHON, REPO, BenchError, bench_env, job_folders, load, read_jsonl

PARAMS = REPO / "experiments" / "asha" / "params.yaml"
SCHEDULERS = ("asha", "halving", "none")
LEARN = "xpm_train.learn.learn"


def run_asha_plan(workdir: Path, *overrides: str) -> dict[str, Any]:
    """experiments/asha (tracking off) in ``workdir``: wall time and the figures it prints last."""
    command = [PYTHON, "-m", "experimaestro", "run-experiment", "--workdir", str(workdir), "-c", "tracking_uri=off"]
    for item in overrides:
        command += ["-c", item]
    workdir.mkdir(parents=True, exist_ok=True)
    before = load()
    start = time.perf_counter()
    done = subprocess.run([*command, str(PARAMS)], cwd=REPO, env=bench_env(workdir), capture_output=True,
                          text=True, timeout=3600)
    wall = time.perf_counter() - start
    (workdir.parent / f"{workdir.name}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise BenchError(f"experiments/asha {' '.join(overrides)} failed: {done.stderr[-2000:]}")
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    return {**printed, "wall_s": wall, "load_before": before}


def val_epochs(folder: Path) -> list[int]:
    """The epochs a Learn job's ``metrics.jsonl`` has a validation row for."""
    return sorted({row["epoch"] for row in read_jsonl(folder / "metrics.jsonl") if row.get("split") == "val"})


def epochs_trained(workdir: Path) -> dict[str, int]:
    """``{Learn job: epochs it trained itself}``: its validation epochs less
    those of the job it continued (``continued_from`` of its ``final.json``)."""
    trained = {}
    for folder in job_folders(workdir, LEARN):
        final = json.loads((folder / "final.json").read_text()) if (folder / "final.json").exists() else {}
        prefix = final.get("continued_from")
        copied = len(val_epochs(workdir / "jobs" / prefix)) if prefix else 0
        trained[folder.name] = len(val_epochs(folder)) - copied
    return trained


def highest_rungs(workdir: Path) -> dict[int, int]:
    """``{trial: its highest rung's epochs}`` of the only study of ``workdir``, from its journal."""
    import optuna

    from xpm_train.tune.storage import journal_path, list_studies, open_storage

    (name,) = list_studies(workdir)
    study = optuna.load_study(study_name=name, storage=open_storage(journal_path(workdir, name)))
    return {t.number: max(t.intermediate_values, default=0) for t in study.get_trials()}


def extension(workdir: Path, n_trials: int) -> dict[str, Any]:
    """Run the ASHA plan of ``workdir`` again with ``n_trials``: what the extension trained."""
    before, rungs_before = epochs_trained(workdir), highest_rungs(workdir)
    run = run_asha_plan(workdir, "scheduler=asha", f"n_trials={n_trials}")
    after, rungs_after = epochs_trained(workdir), highest_rungs(workdir)
    if {job: after[job] for job in before} != before:
        raise BenchError(f"{workdir}: the extension trained jobs of the first run again")
    called_for = sum(rungs_after.values()) - sum(rungs_before.values())
    return {**run, "epochs": sum(after.values()) - sum(before.values()), "called_for": called_for,
            "new_jobs": len(after) - len(before), "promoted": sum(
                1 for number, epochs in rungs_before.items() if rungs_after[number] > epochs)}


def run(tmp: Path, quick: bool) -> list[dict[str, Any]]:
    from .warm import server_up

    n_trials = 27
    rows, runs = [], {}
    for scheduler in SCHEDULERS:
        workdir = tmp / f"budgets-{scheduler}"
        server_up(bench_env(workdir))
        runs[scheduler] = run_asha_plan(workdir, f"scheduler={scheduler}", f"n_trials={n_trials}")
        runs[scheduler]["epochs"] = sum(epochs_trained(workdir).values())
        r = runs[scheduler]
        rows.append({
            "benchmark": "budgets", "unit": "s", "scheduler": scheduler, "n_trials": n_trials,
            "case": f"experiments/asha, {n_trials} trials to 27 epochs, scheduler={scheduler}: wall time",
            "xpm_train": r["wall_s"], "epochs_trained": r["epochs"], "best_val_accuracy": r["best_value"],
            "test_accuracy": r["test"],
            "notes": (f"{r['epochs']} epochs trained in all, best val accuracy {r['best_value']:.4f} (trial "
                      f"{r['best_trial']}), its test accuracy {r['test']:.4f}; {r['launched']} Learn jobs; "
                      f"load {r['load_before']:.1f} before"),
            "detail": r})
    extended = extension(tmp / "budgets-asha", 2 * n_trials)
    rows.append({
        "benchmark": "budgets", "unit": "s", "scheduler": "asha", "n_trials": 2 * n_trials,
        "case": f"the asha study extended from {n_trials} to {2 * n_trials} trials (same workspace): wall time",
        "xpm_train": extended["wall_s"], "epochs_trained": extended["epochs"],
        "best_val_accuracy": extended["best_value"], "test_accuracy": extended["test"],
        "notes": (f"{extended['epochs']} epochs trained by the extension, as its rungs call for "
                  f"({extended['called_for']}: {extended['new_jobs']} new rung jobs, {extended['promoted']} "
                  f"paused trials of the first run promoted), none of the first run's again; best val "
                  f"accuracy {extended['best_value']:.4f} (trial {extended['best_trial']}), test "
                  f"{extended['test']:.4f}"),
        "detail": extended})
    return rows


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="xpm-bench-budgets-") as folder:
        for row in run(Path(folder), quick=False):
            row.pop("detail")
            print(json.dumps(row))  # noqa: T201
