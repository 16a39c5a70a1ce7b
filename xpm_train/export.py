"""Export a trained model out of the workspace: weights, config, metrics, README.

``xpm-train export JOB --to DIR`` (or :func:`export`) writes::

    DIR/model.pt        the best weights (a plain ``state_dict``)
    DIR/params.json     the job's full experimaestro config
    DIR/final.json      its final and best metrics
    DIR/metrics.jsonl   its learning curves
    DIR/README.md       what the model is and how to load it

``DIR`` is written as a whole or not at all (built in a temporary folder
beside it, then renamed), and an existing ``DIR`` is never overwritten.

:class:`ExportBest` is an experimaestro Action (alpha feature of
experimaestro 2.7) that a plan registers with ``helper.xp.add_action(...)``:
run after the experiment, it exports the best of its trainings by a metric.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from experimaestro import Config, Meta, Param, field
from experimaestro.actions import Action

from .errors import UserError


class ExportError(UserError):
    """A job that cannot be exported (not finished, no weights, target exists)."""


def export(job: str | Path, to: Path | str, workspace: Path | str = "workspace") -> Path:
    """Export the trained model of ``job`` (ID, hash prefix or folder) into ``to``."""
    from . import checkpoint
    from .analysis import flatten, resolve

    info = resolve(job, workspace)
    best = info.path / "checkpoints" / "best.pt"
    if info.state != "done":
        raise ExportError(f"{info.id} is {info.state}, not done: only finished trainings are exported")
    if not best.exists():
        raise ExportError(
            f"{info.id} has no trained weights (checkpoints/best.pt): export a training job "
            "(Learn, a training function), not an evaluation"
        )
    target = Path(to)
    if target.exists():
        raise ExportError(f"{target} already exists: choose a new folder (nothing is overwritten)")
    target.parent.mkdir(parents=True, exist_ok=True)
    metrics = info.metrics()
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        import torch

        torch.save(checkpoint.load_weights(best), staging / "model.pt")
        for name in ("params.json", "final.json", "metrics.jsonl"):
            if (info.path / name).exists():
                shutil.copyfile(info.path / name, staging / name)
        (staging / "README.md").write_text(model_readme(info, flatten(metrics)))
        for path in staging.iterdir():
            with open(path, "rb") as fp:
                os.fsync(fp.fileno())
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def model_readme(info, metrics: dict[str, Any]) -> str:
    """The README of an exported model."""
    params = json.loads((info.path / "params.json").read_text())
    tags = ", ".join(f"{k}={v}" for k, v in info.tags.items()) or "none"
    lines = [
        f"# {info.name} {info.hash[:12]}",
        "",
        f"- job: `{info.id}`",
        f"- task: `{params.get('objects', [{}])[-1].get('typename', info.task)}`",
        f"- tags: {tags}",
        "",
        "## Metrics",
        "",
        *[f"- {key}: {value:.4f}" if isinstance(value, float) else f"- {key}: {value}"
          for key, value in metrics.items()],
        "",
        "## Load",
        "",
        "```python",
        "import torch, xpm_train",
        f"job = xpm_train.load({str(info.path)!r})  # the typed config, weights loaded",
        "# or, without the workspace: rebuild the model from params.json and",
        "state = torch.load('model.pt')",
        "```",
        "",
        "`params.json` is the full experimaestro config (model, data, optimizer, seed...).",
    ]
    return "\n".join(lines) + "\n"


class ExportBest(Action):
    """Export the best of some trainings by a metric of their ``final.json``."""

    trainings: Param[list[Config]]
    """The training configs (e.g. the Learn tasks of a grid) to choose from"""

    metric: Param[str] = field(default="best.val_accuracy", ignore_default=True)
    """Flattened key of ``final.json`` to maximise (e.g. ``best.val_accuracy``)"""

    workspace: Meta[str] = field(default="workspace", ignore_default=True)
    """The workspace holding the jobs"""

    def describe(self) -> str:
        return f"Export the best of {len(self.trainings)} trainings by {self.metric}"

    def execute(self, interaction) -> None:
        best = best_job(self.trainings, self.metric, Path(self.workspace))
        default = str(Path(self.workspace) / "exports" / best.name[:12])
        to = interaction.text("to", f"Export {best.parent.name}/{best.name[:12]} to folder:", default=default)
        export(best, to, self.workspace)


def best_job(trainings: list, metric: str, workspace: Path) -> Path:
    """The job folder of the finished training with the highest ``metric``."""
    from .analysis import flatten

    scored = []
    for config in trainings:
        folder = workspace / "jobs" / str(config.__xpmtype__.identifier) / config.__xpm__.identifier.all.hex()
        final = folder / "final.json"
        if final.exists():
            value = flatten(json.loads(final.read_text())).get(metric)
            if isinstance(value, (int, float)):
                scored.append((value, folder))
    if not scored:
        raise ExportError(f"none of the {len(trainings)} trainings has finished with a '{metric}' metric")
    return max(scored, key=lambda item: item[0])[1]
