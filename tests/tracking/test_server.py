"""Against a real ``mlflow server`` on loopback: many jobs at once lose
nothing; the server killed mid-run costs one warning, and sync completes
MLflow once it is back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from jobsim import JOBSIM, count_points, expected_points, forwarded, make_job, mlflow_client, runs_by_job

from xpm_train.metrics import read_jsonl
from xpm_train.tracking import store
from xpm_train.tracking.service import free_port, start_server
from xpm_train.tracking.sync import sync_workspace

pytestmark = pytest.mark.integration


@pytest.fixture
def server(tmp_path):
    """A loopback MLflow server on its own SQLite store; yields a controller."""

    class Server:
        def __init__(self):
            self.uri = f"sqlite:///{tmp_path / 'server' / 'mlflow.db'}"
            self.port = free_port()
            self.process = None

        def start(self):
            self.process, self.url = start_server(self.uri, self.port, log=tmp_path / "server.log")
            return self.url

        def kill(self):
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    controller = Server()
    controller.start()
    yield controller
    if controller.process.poll() is None:
        controller.kill()


def spawn(workspace, url, experiment_id, name, epochs, steps, sleep=0.0, start_at=0.0, hold=None):
    folder = make_job(workspace, name * 64, tags={"job": name})
    return folder, subprocess.Popen(
        [sys.executable, str(JOBSIM), str(folder), url, experiment_id, "--epochs", str(epochs),
         "--steps", str(steps), "--sleep", str(sleep), "--start-at", str(start_at),
         *(["--hold", str(hold)] if hold else [])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(job, url, experiment_id) -> dict:
    """The job process ends on its own; then what the forwarder made of it."""
    folder, process = job
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return {**json.loads(out.strip().splitlines()[-1]), **forwarded(folder, url, experiment_id)}


def test_eight_jobs_at_once_against_a_server(server, workspace):
    experiment_id = store.ensure_experiment(server.url, "sim")
    start_at = time.time() + 8
    jobs = [spawn(workspace, server.url, experiment_id, str(i), 8, 5, start_at=start_at)
            for i in range(8)]
    results = [finish(job, server.url, experiment_id) for job in jobs]
    assert [r["failed"] for r in results] == [None] * 8, results
    client = mlflow_client(server.url)
    runs = runs_by_job(client, [experiment_id])
    assert len(runs) == 8
    assert [count_points(client, r.info.run_id) for r in runs.values()] == [expected_points(8, 5)] * 8
    assert client.search_runs(["0"]) == []


def test_server_killed_mid_run_then_sync(server, workspace):
    experiment_id = store.ensure_experiment(server.url, "sim")
    epochs, steps = 20, 3
    release = workspace / "release"  # the jobs wait for it half way: they log on after the kill
    jobs = [spawn(workspace, server.url, experiment_id, name, epochs, steps, sleep=0.2, hold=release)
            for name in "ab"]
    client = mlflow_client(server.url)
    deadline = time.time() + 120
    while time.time() < deadline:  # both runs are receiving points
        runs = runs_by_job(client, [experiment_id])
        if len(runs) == 2 and all(count_points(client, r.info.run_id) > 0 for r in runs.values()):
            break
        time.sleep(0.5)
    else:
        pytest.fail("the jobs never reached MLflow")
    server.kill()
    release.write_text("")

    for folder, process in jobs:
        result = finish((folder, process), server.url, experiment_id)  # the job ends normally
        assert result["failed"], "MLflow died mid-run: the forwarder should have given up"
        events = read_jsonl(folder / "events.jsonl")
        assert len([e for e in events if e["event"] == "warning"]) == 1
        assert [e["event"] for e in events if e["event"] in ("start", "end")] == ["start", "end"]
        assert len(read_jsonl(folder / "metrics.jsonl")) == epochs * (steps + 2)

    server.start()
    client = mlflow_client(server.url)
    runs = runs_by_job(client, [experiment_id])
    # killed mid-run: MLflow lacks the points of the second half
    assert all(count_points(client, r.info.run_id) < expected_points(epochs, steps) for r in runs.values())

    report = sync_workspace(workspace, uri=server.url)
    assert report.runs_created == 0 and report.points_added > 0
    runs = runs_by_job(client, [experiment_id])
    assert [count_points(client, r.info.run_id) for r in runs.values()] == [expected_points(epochs, steps)] * 2
    assert {r.info.status for r in runs.values()} == {"FINISHED"}
    assert {a.path for a in client.list_artifacts(next(iter(runs.values())).info.run_id)} >= {"final.json"}
    again = sync_workspace(workspace, uri=server.url)
    assert again.changes == 0, again.summary()


def test_ui_as_an_experimaestro_service(tmp_path):
    """The service a plan registers with ``setup(..., service=True)`` starts
    the UI on loopback and stops it (and its workers) with the experiment."""
    from xpm_train.tracking.service import MLflowService

    uri = store.workspace_uri(tmp_path)
    service = MLflowService(uri, log_directory=tmp_path / "service")
    url = service.get_url()
    try:
        assert url.startswith("http://127.0.0.1:")
        import urllib.request

        with urllib.request.urlopen(f"{url}/health", timeout=30) as answer:
            assert answer.status == 200
        assert service.state_dict()["uri"] == uri
    finally:
        service.stop(timeout=20)
    assert service.process.poll() is not None
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/health", timeout=5)
