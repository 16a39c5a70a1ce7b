"""An MLflow UI/server on loopback: for ``xpm-train mlflow ui`` and as an
experimaestro service (shown by experimaestro's monitors, stopped with them).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

from experimaestro.scheduler.services import ProcessWebService

from . import store

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port nobody listens on now (on loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def server_command(uri: str, port: int, workers: int = 1) -> list[str]:
    """``mlflow server`` on ``uri`` (a SQLite store keeps its artifacts beside it)."""
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
               "--host", HOST, "--port", str(port), "--workers", str(workers)]
    root = store.artifact_root(uri)
    if root:
        command += ["--artifacts-destination", root]
    return command


def server_env(uri: str) -> dict[str, str]:
    """The server's environment. MLflow's job execution (GenAI evaluation jobs:
    a job runner and five huey consumers started with the server) is off
    unless set: nothing of xpm-train uses it, and its processes compete with
    the server for the CPU while it starts."""
    return {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ, "MLFLOW_TRACKING_URI": uri}


def wait_ready(url: str, process: subprocess.Popen | None = None, timeout: float = 120.0,
               progress: Callable[[float], None] | None = None, every: float = 5.0) -> None:
    """Wait until ``url/health`` answers; raise when the process died or time ran out.
    ``progress(seconds waited)`` is called every ``every`` seconds meanwhile."""
    start = time.monotonic()
    deadline = start + timeout
    told = 0
    while time.monotonic() < deadline:
        waited = time.monotonic() - start
        if progress is not None and waited >= (told + 1) * every:
            told = int(waited // every)
            progress(waited)
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with code {process.returncode} before answering")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"mlflow server did not answer on {url} within {timeout:g} s")


def start_server(uri: str, port: int | None = None, log: Path | None = None,
                 progress: Callable[[float], None] | None = None) -> tuple[subprocess.Popen, str]:
    """Start ``mlflow server`` on ``uri``; returns the process and its URL once it answers
    (``progress``: see :func:`wait_ready`). A SQLite store is created first (under the lock) when missing."""
    if store.sqlite_path(uri) is not None:
        store.client(uri)
    port = port or free_port()
    output = open(log, "ab") if log else subprocess.DEVNULL
    process = subprocess.Popen(server_command(uri, port), env=server_env(uri), stdout=output,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://{HOST}:{port}"
    try:
        wait_ready(url, process, progress=progress)
    except BaseException:
        stop_server(process)
        raise
    return process, url


def stop_server(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop a server started by :func:`start_server` and its workers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)
    except ProcessLookupError:
        pass


class MLflowService(ProcessWebService):
    """The MLflow UI on a store, as an experimaestro service."""

    id = "mlflow"

    def __init__(self, uri: str, log_directory: Path | None = None):
        super().__init__(log_directory=log_directory)
        self.uri = uri
        self.port = free_port()

    def state_dict(self) -> dict:
        return {"uri": self.uri, "log_directory": self.log_directory}

    def description(self) -> str:
        return f"MLflow UI ({self.uri})"

    def _build_command(self) -> list[str]:
        # a wrapper, so that stopping the service also stops mlflow's workers
        return [sys.executable, "-m", "xpm_train.tracking.service", self.uri, str(self.port)]

    def _wait_for_ready(self) -> str:
        # ready once the wrapper printed its URL: by then it answers SIGTERM by
        # stopping the server (the URL alone may answer a little earlier)
        url = f"http://{HOST}:{self.port}"
        wait_ready(url, self.process)
        deadline = time.monotonic() + 60
        while url not in _read(self.stdout) and time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow service exited with code {self.process.returncode}")
            time.sleep(0.1)
        return url


def _read(path: Path | None) -> str:
    try:
        return path.read_text() if path else ""
    except OSError:
        return ""


def main() -> None:
    """``python -m xpm_train.tracking.service URI PORT``: serve until SIGTERM,
    then stop the server and its workers."""
    uri, port = sys.argv[1], int(sys.argv[2])
    # before the server starts: a SIGTERM that comes while it starts up
    # (the URL may answer before start_server returns) must still stop it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    process, url = start_server(uri, port)
    print(url, flush=True)
    try:
        process.wait()
    finally:
        stop_server(process)


if __name__ == "__main__":
    main()
