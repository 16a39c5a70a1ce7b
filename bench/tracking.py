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
3. Learn for real (``bench/plans/learn``: MLP on MNIST-format files, Learn's
   default ``log_interval`` and validation split) with tracking off and on
   (the workspace's MLflow store), interleaved pairs; the steady epoch time
   (after the first epochs, while the sink's worker imports mlflow) from
   ``metrics.jsonl``, and the spread between the runs with tracking off (the
   noise floor of the comparison).

    python -m bench --only tracking [--quick]     # in the suite's table
    python -m bench.tracking [--quick]            # alone
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
    from xpm_train.metrics import read_jsonl
    from xpm_train.tracking import forwarder

    forwarder.wait_forwarded(sink.workspace, timeout=300)  # MLflow's side is the forwarder's
    warnings = [e["message"] for e in read_jsonl(folder / "events.jsonl") if e["event"] == "warning"]
    return {"training_thread_s": spent, "close_wait_s": close_s, "failed": warnings[0] if warnings else None}


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


WARMUP_EPOCHS = 2
"""Epochs left out of the steady state (the sink's worker imports mlflow meanwhile)"""


def learn_run(workdir: Path, idx: Path, epochs: int, tracking_uri: str) -> dict:
    """One Learn (MLP 784-128-10 on the MNIST-format files, Learn's default
    ``log_interval``, ``val_fraction`` and checkpointing) with tracking off or
    on; its epoch times (s), from ``metrics.jsonl``."""
    from .common import job_folders, median, read_jsonl, run_plan

    wall = run_plan("learn", workdir, "data=mnist", f"mnist_folder={idx}", "model=mlp", "hidden=128",
                    f"epochs={epochs}", "val_fraction=0.1", "log_interval=50", "device=cpu",
                    f"tracking_uri={tracking_uri}")
    (job,) = job_folders(workdir, "xpm_train.learn.learn")
    ends = [p["elapsed"] for p in read_jsonl(job / "metrics.jsonl") if p["split"] == "val"]
    epoch_times = [b - a for a, b in zip([0.0, *ends], ends)]
    events = read_jsonl(job / "events.jsonl")
    start_t = next(e["time"] for e in events if e["event"] == "start")
    end_t = next(e["time"] for e in events if e["event"] == "end")
    done_t = (job / "learn.done").stat().st_mtime
    return {"epoch_s": epoch_times, "steady_epoch_s": median(epoch_times[WARMUP_EPOCHS:]),
            "start_to_end_s": end_t - start_t, "end_to_done_s": done_t - end_t, "plan_s": wall,
            "tracked": any(e["event"] == "tracking" for e in events)}


def learn_comparison(tmp: Path, idx: Path, epochs: int, pairs: int) -> dict:
    """``pairs`` Learn runs with tracking off and on, interleaved (the load of
    the host drifts): the steady epoch's median, and the spread between runs
    of the same setting (the noise floor of the comparison)."""
    from xpm_train.tracking import store

    from .common import median

    runs: dict[str, list[dict]] = {"off": [], "on": []}
    for i in range(pairs):
        for kind in ("off", "on"):
            workdir = tmp / f"tracking-{kind}{i}"
            uri = "off" if kind == "off" else store.workspace_uri(workdir)
            result = learn_run(workdir, idx, epochs, uri)
            if result["tracked"] != (kind == "on"):
                raise RuntimeError(f"{workdir}: tracking was {'on' if result['tracked'] else 'off'}, expected {kind}")
            runs[kind].append(result)
    steady = {kind: [r["steady_epoch_s"] for r in rows] for kind, rows in runs.items()}
    off, on = median(steady["off"]), median(steady["on"])
    return {
        "runs": runs,
        "off_epoch_s": off,
        "on_epoch_s": on,
        "overhead_pct": 100 * (on / off - 1),
        "noise_pct": 100 * (max(steady["off"]) - min(steady["off"])) / off,
        "whole_job_overhead_s": median([r["start_to_end_s"] for r in runs["on"]])
                                - median([r["start_to_end_s"] for r in runs["off"]]),
        "end_to_done_on_s": median([r["end_to_done_s"] for r in runs["on"]]),
        "end_to_done_off_s": median([r["end_to_done_s"] for r in runs["off"]]),
    }


def thread_costs(tmp: Path, epochs: int, points: int) -> dict:
    """The logging styles on a fresh workspace store, same points (part 1)."""
    from xpm_train.tracking import store

    report: dict = {"epochs": epochs, "points_per_epoch": points + 2}
    uri = store.workspace_uri(tmp / "ws")
    start = time.perf_counter()
    experiment_id = store.ensure_experiment(uri, "bench")
    report["create_store_s"] = time.perf_counter() - start
    for name in ("jsonl", "per_point", "sink"):
        (tmp / name / name).mkdir(parents=True)
    report["jsonl"] = style_jsonl(tmp / "jsonl" / "jsonl", epochs, points)
    report["per_point"] = style_per_point(tmp / "per_point", uri, experiment_id, epochs, points)
    report["sink"] = style_sink(tmp / "sink" / "sink", uri, experiment_id, epochs, points)
    report["one_time"] = one_time_costs(uri, experiment_id)
    report["values"] = epochs * (points * 2 + 4)
    return report


def run(tmp: Path, quick: bool, mnist_folder: Path | None = None) -> list[dict]:
    """The suite's tracking rows (``python -m bench --only tracking``)."""
    from .throughput import write_mnist_files

    tmp = tmp / "tracking"
    tmp.mkdir(parents=True, exist_ok=True)
    costs = thread_costs(tmp / "styles", epochs=20, points=50)
    per_value = {name: 1000 * costs[name]["training_thread_s"] / costs["values"]
                 for name in ("jsonl", "per_point", "sink")}
    if mnist_folder is None:
        mnist_folder, _ = write_mnist_files(tmp / "mnist", *((6000, 1000) if quick else (60000, 10000)))
    samples = 6000 if quick else 60000
    epochs, pairs = (12, 2) if quick else (8, 3)
    learn = learn_comparison(tmp, mnist_folder, epochs, pairs)
    once = costs["one_time"]
    return [
        {"benchmark": "tracking", "case": "training-thread time per logged value: MetricsLogger + MLflow sink",
         "unit": "ms", "against": "log_metric per value", "xpm_train": per_value["sink"], "baseline": per_value["per_point"],
         "ratio": per_value["per_point"] / per_value["sink"],
         "notes": (f"{costs['values']} values; jsonl alone {per_value['jsonl']:.3f} ms; against: "
                   f"MlflowClient.log_metric per value; ratio = how many times cheaper; once per job, in the "
                   f"sink's worker: import mlflow {once['import_mlflow_s']:.2f} s, open store "
                   f"{once['open_store_s']:.2f} s, create run {once['create_run_s']:.2f} s"),
         "styles": costs},
        {"benchmark": "tracking", "case": (f"Learn steady epoch, tracking on (workspace MLflow store) vs off: MLP, "
                                           f"{samples} MNIST-format images, default log_interval"),
         "unit": "s", "against": "tracking off", "xpm_train": learn["on_epoch_s"], "baseline": learn["off_epoch_s"],
         "ratio": learn["on_epoch_s"] / learn["off_epoch_s"],
         "notes": (f"{learn['overhead_pct']:+.1f}% (noise between runs with tracking off: "
                   f"{learn['noise_pct']:.1f}%); median of {pairs} interleaved pairs x {epochs - WARMUP_EPOCHS} "
                   f"epochs; whole job {learn['whole_job_overhead_s']:+.2f} s; end -> done "
                   f"{learn['end_to_done_on_s']:.2f} s on, {learn['end_to_done_off_s']:.2f} s off "
                   f"(the sink's worker finishing: curves, artifacts, status)"),
         "learn": learn},
    ]


def main() -> None:
    """Standalone: ``python -m bench.tracking [--quick]`` (the suite runs the same rows)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "tracking.json")
    args = parser.parse_args()
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(Path(tmp), args.quick)
    for row in rows:
        print(f"{row['case']}: {row['xpm_train']:.4f} {row['unit']} against {row['baseline']:.4f} "
              f"({row['ratio']:.3f}x); {row['notes']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2, default=str))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
