"""MLflow tracking: every task one MLflow run, the job folder the source of truth.

In a plan::

    from xpm_train.tracking import setup

    tracking = setup(helper, cfg.tracking_uri)   # store + experiment, once
    Learn.C(..., tracking=tracking)

``setup`` picks the URI (the one given, else ``MLFLOW_TRACKING_URI``, else
the workspace store ``<workspace>/mlflow/mlflow.db``), creates the store and
the MLflow experiment once under a lock, and returns the :class:`MLflowTracking`
hook (``Meta``: task IDs do not change). Importing this package does not
import mlflow.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .mlflow_sink import MLflowTracking

logger = logging.getLogger("xpm_train.tracking")

OFF = ("off", "none", "false")
"""``tracking_uri`` values that turn tracking off"""

_EXPORTS = {
    "MLflowTracking": "xpm_train.tracking.mlflow_sink",
    "MLflowSink": "xpm_train.tracking.mlflow_sink",
    "MLflowService": "xpm_train.tracking.service",
    "sync_workspace": "xpm_train.tracking.sync",
    "job_curves": "xpm_train.tracking.plots",
    "compare_curves": "xpm_train.tracking.plots",
}


def setup(helper, uri: str | None = None, *, experiment: str | None = None,
          service: bool = False, source: Path | None = None) -> "MLflowTracking | None":
    """The tracking hook for the tasks of this plan (None when ``uri`` is
    ``off``).

    :param helper: the plan's ``ExperimentHelper``
    :param uri: MLflow URI; empty: ``MLFLOW_TRACKING_URI``, else the workspace store
    :param experiment: MLflow experiment name (default: the experimaestro experiment)
    :param service: also register an MLflow UI as an experimaestro service
        (shown by experimaestro's monitors, stopped with them)
    :param source: a folder of the git checkout to record (default: the current folder)
    """
    from . import store
    from .identity import git_state
    from .mlflow_sink import MLflowTracking

    if uri and uri.strip().lower() in OFF:
        return None
    xp = helper.xp
    workspace = Path(xp.workspace.path)
    resolved = store.resolve_uri(workspace, uri)
    os.environ["MLFLOW_TRACKING_URI"] = resolved
    name = experiment or xp.name
    try:
        experiment_id = store.ensure_experiment(resolved, name)
    except ValueError:
        raise
    except Exception as error:  # noqa: BLE001  (MLflow down: the jobs still run)
        logger.warning(
            "MLflow is unreachable at %s (%s: %s). The jobs run anyway and keep their metrics "
            "in their folders; push them later with `xpm-train mlflow sync --workdir %s`.",
            resolved, type(error).__name__, str(error).splitlines()[0][:200] if str(error) else "",
            workspace)
        experiment_id = ""
    wait_at_exit(workspace)
    commit, dirty = git_state(source or Path.cwd())
    if service:
        from .service import MLflowService

        xp.add_service(MLflowService(uri=resolved))
    return MLflowTracking.C(tracking_uri=resolved, experiment_id=experiment_id,
                            experiment_name=xp.name, mlflow_experiment=name,
                            git_commit=commit, git_dirty=dirty)


PLAN_WAIT_S = 120.0
"""At its end, a plan waits at most this long for the forwarder to finish its
workspace's jobs (MLflow complete when ``run-experiment`` returns)"""
_waiting: set[Path] = set()


def wait_at_exit(workspace: Path) -> None:
    """When this plan's process exits, wait for the MLflow forwarder (jobs never
    wait for it; their plan does, once, at its end)."""
    import atexit

    from . import forwarder

    if workspace in _waiting:
        return
    _waiting.add(workspace)

    def wait():
        if forwarder.pending(workspace) and not forwarder.wait_forwarded(workspace, timeout=PLAN_WAIT_S):
            logger.warning("MLflow forwarding of %s still runs in the background (%s)", workspace,
                           forwarder.spool(workspace) / "forwarder.log")

    atexit.register(wait)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'xpm_train.tracking' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = sorted([*_EXPORTS, "setup"])
