"""Export a trained model out of the workspace: self-contained, usable anywhere.

``xpm-train export JOB --to DIR`` (or :func:`export`) writes::

    DIR/model.pt        the best weights (a plain ``state_dict``)
    DIR/model.json      the model's config alone (loading it imports the model's code, not the dataset's)
    DIR/network.pt      instead, a training function's ``nn.Module`` saved whole (its class must be importable)
    DIR/params.json     the job's full experimaestro config (model, data, objective, seed...)
    DIR/data.json       what the network takes and gives: input shape, dtype,
                        normalisation mean/std, outputs, classes (xpm_train.trained)
    DIR/final.json      its final and best metrics
    DIR/metrics.jsonl   its learning curves
    DIR/README.md       what the model is and a snippet that runs it

:func:`load_export` rebuilds the network from ``DIR`` alone (no workspace,
no dataset, not even its code): ``load_export(DIR).predict(inputs)``
normalises raw inputs as the training did and runs the network.

``DIR`` is written as a whole or not at all (built in a temporary folder
beside it, then renamed), and an existing ``DIR`` is never overwritten; it
and its files get the umask's usual permissions (0755/0644 under umask 022),
so that colleagues can read a shared export.

:class:`ExportBest` is an experimaestro Action (alpha feature of
experimaestro 2.7) that a plan registers with ``helper.xp.add_action(...)``:
run after the experiment, it exports the best of its trainings by a metric.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from experimaestro import Config, Meta, Param, field
from experimaestro.actions import Action

from .errors import UserError
from .jobfolder import DATA, FINAL, METRICS, PARAMS
from .summary import CLASSIFICATION_METRIC

if TYPE_CHECKING:
    import torch

    from .data.base import DataInfo

COPIED = (PARAMS, FINAL, METRICS, DATA)
"""The files of the job folder an export keeps"""
WEIGHTS = "model.pt"
"""An export's trained weights (a plain ``state_dict``)"""
NETWORK = "network.pt"
"""An export's network saved whole (a training function's module, pickled)"""
MODEL = "model.json"
"""The model's config alone (an experimaestro definition), rebuilt by :func:`load_export`"""


class ExportError(UserError):
    """A job that cannot be exported (not finished, no weights, target exists)."""


def export(job: str | Path, to: Path | str, workspace: Path | str = "workspace") -> Path:
    """Export the trained model of ``job`` (ID, hash prefix or folder) into ``to``.
    Only the model's code is imported (not the dataset's)."""
    from .analysis import resolve
    from .trained import BEST, NoTrainedModel, definition, model_field, network, read_params

    info = resolve(job, workspace)
    if info.state != "done":
        raise ExportError(f"{info.id} is {info.state}, not done: only finished trainings are exported")
    target = Path(to)
    if target.exists():
        raise ExportError(f"{target} already exists: choose a new folder (nothing is overwritten)")
    try:
        net = network(info.path)  # checks that it loads here
    except NoTrainedModel as error:
        raise ExportError(str(error)) from None
    import torch

    from . import checkpoint
    from .atomic import atomic_folder

    params = read_params(info.path)
    field = model_field(params, checkpoint.load_latest(info.path / BEST))
    with atomic_folder(target) as staging:
        torch.save(net.state_dict(), staging / WEIGHTS)
        if field is None:  # a training function's module, pickled
            torch.save(net, staging / NETWORK)
        else:  # the model's config alone: loading it needs the model's code, not the dataset's
            (staging / MODEL).write_text(json.dumps(definition(params, field)))
        for name in COPIED:
            if (info.path / name).exists():
                shutil.copyfile(info.path / name, staging / name)
        (staging / "README.md").write_text(model_readme(info, target.resolve()))
    return target


@dataclass
class Exported:
    """A model read back from an export folder (:func:`load_export`)."""

    network: "torch.nn.Module"
    """The trained network, in eval mode"""

    folder: Path
    """The export folder"""

    info: Optional["DataInfo"]
    """What the network takes and gives (None: the export has no data.json)"""

    dtype: Optional[str]
    """dtype of the inputs as the dataset gives them (``uint8`` for images)"""

    mean: tuple[float, ...] = ()
    """Normalisation mean per entry of dimension 1 ([0, 1] units for uint8)"""

    std: tuple[float, ...] = ()
    """Normalisation standard deviation, same units"""

    @property
    def config(self) -> Any:
        """The training's typed config (from params.json; loading it needs
        the code of every config in it, the dataset's included)."""
        cached = self.__dict__.get("_config")
        if cached is None:
            from .errors import code_not_found
            from .jobfolder import load_config

            try:
                cached = self.__dict__["_config"] = load_config(self.folder)
            except ModuleNotFoundError as error:
                raise code_not_found(error, f"cannot load the config of the export {self.folder}") from None
        return cached

    def prepare(self, inputs: "torch.Tensor") -> "torch.Tensor":
        """Raw inputs (as the dataset gives them: uint8 images, float features) normalised as in training."""
        from .trained import normalise

        return normalise(inputs, self.mean, self.std)

    def predict(self, inputs: "torch.Tensor") -> "torch.Tensor":
        """The network's outputs for raw ``inputs`` (no gradient)."""
        import torch

        with torch.no_grad():
            return self.network(self.prepare(inputs))


