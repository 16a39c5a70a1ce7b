"""The MLflow store: which URI, created once, opened safely.

- :func:`resolve_uri`: the URI given, else ``MLFLOW_TRACKING_URI``, else the
  workspace store ``sqlite:///<workspace>/mlflow/mlflow.db`` (never MLflow's
  own default, ``<cwd>/mlflow.db``).
- :func:`ensure_experiment`: creates the store (SQLite schema migrations take
  seconds) and the experiment once, under a file lock, in the plan process.
  Eight processes migrating one new SQLite file at once break it for good, and
  concurrent ``set_experiment`` calls file runs under ``Default``: tasks only
  receive the experiment ID and never create anything.
- :func:`client`: an ``MlflowClient`` for an explicit URI; for SQLite it waits
  while another process holds the creation lock.

``mlflow`` is imported inside the functions only.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ..errors import InvalidArgument

if TYPE_CHECKING:
    from mlflow import MlflowClient

HTTP_DEFAULTS = {
    # MLflow's defaults retry for minutes (7 retries, 120 s timeout); callers
    # retry themselves (the sink), or fail fast and say so (plan, sync)
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
STORE_FOLDER = "mlflow"
DATABASE = "mlflow.db"


def workspace_uri(workspace: Path | str) -> str:
    """The embedded store of a workspace."""
    return f"sqlite:///{(Path(workspace).resolve() / STORE_FOLDER / DATABASE)}"


def resolve_uri(workspace: Path | str, uri: str | None = None) -> str:
    """``uri`` when given, else ``MLFLOW_TRACKING_URI``, else the workspace store."""
    if uri:
        return uri
    return os.environ.get("MLFLOW_TRACKING_URI") or workspace_uri(workspace)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):])


def artifact_root(uri: str) -> str | None:
    """Where runs of a SQLite store keep their artifacts (beside the database;
    MLflow's default is ``./mlruns`` in whatever folder the process runs in).
    None for a server, which decides itself."""
    path = sqlite_path(uri)
    return str(path.parent / "artifacts") if path is not None else None


@contextmanager
def store_lock(uri: str, exclusive: bool = True) -> Iterator[None]:
    """An advisory lock beside a SQLite database (no-op for other stores)."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as fp:
        fcntl.flock(fp.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fp.fileno(), fcntl.LOCK_UN)


def is_initialised(path: Path) -> bool:
    """True when the SQLite file holds a migrated MLflow schema."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
            return db.execute("SELECT version_num FROM alembic_version").fetchone() is not None
    except sqlite3.Error:
        return False


def _open(uri: str) -> "MlflowClient":
    os.environ["MLFLOW_TRACKING_URI"] = uri
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    client.search_experiments(max_results=1)  # opens (and for SQLite migrates) the store now
    return client


def client(uri: str) -> "MlflowClient":
    """An ``MlflowClient`` on ``uri``. A SQLite store is created under the
    exclusive lock when missing, and opened under the shared lock otherwise
    (so never while another process is creating it)."""
    path = sqlite_path(uri)
    if path is None:
        return _open(uri)
    with store_lock(uri, exclusive=False):
        if is_initialised(path):
            return _open(uri)
    with store_lock(uri, exclusive=True):
        return _open(uri)


def ensure_experiment(uri: str, name: str) -> str:
    """The ID of MLflow experiment ``name`` on ``uri``, creating the store and
    the experiment when missing. Creation happens under the exclusive lock
    (for SQLite) and is checked again there, so racing plans create each
    once; a concurrent creation on a server is resolved by reading it back."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(uri)
    found = existing_experiment(mlflow_client, name, uri)
    if found is not None:
        return found
    with store_lock(uri, exclusive=True):
        found = existing_experiment(mlflow_client, name, uri)
        if found is not None:
            return found
        root = artifact_root(uri)
        location = f"{root}/{safe_name(name)}" if root else None
        try:
            return mlflow_client.create_experiment(name, artifact_location=location)
        except MlflowException:
            found = existing_experiment(mlflow_client, name, uri)
            if found is None:
                raise
            return found


def existing_experiment(mlflow_client: "MlflowClient", name: str, uri: str) -> str | None:
    """The ID of active experiment ``name``; an error when it is deleted."""
    found = mlflow_client.get_experiment_by_name(name)
    if found is None:
        return None
    if found.lifecycle_stage == "deleted":
        raise InvalidArgument(
            f"MLflow experiment '{name}' is deleted in {uri}: restore it "
            f"(`mlflow experiments restore --experiment-id {found.experiment_id}`) "
            "or use another experiment name"
        )
    return found.experiment_id


def safe_name(name: str) -> str:
    """A folder name for an experiment name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "experiment"
