"""Tracking overhead, side by side in one run.

1. Logging styles on a fresh workspace store (SQLite), same points:
   - ``jsonl``: MetricsLogger alone (the floor);
   - ``per-point``: ``MlflowClient.log_metric`` for every value, on the
     training thread (what a naive integration does);
   - ``batched sink``: MetricsLogger + MLflowSink (batches at ``sync()``,
     MLflow in a worker process) -- what xpm-train does.
   Reported: seconds on the training thread, per point and in all; and the
   sink's one-time costs per job (import mlflow, open the store, run
   creation: all in the worker process).
2. The one-time costs of a task process (import mlflow, open the store,
   create the run), measured in a fresh process.
3. ``--plans``: the quickstart plan (1 Learn, N epochs) run with tracking off
   and on, interleaved ``--repeats`` times; Learn's epoch times (from
   metrics.jsonl), steady state (after the first epochs, while the sink
   imports mlflow) and warm-up.

    python bench/tracking.py [--epochs 20] [--points 50] [--plans] [--out bench/results/tracking.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "tracking"))


def points_of(epochs: int, per_epoch: int):
    """What Learn logs: per epoch ``per_epoch`` train_step points (loss, lr),
    then train and val (loss, accuracy)."""
    step = 0
    for epoch in range(epochs):
        batch = []
        for _ in range(per_epoch):
            step += 1
            batch.append(dict(epoch=epoch, step=step, split="train_step", loss=1.0 / step, lr=0.1))
        batch.append(dict(epoch=epoch, step=step, split="train", loss=0.5, accuracy=0.9))
        batch.append(dict(epoch=epoch, step=step, split="val", loss=0.6, accuracy=0.8))
        yield batch


def style_jsonl(folder: Path, epochs: int, per_epoch: int) -> dict:
    from xpm_train.metrics import MetricsLogger

    spent = 0.0
    with MetricsLogger(folder / "metrics.jsonl", folder / "events.jsonl") as log:
        for batch in points_of(epochs, per_epoch):
            start = time.perf_counter()
            for point in batch:
                log.log(**point)
            log.sync()
            spent += time.perf_counter() - start
    return {"training_thread_s": spent}


def style_per_point(folder: Path, uri: str, experiment_id: str, epochs: int, per_epoch: int) -> dict:
    from xpm_train.tracking import store

    client = store.client(uri)
    run = client.create_run(experiment_id)
    spent, calls = 0.0, 0
    for batch in points_of(epochs, per_epoch):
        start = time.perf_counter()
        for point in batch:
            for key in ("loss", "lr", "accuracy"):
                if key in point:
                    client.log_metric(run.info.run_id, f"{point['split']}_{key}", point[key], step=point["step"])
                    calls += 1
        spent += time.perf_counter() - start
    client.set_terminated(run.info.run_id)
    return {"training_thread_s": spent, "calls": calls, "ms_per_call": 1000 * spent / calls}


def style_sink(folder: Path, uri: str, experiment_id: str, epochs: int, per_epoch: int) -> dict:
    from jobsim import settings

    from xpm_train.metrics import MetricsLogger
    from xpm_train.tracking import MLflowSink

    (folder / "params.json").write_text(json.dumps({"workspace": str(folder), "objects": [
        {"id": 1, "identifier": folder.name, "task": 1, "fields": {"epochs": epochs}}]}))
    spent = 0.0
    created = time.perf_counter()
    sink = MLflowSink(settings(uri, experiment_id, plots=True), folder, folder / "events.jsonl")
    log = MetricsLogger(folder / "metrics.jsonl", folder / "events.jsonl", [sink])
    spent += time.perf_counter() - created
    for batch in points_of(epochs, per_epoch):
        start = time.perf_counter()
        for point in batch:
            log.log(**point)
        log.sync()
        spent += time.perf_counter() - start
    start = time.perf_counter()
    log.close()
    close_s = time.perf_counter() - start
    return {"training_thread_s": spent, "close_wait_s": close_s, "failed": sink.failed}


ONE_TIME = """
import json, sys, time
t0 = time.perf_counter()
import mlflow
t1 = time.perf_counter()
from xpm_train.tracking import store
client = store.client(sys.argv[1])
t2 = time.perf_counter()
run = client.create_run(sys.argv[2])
t3 = time.perf_counter()
print(json.dumps({"import_mlflow_s": t1 - t0, "open_store_s": t2 - t1, "create_run_s": t3 - t2}))
"""


def one_time_costs(uri: str, experiment_id: str) -> dict:
    """What a task pays once (in the sink's worker process)."""
    result = subprocess.run([sys.executable, "-c", ONE_TIME, uri, experiment_id], capture_output=True,
                            text=True, env={**os.environ, "MLFLOW_TRACKING_URI": uri})
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


WARMUP_EPOCHS = 4
"""Epochs left out of the steady-state mean (the sink imports mlflow meanwhile)"""


def plan_epoch_time(tracking_uri: str, epochs: int, workdir: Path) -> dict:
    """Run the quickstart with one Learn; its epoch times (s)."""
    command = [sys.executable, "-m", "experimaestro", "run-experiment", "--workdir", str(workdir),
               "-c", f"epochs={epochs}", "-c", "hidden_dim=[32]", "-c", "lr=[0.001]",
               "-c", f"tracking_uri={tracking_uri}", str(REPO / "experiments/quickstart/params.yaml")]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "MLFLOW_TRACKING_URI": ""})
    plan_s = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    learn = next((workdir / "jobs" / "xpm_train.learn.learn").iterdir())
    from xpm_train.metrics import read_jsonl

    ends = [p["elapsed"] for p in read_jsonl(learn / "metrics.jsonl") if p["split"] == "val"]
    epoch_times = [b - a for a, b in zip([0.0, *ends], ends)]
    steady = epoch_times[WARMUP_EPOCHS:]
    events = read_jsonl(learn / "events.jsonl")
    start_t = next(e["time"] for e in events if e["event"] == "start")
    end_t = next(e["time"] for e in events if e["event"] == "end")
    done_t = (learn / "learn.done").stat().st_mtime
    return {"epoch_s": epoch_times, "warmup_s": sum(epoch_times[:WARMUP_EPOCHS]),
            "steady_epoch_s": sum(steady) / len(steady),
            "start_to_end_s": end_t - start_t, "end_to_done_s": done_t - end_t, "plan_s": plan_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--points", type=int, default=50, help="train_step points per epoch")
    parser.add_argument("--plans", action="store_true", help="also time the quickstart with tracking off/on")
    parser.add_argument("--plan-epochs", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2, help="off/on plan pairs")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "tracking.json")
    args = parser.parse_args()
    os.environ.pop("MLFLOW_TRACKING_URI", None)

    from xpm_train.tracking import store

    report: dict = {"epochs": args.epochs, "points_per_epoch": args.points + 2}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        uri = store.workspace_uri(tmp / "ws")
        start = time.perf_counter()
        experiment_id = store.ensure_experiment(uri, "bench")
        report["create_store_s"] = time.perf_counter() - start
        for name in ("jsonl", "per_point", "sink"):
            (tmp / name / name).mkdir(parents=True)
        report["jsonl"] = style_jsonl(tmp / "jsonl" / "jsonl", args.epochs, args.points)
        report["per_point"] = style_per_point(tmp / "per_point", uri, experiment_id, args.epochs, args.points)
        report["sink"] = style_sink(tmp / "sink" / "sink", uri, experiment_id, args.epochs, args.points)
        report["one_time"] = one_time_costs(uri, experiment_id)
        if args.plans:
            for i in range(args.repeats):  # interleaved: the machine's load drifts
                report[f"plan_off_{i}"] = plan_epoch_time("off", args.plan_epochs, tmp / f"off{i}")
                report[f"plan_on_{i}"] = plan_epoch_time("", args.plan_epochs, tmp / f"on{i}")

    values = args.epochs * (args.points * 2 + 4)
    print(f"{args.epochs} epochs x {args.points + 2} points ({values} values); store creation "
          f"{report['create_store_s']:.2f} s (once per workspace)")
    print(f"{'style':<14}{'training thread s':>19}{'ms / value':>12}{'close wait s':>14}")
    for name in ("jsonl", "per_point", "sink"):
        row = report[name]
        print(f"{name:<14}{row['training_thread_s']:>19.3f}{1000 * row['training_thread_s'] / values:>12.3f}"
              f"{row.get('close_wait_s', 0.0):>14.3f}")
    once = report["one_time"]
    print(f"once per job, in the sink's worker process: import mlflow "
          f"{once['import_mlflow_s']:.2f} s, open store {once['open_store_s']:.2f} s, "
          f"create run {once['create_run_s']:.2f} s")
    if args.plans:
        print(f"quickstart, 1 Learn x {args.plan_epochs} epochs (steady = epochs after the first "
              f"{WARMUP_EPOCHS}):")
        print(f"{'run':<10}{'steady epoch s':>16}{'first epochs s':>16}{'start->end s':>14}{'end->done s':>13}")
        for i in range(args.repeats):
            for kind in ("off", "on"):
                row = report[f"plan_{kind}_{i}"]
                print(f"{kind + str(i):<10}{row['steady_epoch_s']:>16.3f}{row['warmup_s']:>16.2f}"
                      f"{row['start_to_end_s']:>14.2f}{row['end_to_done_s']:>13.2f}")
        off = min(report[f"plan_off_{i}"]["steady_epoch_s"] for i in range(args.repeats))
        on = min(report[f"plan_on_{i}"]["steady_epoch_s"] for i in range(args.repeats))
        report["steady_epoch_overhead_pct"] = 100 * (on / off - 1)
        print(f"steady epoch, best of {args.repeats}: off {off:.3f} s, on {on:.3f} s "
              f"({report['steady_epoch_overhead_pct']:+.1f}%)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