def load_export(folder: Path | str) -> Exported:
    """Rebuild the exported network from ``folder`` alone (no workspace, no
    dataset: only the model's code is imported). A one-line
    :class:`~xpm_train.errors.CodeNotFound` names a model module that is not importable."""
    import torch

    from .trained import load_definition, read_data, read_params, rebuild, unpickle

    folder = Path(folder)
    if not (folder / WEIGHTS).exists():
        raise ExportError(f"{folder} is not an xpm-train export (no {WEIGHTS}): export a job with xpm-train export")
    description = read_data(folder)
    info = description["info"] if description is not None else None
    weights = torch.load(folder / WEIGHTS)
    if (folder / MODEL).exists():
        what = f"cannot load the export {folder}"
        network = rebuild(load_definition(json.loads((folder / MODEL).read_text()), what), info, weights, what)
    elif (folder / NETWORK).exists():
        network = unpickle(lambda: torch.load(folder / NETWORK, weights_only=False), read_params(folder),
                           f"cannot load the export {folder}")
    else:  # exported before model.json: rebuilt from the whole config
        if description is None:
            raise ExportError(f"{folder} has no {DATA} (exported before it existed): export the job again")
        exported = Exported(network=None, folder=folder, info=info, dtype=None)
        network = rebuild(exported.config.model, info, weights, f"cannot load the export {folder}")
    network.eval()
    if description is None:
        return Exported(network=network, folder=folder, info=None, dtype=None)
    return Exported(network=network, folder=folder, info=info, dtype=description["dtype"],
                    mean=tuple(description["mean"]), std=tuple(description["std"]))


def model_readme(info, target: Path) -> str:
    """The README of an exported model."""
    from .summary import flatten
    from .trained import read_data

    params = json.loads((info.path / PARAMS).read_text())
    metrics = flatten(info.metrics())
    description = read_data(info.path)
    tags = ", ".join(f"{k}={v}" for k, v in info.tags.items()) or "none"
    lines = [
        f"# {info.name} {info.hash[:12]}",
        "",
        f"- job: `{info.id}`",
        f"- task: `{params.get('objects', [{}])[-1].get('typename', info.task)}`",
        f"- tags: {tags}",
    ]
    if description is not None:
        data = description["info"]
        lines += [
            f"- input: one sample of shape {list(data.shape)}, {description['dtype']} "
            f"(normalised: mean {description['mean']}, std {description['std']})",
            f"- output: {data.outputs} values per sample"
            + (f", classes {list(data.classes) if data.classes else data.num_classes}" if data.num_classes else ""),
        ]
    if description is None:  # the input's shape is not recorded: show the network
        use = [f"print(exported.network)  # no {DATA}: give it inputs shaped as in your training"]
    else:
        example = ("torch.zeros(1, *exported.info.shape, dtype=torch.uint8)" if description["dtype"] == "uint8"
                   else "torch.zeros(1, *exported.info.shape)")
        use = [f"inputs = {example}  # raw inputs, as the dataset gives them",
               "print(exported.predict(inputs))  # normalised as in training, then the network"]
    lines += [
        "",
        "## Metrics",
        "",
        *[f"- {key}: {value:.4f}" if isinstance(value, float) else f"- {key}: {value}"
          for key, value in metrics.items()],
        "",
        "## Use",
        "",
        "In any process, without the workspace (xpm-train installed; a model class of your own must be",
        "importable; the dataset's code is not needed):",
        "",
        "```python",
        "import torch",
        "from xpm_train import load_export",
        "",
        f"exported = load_export({str(target)!r})  # this folder: give its new path if you move it",
        *use,
        "```",
        "",
        f"`{PARAMS}` is the full experimaestro config (model, data, objective, optimizer, seed...);",
        f"`{DATA}` what the network takes and gives; `{WEIGHTS}` a plain `state_dict`; `{MODEL}`",
        f"the model's config alone (or `{NETWORK}`, the network saved whole).",
    ]
    return "\n".join(lines) + "\n"


class ExportBest(Action):
    """Export the best of some trainings by a metric of their ``final.json``."""

    trainings: Param[list[Config]]
    """The training configs (e.g. the Learn tasks of a grid) to choose from"""

    metric: Param[str] = field(default=CLASSIFICATION_METRIC, ignore_default=True)
    """Flattened key of ``final.json`` (e.g. ``best.val_accuracy``, ``score``):
    the best is the highest, or the lowest for metrics better low (mse, loss)"""

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
    """The job folder of the finished training with the best ``metric`` (the
    highest, or the lowest for a metric that is better low, e.g. ``score`` of
    a regression)."""
    from .jobfolder import job_id, job_path
    from .summary import ranked, read

    folders = [job_path(workspace, job_id(config)) for config in trainings]
    best = ranked([(folder, read(folder)) for folder in folders], metric, lambda entry: entry[1])
    if not best:
        raise ExportError(f"none of the {len(trainings)} trainings has finished with a '{metric}' metric")
    return best[0][0]
