"""The MLflow UI server's start-up: progress while it starts, and its job
runner off (a real server is started by test_server.py and test_tracking_plan.py)."""

from __future__ import annotations

import pytest

from xpm_train.tracking.service import HOST, free_port, server_env, wait_ready


def test_waiting_for_the_server_reports_progress():
    waited = []
    with pytest.raises(TimeoutError):
        wait_ready(f"http://{HOST}:{free_port()}", timeout=2.0, progress=waited.append, every=0.5)
    assert len(waited) >= 2 and waited == sorted(waited) and waited[0] >= 0.5


def test_mlflow_job_execution_is_off_unless_the_user_set_it(monkeypatch):
    monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", raising=False)
    assert server_env("sqlite:///x.db")["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "true")
    assert server_env("sqlite:///x.db")["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"
