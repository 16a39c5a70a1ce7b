"""Learning curves drawn from ``metrics.jsonl`` (matplotlib, Agg backend).

- :func:`job_curves`: one figure per job (one panel per metric, one line per
  split), saved as ``curves.png`` in the job folder and uploaded to MLflow.
- :func:`compare_curves`: one metric of several jobs, one line per job
  (``xpm-train plot``), the legend below the axes (labels wrapped).

Epoch-level splits (``train``, ``val``) are drawn against the epoch, the
per-step training loss (``train_step``) against the epoch fraction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InvalidArgument
from ..jobfolder import METRICS
from ..metrics import POINT_FIELDS, read_metrics
from .runs import metric_key

STEP_SPLIT = "train_step"


LABEL_WIDTH = 60
"""Characters per line of a legend label (longer labels, e.g. many tags, are wrapped)"""


def _figure(panels: int, legend_lines: int = 0):
    """A figure of ``panels`` panels side by side, taller by the lines of a
    legend drawn below them."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5 * panels, 3.6 + 0.19 * legend_lines), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, out: Path) -> Path:
    """Atomic write of a PNG."""
    from ..atomic import atomic_write

    with atomic_write(out) as fp:
        figure.savefig(fp, format="png", dpi=100)
    return out


def series(points: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """``(x, y)`` of metric ``key`` (``val_accuracy``...): x is the epoch
    (1-based, end of epoch) or, for per-step points, a fraction of epochs."""
    xs, ys = [], []
    steps_per_epoch = _steps_per_epoch(points)
    for point in points:
        for name, value in point.items():
            if name in POINT_FIELDS or metric_key(point.get("split", ""), name) != key:
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if point.get("split") == STEP_SPLIT and steps_per_epoch:
                xs.append(point["step"] / steps_per_epoch)
            else:
                xs.append(point.get("epoch", 0) + 1)
            ys.append(float(value))
    return xs, ys


def _steps_per_epoch(points: list[dict[str, Any]]) -> float | None:
    """Training steps per epoch, from the end-of-epoch points."""
    ends = [p for p in points if p.get("split") == "train"]
    if not ends:
        return None
    last = ends[-1]
    return last["step"] / (last["epoch"] + 1) if last["step"] else None


def metric_names(points: list[dict[str, Any]]) -> dict[str, list[str]]:
    """``{name: [keys]}``: e.g. ``{"loss": ["train_loss", "val_loss"]}``."""
    names: dict[str, list[str]] = {}
    for point in points:
        for name, value in point.items():
            if name in POINT_FIELDS or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            key = metric_key(point.get("split", ""), name)
            if key not in names.setdefault(name, []):
                names[name].append(key)
    return names


def job_curves(folder: Path, out: Path | None = None) -> Path | None:
    """Draw a job's curves to ``out`` (default ``<folder>/curves.png``); None
    when the job logged fewer than two points of every metric."""
    points = read_metrics(folder / METRICS)
    panels = {name: keys for name, keys in metric_names(points).items()
              if any(len(series(points, key)[0]) > 1 for key in keys)}
    if not panels:
        return None
    figure = _figure(len(panels))
    for index, (name, keys) in enumerate(sorted(panels.items())):
        axis = figure.add_subplot(1, len(panels), index + 1)
        for key in keys:
            xs, ys = series(points, key)
            axis.plot(xs, ys, label=key, alpha=0.5 if key.startswith(STEP_SPLIT) else 1.0)
        axis.set_xlabel("epoch")
        axis.set_title(name)
        axis.legend(fontsize="small")
        axis.grid(alpha=0.3)
    figure.suptitle(f"{folder.parent.name.rsplit('.', 1)[-1]} {folder.name[:12]}", fontsize="medium")
    return _save(figure, out or folder / "curves.png")


def compare_curves(jobs: list[tuple[str, Path]], key: str, out: Path) -> Path:
    """Metric ``key`` of several jobs (``(label, folder)``), one line per job.

    Raises ValueError when no job logged that metric, naming the metrics
    they have."""
    import textwrap

    labels = [textwrap.fill(label, LABEL_WIDTH, break_on_hyphens=False) for label, _ in jobs]
    figure = _figure(1, legend_lines=sum(label.count("\n") + 1 for label in labels))
    axis = figure.add_subplot(1, 1, 1)
    drawn, available = 0, set()
    for label, (_, folder) in zip(labels, jobs):
        points = read_metrics(folder / METRICS)
        available.update(k for keys in metric_names(points).values() for k in keys)
        xs, ys = series(points, key)
        if xs:
            axis.plot(xs, ys, marker="o" if len(xs) < 30 else None, label=label)
            drawn += 1
    if not drawn:
        raise InvalidArgument(
            f"no job logged metric '{key}'; available: {', '.join(sorted(available)) or 'none'}"
        )
    axis.set_xlabel("epoch")
    axis.set_ylabel(key)
    axis.grid(alpha=0.3)
    # below the axes, in the figure (constrained layout makes room): one line
    # per job, labels wrapped, so that many long tags never run off the figure
    figure.legend(*axis.get_legend_handles_labels(), loc="outside lower center", fontsize="small")
    return _save(figure, out)
