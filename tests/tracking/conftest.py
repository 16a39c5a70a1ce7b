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


@pytest.fixture
def store(workspace):
    """``(uri, experiment_id)`` of a workspace store created as a plan does."""
    from xpm_train.tracking import store as store_module

    uri = store_module.workspace_uri(workspace)
    return uri, store_module.ensure_experiment(uri, "sim")
