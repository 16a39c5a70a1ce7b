"""A job without torch or the scheduler: a job folder (``params.json`` as
experimaestro writes it) and a process logging epochs through the real
``MetricsLogger`` + ``MLflowSink``, as Learn does; the workspace's forwarder
(started by the sink) mirrors it to MLflow.

Used in-process by the tests and as a script, to run many jobs at once::

    python jobsim.py FOLDER URI EXPERIMENT_ID --epochs 20 --steps 4 [--sleep 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

TASK = "xpm_train.learn.learn"
JOBSIM = Path(__file__).resolve()


def make_job(workspace: Path, job_hash: str, *, epochs: int = 3, tags: dict | None = None,
             experiment: str = "sim", tracking: dict | None = None) -> Path:
    """A job folder with a ``params.json`` in experimaestro's format; its tags
    are recorded in ``experiments/<experiment>/current/jobs.jsonl``."""
    folder = workspace / "jobs" / TASK / job_hash
    folder.mkdir(parents=True, exist_ok=True)
    fields = {"model": {"type": "python", "value": 1}, "epochs": epochs, "seed": 0,
              "device": "cpu", "schedule": None,
              "metrics_path": {"type": "path", "value": "metrics.jsonl", "base": "job"},
              "tracking": {"type": "python", "value": 3} if tracking else None}
    objects = [
        {"id": 1, "module": "xpm_train.models", "type": "MLP", "typename": "xpm_train.models.MLP",
         "identifier": "m" * 64, "fields": {"hidden_dims": [8], "dropout": 0.0}},
        {"id": 2, "module": "xpm_train.learn", "type": "Learn", "typename": "xpm_train.learn.Learn",
         "identifier": job_hash, "task": 2, "fields": fields},
    ]
    if tracking:
        objects.append({"id": 3, "module": "xpm_train.tracking.mlflow_sink", "type": "MLflowTracking",
                        "typename": "xpm_train.tracking.mlflow_sink.MLflowTracking",
                        "identifier": "t" * 64, "fields": tracking})
    (folder / "params.json").write_text(json.dumps({"workspace": str(workspace), "version": 3,
                                                    "objects": objects}))
    run = workspace / "experiments" / experiment / "run1"
    run.mkdir(parents=True, exist_ok=True)
    current = run.parent / "current"
    if not current.exists():
        current.symlink_to("run1")
    with open(run / "jobs.jsonl", "a") as fp:
        fp.write(json.dumps({"job_id": job_hash, "task_id": TASK, "tags": tags or {}}) + "\n")
    return folder


def settings(uri: str, experiment_id: str, **extra):
    from xpm_train.tracking import MLflowTracking

    return MLflowTracking.C(tracking_uri=uri, experiment_id=experiment_id, experiment_name="sim",
                            git_commit="abc123", git_dirty=True, **extra).instance()


def train(folder: Path, uri: str, experiment_id: str, *, epochs: int = 3, steps: int = 4,
          sleep: float = 0.0, plots: bool = False, mark_done: bool = True, wait: bool = True,
          hold: Path | None = None) -> dict:
    """Log like Learn: per epoch ``steps`` train_step points, then train and
    val points and a sync (after half the epochs, waits for the file ``hold``
    when given); then (``wait``) wait for the forwarder to be done
    with the job. Returns the training's seconds, the MLflow warning (None:
    none) and the run's ID."""
    from xpm_train.metrics import MetricsLogger
    from xpm_train.tracking import MLflowSink

    sink = MLflowSink(settings(uri, experiment_id, plots=plots), folder, folder / "events.jsonl")
    step, started, since = 0, time.monotonic(), time.time()
    with MetricsLogger(folder / "metrics.jsonl", folder / "events.jsonl", [sink]) as log:
        log.event("start")
        for epoch in range(epochs):
            for _ in range(steps):
                step += 1
                log.log(epoch=epoch, step=step, split="train_step", loss=1.0 / step, lr=0.1)
            log.log(epoch=epoch, step=step, split="train", loss=1.0 / (epoch + 1), accuracy=epoch / epochs)
            log.log(epoch=epoch, step=step, split="val", loss=1.2 / (epoch + 1), accuracy=epoch / epochs)
            log.sync()
            time.sleep(sleep)
            while hold is not None and epoch + 1 == epochs // 2 and not hold.exists():
                time.sleep(0.05)
        (folder / "final.json").write_text(json.dumps({"epochs": epochs}))
        log.event("end")
    seconds = time.monotonic() - started
    if mark_done:
        (folder / "learn.done").write_text("")
    if not wait:
        return {"seconds": seconds}
    return {**forwarded(folder, uri, experiment_id, since), "seconds": seconds}


def forwarded(folder: Path, uri: str, experiment_id: str, since: float = 0.0,
              timeout: float = 240) -> dict:
    """Wait for the forwarder to finish ``folder``; its warning and run ID."""
    from xpm_train.metrics import read_jsonl
    from xpm_train.tracking import forwarder

    job_id = f"{folder.parent.name}/{folder.name}"
    assert forwarder.wait_forwarded(folder.parent.parent.parent, [job_id], timeout), "never forwarded"
    warnings = [e["message"] for e in read_jsonl(folder / "events.jsonl")
                if e["event"] == "warning" and e.get("source") == "mlflow" and e["time"] >= since]
    if warnings:
        return {"failed": warnings[-1], "run_id": None}
    run = runs_by_job(mlflow_client(uri), [experiment_id]).get(job_id)
    return {"failed": None, "run_id": run.info.run_id if run else None}


def expected_points(epochs: int, steps: int) -> int:
    """(key, step) pairs written by :func:`train`: 2 per step point, 4 per epoch."""
    return epochs * (steps * 2 + 4)


def mlflow_client(uri: str):
    os.environ["MLFLOW_TRACKING_URI"] = uri
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def count_points(client, run_id: str) -> int:
    """Distinct (key, step) pairs of a run."""
    run = client.get_run(run_id)
    return sum(len({m.step for m in client.get_metric_history(run_id, key)}) for key in run.data.metrics)


def runs_by_job(client, experiment_ids: list[str]) -> dict[str, object]:
    runs = client.search_runs(experiment_ids, max_results=1000)
    return {r.data.tags["xpm.job_id"]: r for r in runs if "xpm.job_id" in r.data.tags}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("uri")
    parser.add_argument("experiment_id")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--start-at", type=float, default=0.0, help="time.time() to start at")
    parser.add_argument("--hold", type=Path, help="after half the epochs, wait for this file")
    args = parser.parse_args()
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # the sink must set it itself
    while time.time() < args.start_at:
        time.sleep(0.01)
    result = train(args.folder, args.uri, args.experiment_id, epochs=args.epochs,
                   steps=args.steps, sleep=args.sleep, wait=False, hold=args.hold)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
