"""The store and the experiment are created once, by the plan, under a lock;
the URI is always explicit; importing xpm-train does not import mlflow."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

from jobsim import mlflow_client

from xpm_train.tracking import store

RACER = """
import json, sys, time
from types import SimpleNamespace
from pathlib import Path
workspace, start_at = Path(sys.argv[1]), float(sys.argv[2])
from xpm_train.tracking import setup
helper = SimpleNamespace(xp=SimpleNamespace(workspace=SimpleNamespace(path=workspace), name="race"))
while time.time() < start_at:
    time.sleep(0.01)
tracking = setup(helper)
print(json.dumps({"uri": tracking.tracking_uri, "experiment_id": tracking.experiment_id}))
"""


def test_uri_given_then_environment_then_workspace(tmp_path, monkeypatch):
    assert store.resolve_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert store.resolve_uri(tmp_path) == "http://127.0.0.1:5999"
    assert store.resolve_uri(tmp_path, "http://server:5000") == "http://server:5000"


def test_eight_plans_racing_on_a_new_store_create_it_once(tmp_path):
    """Eight processes create the same new SQLite store and experiment at once
    (without the lock this breaks the store for good): all get the same
    experiment, and the store is migrated and usable."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    start_at = time.time() + 6
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(workspace), str(start_at)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(8)]
    answers = []
    for racer in racers:
        out, err = racer.communicate(timeout=240)
        assert racer.returncode == 0, err[-3000:]
        answers.append(json.loads(out.strip().splitlines()[-1]))
    assert len({a["experiment_id"] for a in answers}) == 1
    uri = answers[0]["uri"]
    assert uri == store.workspace_uri(workspace)

    database = workspace / "mlflow" / "mlflow.db"
    with sqlite3.connect(database) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert db.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1
    assert not any(t.startswith("_alembic_tmp") for t in tables)
    client = mlflow_client(uri)
    experiments = [e for e in client.search_experiments() if e.name == "race"]
    assert len(experiments) == 1
    assert experiments[0].artifact_location == str(workspace.resolve() / "mlflow" / "artifacts" / "race")
    run = client.create_run(experiments[0].experiment_id)
    client.log_metric(run.info.run_id, "x", 1.0)


def test_tasks_open_an_existing_store_without_creating_anything(tmp_path):
    uri = store.workspace_uri(tmp_path)
    experiment_id = store.ensure_experiment(uri, "once")
    assert store.ensure_experiment(uri, "once") == experiment_id
    assert store.is_initialised(store.sqlite_path(uri))
    client = store.client(uri)
    assert [e.name for e in client.search_experiments()].count("once") == 1


def test_importing_xpm_train_does_not_import_mlflow():
    code = ("import sys, xpm_train, xpm_train.tracking, xpm_train.tracking.mlflow_sink, "
            "xpm_train.tracking.sync, xpm_train.tracking.plots, xpm_train.tracking.service, "
            "xpm_train.learn, xpm_train.evaluate, xpm_train.cli; xpm_train.MLflowTracking; "
            "print(sorted(m for m in ('mlflow', 'matplotlib') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
