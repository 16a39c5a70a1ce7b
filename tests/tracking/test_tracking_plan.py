"""The quickstart plan with MLflow, run for real: every Learn and Evaluate is
a run of the workspace store; with MLflow unreachable the jobs still end
DONE, and ``xpm-train mlflow sync`` fills MLflow later; ``xpm-train plot``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import REPO, run_experiment, xpm_train
from jobsim import count_points, mlflow_client, runs_by_job

from xpm_train.metrics import read_jsonl
from xpm_train.tracking import store
from xpm_train.tracking.service import free_port

pytestmark = pytest.mark.integration
PARAMS = REPO / "experiments" / "quickstart" / "params.yaml"
TINY = ("epochs=2", "hidden_dim=[16]", "lr=[0.001,0.003]")


def distinct_points(folder) -> int:
    keys = set()
    for point in read_jsonl(folder / "metrics.jsonl"):
        for name, value in point.items():
            if name not in ("epoch", "step", "split", "elapsed") and isinstance(value, (int, float)):
                keys.add((f"{point['split']}_{name}", point["step"]))
    return len(keys)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tracked") / "ws"
    result = run_experiment(PARAMS, workdir, *TINY, env={"MLFLOW_TRACKING_URI": ""})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir


def test_every_job_is_a_complete_run_of_the_workspace_store(tracked):
    uri = store.workspace_uri(tracked)
    client = mlflow_client(uri)
    experiment = client.get_experiment_by_name("quickstart")
    runs = runs_by_job(client, [experiment.experiment_id])
    folders = sorted((tracked / "jobs").glob("*/*"))
    assert sorted(runs) == [f"{f.parent.name}/{f.name}" for f in folders] and len(folders) == 4
    for folder in folders:
        run = runs[f"{folder.parent.name}/{folder.name}"]
        assert run.info.status == "FINISHED"
        assert run.data.tags["xpm.job_folder"] == str(folder)
        assert {run.data.tags["hidden_dim"], run.data.tags["lr"]} <= {"16", "0.001", "0.003"}
        assert count_points(client, run.info.run_id) == distinct_points(folder)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        if folder.parent.name.endswith("learn"):
            assert artifacts == {"final.json", "curves.png"}
            assert run.data.params["optimizer.lr"] in ("0.001", "0.003")
        else:
            results = json.loads((folder / "results.json").read_text())
            assert artifacts == {"results.json"}
            assert run.data.metrics["eval_accuracy"] == pytest.approx(results["accuracy"])
    assert client.search_runs(["0"]) == []


def test_sync_of_a_complete_workspace_adds_nothing(tracked):
    result = xpm_train("mlflow", "sync", "--workdir", str(tracked))
    assert result.returncode == 0, result.stderr
    assert "4 job(s) synced (0 run(s) created, 0 metric point(s) and 0 artifact(s) added, 0 run(s) updated)" \
        in result.stdout


def test_plot_compares_jobs_by_their_tags(tracked, tmp_path):
    learns = [p.name[:10] for p in (tracked / "jobs" / "xpm_train.learn.learn").iterdir()]
    out = tmp_path / "val.png"
    result = xpm_train("plot", *learns, "--workdir", str(tracked), "--metric", "val_accuracy",
                       "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"
    wrong = xpm_train("plot", *learns, "--workdir", str(tracked), "--metric", "val_acc")
    assert wrong.returncode == 1 and "val_accuracy" in wrong.stderr and "Traceback" not in wrong.stderr


def test_mlflow_unreachable_jobs_done_then_sync_fills(tmp_path):
    workdir = tmp_path / "ws"
    dead = f"http://127.0.0.1:{free_port()}"
    result = run_experiment(PARAMS, workdir, *TINY[:2], "lr=[0.001]", f"tracking_uri={dead}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "MLflow is unreachable" in result.stderr
    folders = sorted((workdir / "jobs").glob("*/*"))
    assert len(folders) == 2
    for folder in folders:
        assert list(folder.glob("*.done"))
        events = read_jsonl(folder / "events.jsonl")
        assert len([e for e in events if e["event"] == "warning"]) == 1
        assert [e["event"] for e in events if e["event"] in ("start", "end")] == ["start", "end"]

    target = store.workspace_uri(tmp_path / "later")
    first = xpm_train("mlflow", "sync", "--workdir", str(workdir), "--uri", target)
    assert first.returncode == 0, first.stderr
    assert "2 run(s) created" in first.stdout
    client = mlflow_client(target)
    runs = runs_by_job(client, [client.get_experiment_by_name("quickstart").experiment_id])
    assert all(count_points(client, runs[f"{f.parent.name}/{f.name}"].info.run_id) == distinct_points(f)
               for f in folders)
    second = xpm_train("mlflow", "sync", "--workdir", str(workdir), "--uri", target)
    assert "0 run(s) created, 0 metric point(s) and 0 artifact(s) added, 0 run(s) updated" in second.stdout


def test_mlflow_ui_serves_the_workspace_store(tracked):
    process = subprocess.Popen([sys.executable, "-m", "xpm_train.cli", "mlflow", "ui", "--workdir",
                                str(tracked)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.poll() else url
        import urllib.request

        with urllib.request.urlopen(f"{url}/api/2.0/mlflow/experiments/get-by-name"
                                    "?experiment_name=quickstart", timeout=30) as answer:
            assert json.loads(answer.read())["experiment"]["name"] == "quickstart"
    finally:
        import os
        import signal

        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
