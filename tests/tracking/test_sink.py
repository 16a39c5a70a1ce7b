"""The MLflow sink: one run per job with its identity; MLflow down costs
nothing but one warning; many jobs at once lose nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from jobsim import (JOBSIM, count_points, expected_points, forwarded, make_job, mlflow_client,
                    runs_by_job, train)

from xpm_train.metrics import read_jsonl
from xpm_train.tracking.service import free_port


def test_run_carries_identity_params_metrics_and_artifacts(workspace, store):
    uri, experiment_id = store
    folder = make_job(workspace, "a" * 64, tags={"hidden_dim": 32, "lr": 0.001})
    result = train(folder, uri, experiment_id, epochs=3, steps=4, plots=True)
    assert result["failed"] is None

    client = mlflow_client(uri)
    run = client.get_run(result["run_id"])
    assert run.info.experiment_id == experiment_id and run.info.status == "FINISHED"
    assert run.info.run_name == "learn-aaaaaaaa"
    tags = run.data.tags
    assert tags["xpm.job_id"] == f"xpm_train.learn.learn/{'a' * 64}"
    assert tags["xpm.job_folder"] == str(folder)
    assert (tags["hidden_dim"], tags["lr"]) == ("32", "0.001")
    assert tags["mlflow.source.git.commit"] == "abc123" and tags["xpm.git_dirty"] == "true"
    assert tags["xpm.experiment"] == "sim" and tags["xpm.launcher"] == "local" and tags["xpm.host"]
    assert run.data.params["model"] == "MLP" and run.data.params["model.hidden_dims"] == "[8]"
    assert "tracking" not in run.data.params and "metrics_path" not in run.data.params
    assert count_points(client, run.info.run_id) == expected_points(3, 4)
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.value for m in history] == [1.2 / (epoch + 1) for epoch in range(3)]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"final.json", "curves.png"}
    assert (folder / "curves.png").stat().st_size > 1000


def test_resumed_job_continues_its_run(workspace, store):
    uri, experiment_id = store
    folder = make_job(workspace, "b" * 64)
    first = train(folder, uri, experiment_id, epochs=2, steps=1, mark_done=False)
    second = train(folder, uri, experiment_id, epochs=2, steps=1)
    assert first["run_id"] == second["run_id"]
    client = mlflow_client(uri)
    assert len(client.search_runs([experiment_id])) == 1


def test_mlflow_down_one_warning_jsonl_complete_sync_fills(workspace, store):
    """Nothing listens on the URI: the job ends normally, with one warning."""
    from xpm_train.tracking.sync import sync_workspace

    uri, experiment_id = store
    dead = f"http://127.0.0.1:{free_port()}"
    folder = make_job(workspace, "c" * 64, tracking={"tracking_uri": dead, "experiment_id": "1"})
    result = train(folder, dead, "1", epochs=4, steps=3)

    assert result["failed"] and "could not connect" in result["failed"]
    assert result["seconds"] < 30  # the training did not wait for MLflow
    points = read_jsonl(folder / "metrics.jsonl")
    assert len(points) == 4 * (3 + 2)
    events = read_jsonl(folder / "events.jsonl")
    warnings = [e for e in events if e["event"] == "warning"]
    assert len(warnings) == 1 and "xpm-train mlflow sync" in warnings[0]["message"]
    assert [e["event"] for e in events if e["event"] in ("start", "end")] == ["start", "end"]

    # MLflow back (here: the workspace store): sync pushes everything, once
    report = sync_workspace(workspace, uri=uri)
    assert report.runs_created == 1 and report.points_added == expected_points(4, 3)
    client = mlflow_client(uri)
    run = runs_by_job(client, [experiment_id])[f"xpm_train.learn.learn/{'c' * 64}"]
    assert count_points(client, run.info.run_id) == expected_points(4, 3)
    assert run.info.status == "FINISHED"
    assert sync_workspace(workspace, uri=uri).changes == 0


def test_eight_jobs_at_once_lose_nothing(workspace, store):
    """8 processes log to the workspace store at the same time (SQLite locks):
    every run, every point, all in the plan's experiment, none in Default."""
    uri, experiment_id = store
    epochs, steps = 10, 5
    start_at = time.time() + 8  # all processes past their imports, then go together
    processes = []
    for i in range(8):
        folder = make_job(workspace, f"{i}" * 64, tags={"i": i})
        processes.append(subprocess.Popen(
            [sys.executable, str(JOBSIM), str(folder), uri, experiment_id, "--epochs", str(epochs),
             "--steps", str(steps), "--start-at", str(start_at)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for process in processes:
        out, err = process.communicate(timeout=240)
        assert process.returncode == 0, err[-2000:]
    results = [forwarded(workspace / "jobs" / "xpm_train.learn.learn" / (f"{i}" * 64), uri, experiment_id)
               for i in range(8)]
    assert [r["failed"] for r in results] == [None] * 8, results

    client = mlflow_client(uri)
    runs = runs_by_job(client, [experiment_id])
    assert len(runs) == 8
    assert all(count_points(client, r.info.run_id) == expected_points(epochs, steps) for r in runs.values())
    assert client.search_runs(["0"]) == []  # nothing filed under Default
    for folder in (workspace / "jobs" / "xpm_train.learn.learn").iterdir():
        assert not [e for e in read_jsonl(folder / "events.jsonl") if e["event"] == "warning"]


def start_job(folder, uri, experiment_id, epochs, steps, sleep=0.5):
    return subprocess.Popen([sys.executable, str(JOBSIM), str(folder), uri, experiment_id, "--epochs",
                             str(epochs), "--steps", str(steps), "--sleep", str(sleep)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_forwarder_once_forwarding(workspace, client, experiment_id, job_id):
    """SIGKILL the workspace's forwarder once the run of ``job_id`` has points."""
    import os
    import signal

    from xpm_train.tracking import forwarder

    deadline = time.time() + 180
    while time.time() < deadline:
        run = runs_by_job(client, [experiment_id]).get(job_id)
        if run is not None and count_points(client, run.info.run_id) > 0:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the job never reached MLflow")
    os.kill(int((forwarder.spool(workspace) / "forwarder.pid").read_text()), signal.SIGKILL)
    return run


def distinct_and_total(client, run_id):
    run = client.get_run(run_id)
    total = sum(len(client.get_metric_history(run_id, key)) for key in run.data.metrics)
    return count_points(client, run_id), total


def test_forwarder_killed_mid_job_the_next_one_completes_the_run(workspace, store):
    """The forwarder dies while a job trains: the job does not notice, and its
    end starts a forwarder that forwards the rest (every point once). When the
    job dies too, its points wait in its folder: the next tracked job of the
    workspace starts a forwarder that forwards them."""
    import os
    import signal

    from xpm_train.tracking import forwarder

    uri, experiment_id = store
    client = mlflow_client(uri)
    epochs, steps = 12, 3
    folder = make_job(workspace, "d" * 64)
    job = start_job(folder, uri, experiment_id, epochs, steps)
    run = kill_forwarder_once_forwarding(workspace, client, experiment_id, f"xpm_train.learn.learn/{'d' * 64}")
    out, err = job.communicate(timeout=240)
    assert job.returncode == 0, err[-2000:]
    assert forwarded(folder, uri, experiment_id)["failed"] is None
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert distinct_and_total(client, run.info.run_id) == (expected_points(epochs, steps),) * 2
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"final.json"}
    assert not [e for e in read_jsonl(folder / "events.jsonl") if e["event"] == "warning"]

    # the job and the forwarder both die: nothing forwards until the next tracked job
    folder = make_job(workspace, "f" * 64)
    job = start_job(folder, uri, experiment_id, 40, steps)
    run = kill_forwarder_once_forwarding(workspace, client, experiment_id, f"xpm_train.learn.learn/{'f' * 64}")
    time.sleep(3)  # the job logs on, nobody forwards
    job.kill()
    job.wait()
    time.sleep(1)
    assert forwarder.pending(workspace) and not forwarder.running(workspace)
    logged = len({(p["split"], p["step"]) for p in read_jsonl(folder / "metrics.jsonl")})
    assert count_points(client, run.info.run_id) < logged * 2

    train(make_job(workspace, "e" * 64), uri, experiment_id, epochs=1, steps=1)  # starts a forwarder
    assert forwarded(folder, uri, experiment_id)["failed"] is None
    assert not forwarder.pending(workspace)
    assert distinct_and_total(client, run.info.run_id) == (logged * 2,) * 2  # 2 values per point


def test_sync_logs_the_points_of_a_resumed_job_once(workspace, store):
    """Points redone after a kill are pushed once, with the resumed run's values
    (xpm_train.metrics.read_metrics), not the killed run's."""
    from helpers import log_redone_run
    from xpm_train.tracking.sync import sync_workspace

    uri, experiment_id = store
    folder = make_job(workspace, "7" * 64)
    log_redone_run(folder)
    (folder / "final.json").write_text(json.dumps({"epochs": 3}))
    (folder / "learn.done").write_text("")
    report = sync_workspace(workspace, uri=uri)
    client = mlflow_client(uri)
    run = runs_by_job(client, [experiment_id])[f"xpm_train.learn.learn/{'7' * 64}"]
    history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val_accuracy"))
    assert history == [(4, 0.5), (8, 0.9), (12, 0.95)]
    assert report.points_added == 6 + 4 * 3  # train_step loss at 6 steps; 4 values at 3 epoch ends


def test_runs_carry_the_jobs_provenance_as_tags(workspace, store):
    """``provenance.json`` (xpm_train.provenance) reaches MLflow as ``xpm.env.*`` tags."""
    from helpers import log_redone_run
    from xpm_train import provenance
    from xpm_train.tracking.sync import sync_workspace

    uri, experiment_id = store
    folder = make_job(workspace, "8" * 64)
    log_redone_run(folder)
    provenance.write(folder, provenance.Provenance(python="3.11.7", torch="2.5.1", gpu="", git_commit="c0ffee",
                                                   code={"usermodel": "ab" * 32}, packages=["torch==2.5.1"]))
    (folder / "learn.done").write_text("")
    sync_workspace(workspace, uri=uri)
    run = runs_by_job(mlflow_client(uri), [experiment_id])[f"xpm_train.learn.learn/{'8' * 64}"]
    tags = {k: v for k, v in run.data.tags.items() if k.startswith("xpm.env.")}
    assert tags == {"xpm.env.python": "3.11.7", "xpm.env.torch": "2.5.1", "xpm.env.git_commit": "c0ffee",
                    "xpm.env.code_sha256": provenance.sha256_text('{"usermodel": "' + "ab" * 32 + '"}')}
