"""Tune: the record of a finished study, as a task of the graph.

Its ID covers the study name, ``n_trials`` and the best trial's trained
model; it depends on the best Learn job, and its output is that model's
weights, so evaluating the best model is an edge ``Tune -> Evaluate``::

    result = optimize(study, n_trials=20, n_parallel=2, launcher=launcher)
    best = result.task().submit(launcher=launcher)
    Evaluate.C(model=result.best_learn.model, data=test).submit(init_tasks=[best])

Job folder::

    results.json                  best trial, value, params, job; trial counts
    trials.json, trials.csv       every trial: number, state, value, params,
                                  epochs reported, Learn job ID
    optimization_history.png      Optuna's matplotlib plots
    param_importances.png
"""

from __future__ import annotations

import csv
import io
import logging
import warnings
from pathlib import Path
from typing import Any, Optional

from experimaestro import Meta, Param, PathGenerator, Task, field

from .. import jobfolder
from ..atomic import atomic_write, atomic_write_json, atomic_write_text
from ..models import LoadWeights
from ..summary import CLASSIFICATION_METRIC
from ..tracking.mlflow_sink import MLflowTracking

logger = logging.getLogger("xpm_train.tune")


class Tune(Task):
    """Record study ``study`` after ``n_trials`` trials; outputs the best model."""

    study: Param[str]
    """Name of the study (derived from its content)"""

    n_trials: Param[int]
    """Number of trials the study was run to when its best trial was first
    recorded (a study extended without a better trial keeps its Tune job:
    its record then shows the study as it was at that point)"""

    best: Param[LoadWeights]
    """The best trial's trained model (the output of its Learn)"""

    metric: Param[str] = field(default=CLASSIFICATION_METRIC, ignore_default=True)
    """The objective (a key of the Learn's final.json)"""

    journal: Meta[str] = field(default="", ignore_default=True)
    """Journal file of the study"""

    best_job: Meta[str] = field(default="", ignore_default=True)
    """``<task>/<hash>`` of the best Learn job (implied by ``best``)"""

    best_trial: Meta[int] = field(default=-1, ignore_default=True)
    """Number of the best trial (implied by ``best``)"""

    tracking: Meta[Optional[MLflowTracking]] = field(default=None, ignore_default=True)
    """MLflow: the study becomes a parent run, each trial's Learn run its child"""

    results_path: Meta[Path] = field(default_factory=PathGenerator(jobfolder.RESULTS))
    """Summary of the study"""

    trials_path: Meta[Path] = field(default_factory=PathGenerator(jobfolder.TRIALS))
    """Every trial"""

    def task_outputs(self, dep):
        """The best model's weights: an init task for Evaluate."""
        return dep(LoadWeights.C(model=self.best.model, path=self.best.path))

    def execute(self):
        import optuna

        from .storage import open_storage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        study = optuna.load_study(study_name=self.study, storage=open_storage(self.journal))
        rows = trial_rows(study)
        best = next(r for r in rows if r["number"] == self.best_trial)
        counts = {state: sum(r["state"] == state for r in rows) for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
        summary = {
            "study": self.study,
            "best_trial": self.best_trial,
            "best_value": best["value"],
            "best_params": best["params"],
            "best_job": self.best_job,
            "metric": self.metric,
            "direction": study.direction.name.lower(),
            "trials": len(rows),
            **{state.lower(): n for state, n in counts.items()},
        }
        atomic_write_json(self.trials_path, rows)
        atomic_write_text(self.trials_path.with_suffix(".csv"), trials_csv(rows))
        write_plots(study, self.trials_path.parent)
        if self.tracking is not None:
            summary["mlflow"] = mlflow_runs(self.tracking, self.results_path.parent, summary, rows)
        atomic_write_json(self.results_path, summary)
        logger.info("study %s: best trial %d, %s = %s", self.study, self.best_trial, self.metric, best["value"])


def mlflow_runs(tracking, folder: Path, summary: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The study's MLflow run and its children, or the reason it could not be made
    (MLflow down: the study is still recorded; ``xpm-train mlflow sync`` later)."""
    import time

    from ..jobfolder import id_of, workspace_of
    from ..tracking.forwarder import wait_forwarded
    from .tracking import record_study_runs

    # the trials' runs are written by the workspace's MLflow forwarder: let it finish them
    wait_forwarded(workspace_of(folder), [row["job"] for row in rows if row.get("job")])
    for attempt in range(1, MLFLOW_ATTEMPTS + 1):
        try:
            return record_study_runs(tracking, id_of(folder), summary, rows)
        except Exception as error:  # noqa: BLE001 - tracking never fails the task
            logger.warning("MLflow: could not record study %s, attempt %d/%d (%s: %s)", summary["study"],
                           attempt, MLFLOW_ATTEMPTS, type(error).__name__, error)
            if attempt == MLFLOW_ATTEMPTS:
                return {"error": f"{type(error).__name__}: {error}"}
            time.sleep(2.0 * attempt)  # e.g. a SQLite store locked by other jobs' writers


MLFLOW_ATTEMPTS = 3
"""Tries to record a study in MLflow before giving up (with a warning)"""


def trial_rows(study) -> list[dict[str, Any]]:
    """One dict per trial: number, state, value, params, epochs, job, evaluation (its Evaluate job)."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        steps = sorted(trial.intermediate_values)
        value = trial.value
        if value is None and steps:  # a pruned trial's last reported value
            value = trial.intermediate_values[steps[-1]]
        rows.append({
            "number": trial.number,
            "state": trial.state.name,
            "value": value,
            "epochs": steps[-1] if steps else None,
            "params": dict(trial.params),
            "job": trial.user_attrs.get("job"),
            "evaluation": trial.user_attrs.get("evaluation"),
            "duration_s": trial.duration.total_seconds() if trial.duration else None,
        })
    return rows


def trials_csv(rows: list[dict[str, Any]]) -> str:
    params = sorted({k for r in rows for k in r["params"]})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["number", "state", "value", "epochs", *params, "job"])
    for r in rows:
        writer.writerow([r["number"], r["state"], r["value"], r["epochs"],
                         *[r["params"].get(p, "") for p in params], r["job"]])
    return out.getvalue()


def write_plots(study, folder: Path) -> None:
    """Optimization history and parameter importances (PNG, matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as oplt

    plots = {"optimization_history.png": oplt.plot_optimization_history,
             "param_importances.png": oplt.plot_param_importances}
    for name, plot in plots.items():
        try:
            axes = plot(study)
        except (ValueError, RuntimeError) as error:  # e.g. importances need 2+ complete trials
            logger.warning("no %s: %s", name, error)
            continue
        figure = axes.figure if hasattr(axes, "figure") else plt.gcf()
        figure.tight_layout()
        with atomic_write(folder / name) as out:
            figure.savefig(out, format="png", dpi=100)
        plt.close(figure)
