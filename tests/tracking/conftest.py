"""Fixtures of the tracking tests: a fresh workspace store, fake jobs, a
loopback MLflow server."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))



@pytest.fixture(autouse=True)
def no_ambient_uri(monkeypatch):
    """Tests give every URI explicitly (an ambient MLFLOW_TRACKING_URI would hide bugs).
    Set-then-delete makes monkeypatch restore the variable after the test even
    when the test itself wrote it (``jobsim.mlflow_client`` does): no leak into
    later tests."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")


@pytest.fixture
def workspace(tmp_path) -> Path:
    ws = tmp_path / "ws"
    (ws / "jobs").mkdir(parents=True)
    return ws


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """The database of a workspace store created once, as a plan creates it,
    before any experiment: MLflow's schema migrations (seconds) run once."""
    from xpm_train.tracking import store as store_module

    workspace = tmp_path_factory.mktemp("empty-store")
    store_module.client(store_module.workspace_uri(workspace))
    return Path(store_module.sqlite_path(store_module.workspace_uri(workspace)))


@pytest.fixture
def store(workspace, empty_store):
    """``(uri, experiment_id)`` of a fresh workspace store (a copy of
    ``empty_store``) whose experiment is created as a plan does."""
    import shutil

    from xpm_train.tracking import store as store_module

    uri = store_module.workspace_uri(workspace)
    database = store_module.sqlite_path(uri)
    database.parent.mkdir(parents=True)
    shutil.copyfile(empty_store, database)
    return uri, store_module.ensure_experiment(uri, "sim")
