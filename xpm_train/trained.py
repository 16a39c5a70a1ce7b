"""What a training leaves for the tasks and tools after it (one owner).

A training job (Learn, or a training function that called
``ctx.save_model``) leaves in its folder::

    checkpoints/best.pt   {"model": state_dict, "epoch": ...}; a training
                          function's also holds "built" (the name of its
                          Model parameter that builds the network) or else
                          "network" (the nn.Module itself, pickled)
    data.json             what the network was built for: the DataInfo
                          (input shape, outputs, classes...) and the input
                          normalisation (dtype, mean, std; null and [] when
                          only a DataInfo was given)

:func:`network` rebuilds the trained network from a job folder for
``xpm_train.load``, ``xpm-train export`` and Evaluate, as Learn builds it:
the model config (read alone from ``params.json``: :func:`definition`) and
the weights; the dataset's code is not needed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from .errors import UserError, config_name
from .jobfolder import BEST as BEST_WEIGHTS, CHECKPOINTS, DATA, PARAMS

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .data.base import Arrays, DataInfo

BEST = Path(CHECKPOINTS) / BEST_WEIGHTS
"""Where a training job's best weights are, in its folder"""
PAIRS = (("model", "data"), ("module", "datamodule"))
"""The parameters of the tasks that rebuild their network from a config:
(that config, their data) for Learn (and Evaluate), for LightningFit"""


class NoTrainedModel(UserError, LookupError):
    """A job that left no trained network (an evaluation, a function that saved none)."""


def data_description(info: "DataInfo", arrays: Optional["Arrays"]) -> dict[str, Any]:
    """The content of ``data.json`` (``arrays`` None: no normalisation known)."""
    if arrays is None:
        return {"info": dataclasses.asdict(info), "dtype": None, "mean": [], "std": []}
    return {"info": dataclasses.asdict(info), "dtype": str(arrays.inputs.dtype).removeprefix("torch."),
            "mean": list(arrays.mean), "std": list(arrays.std)}


def write_data(folder: Path, info: "DataInfo", arrays: Optional["Arrays"]) -> None:
    """Write ``data.json`` into the job folder (atomically)."""
    from .atomic import atomic_write_json

    atomic_write_json(Path(folder) / DATA, data_description(info, arrays))


def read_data(folder: Path) -> Optional[dict[str, Any]]:
    """``data.json`` of ``folder`` with ``info`` as a DataInfo (None: not written)."""
    from .data.base import DataInfo

    path = Path(folder) / DATA
    if not path.exists():
        return None
    description = json.loads(path.read_text())
    fields = description["info"]
    tuples = {k: tuple(v) for k, v in fields.items() if isinstance(v, list)}
    description["info"] = DataInfo(**{**fields, **tuples})
    return description


def normalise(inputs: "torch.Tensor", mean, std) -> "torch.Tensor":
    """Raw inputs (as the dataset gives them: uint8 images, float features)
    normalised as the training did (``data.json``'s ``mean`` and ``std`` per
    entry of dimension 1; uint8 to [0, 1] first)."""
    import torch

    x = inputs.float() / 255 if inputs.dtype == torch.uint8 else inputs.float()
    if mean:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        x = (x - torch.tensor(mean, dtype=x.dtype, device=x.device).view(shape)) / \
            torch.tensor(std, dtype=x.dtype, device=x.device).view(shape)
    return x


def read_params(folder: Path) -> dict[str, Any]:
    """The job's ``params.json`` as JSON (no class is imported)."""
    return json.loads((Path(folder) / PARAMS).read_text())


def model_field(params: dict[str, Any], state: dict[str, Any]) -> Optional[str]:
    """The parameter of the job's task holding the config its network is rebuilt
    from: ``model`` (Learn), ``module`` (LightningFit), the one a training
    function's ``ctx.save_model`` named; None: the network was saved pickled."""
    if "built" in state:
        return state["built"]
    fields = params["objects"][-1]["fields"]
    if "network" in state:
        return None
    return next((name for name, companion in PAIRS if name in fields and companion in fields), None)


def definition(params: dict[str, Any], name: str) -> dict[str, Any]:
    """The experimaestro definition (``{"objects", "data"}``, as
    ``experimaestro.core.serialization.state_dict`` writes it) of the config in
    the task's parameter ``name``: only the objects it refers to, so that
    loading it imports the model's modules and not the dataset's."""
    objects = {entry["id"]: entry for entry in params["objects"]}
    root = params["objects"][-1]["fields"][name]
    wanted: set = set()

    def visit(value):
        if isinstance(value, dict):
            if value.get("type") == "python" and value.get("value") in objects:
                if value["value"] not in wanted:
                    wanted.add(value["value"])
                    visit(objects[value["value"]]["fields"])
            else:
                for item in value.values():
                    visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    visit(root)
    return {"objects": [entry for entry in params["objects"] if entry["id"] in wanted], "data": root}


def unpickle(load, params: dict[str, Any], what: str):
    """``load()`` (a ``torch.load`` of a network saved whole); a class of a
    top-level module that is not on the path is imported from the file that
    ``params.json`` records for it (as experimaestro loads the job's configs),
    else a one-line :class:`~xpm_train.errors.CodeNotFound`."""
    import importlib.util
    import sys

    from .errors import code_not_found

    tried = set()
    while True:
        try:
            return load()
        except ModuleNotFoundError as error:
            files = {entry["module"]: entry["file"] for entry in params.get("objects", []) if entry.get("file")}
            path = files.get(error.name)
            if error.name in tried or path is None or not Path(path).exists():
                raise code_not_found(error, what) from None
            tried.add(error.name)
            spec = importlib.util.spec_from_file_location(error.name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[error.name] = module
            spec.loader.exec_module(module)


def load_definition(definition: dict[str, Any], what: str) -> Any:
    """The config of a :func:`definition`, as an instance; a one-line
    :class:`~xpm_train.errors.CodeNotFound` when its module is not importable."""
    from experimaestro.core.serialization import from_state_dict

    from .errors import code_not_found

    try:
        return from_state_dict(definition, as_instance=True)
    except ModuleNotFoundError as error:
        raise code_not_found(error, what) from None


def rebuild(model: Any, info: Optional["DataInfo"], weights: dict[str, Any], what: str) -> "nn.Module":
    """The network of a model config with ``weights``, as the config builds
    it (its ``build(info)``): a :class:`~xpm_train.models.Model` for ``info``
    (as Learn builds it), a LightningFit's ModuleConfig its LightningModule.
    A module that ``module()`` imports and Python cannot find is a one-line
    error starting with ``what``."""
    from .errors import code_not_found

    try:
        net = model.build(info)
    except ModuleNotFoundError as error:
        raise code_not_found(error, what) from None
    net.load_state_dict(weights)
    return net


def save_network(folder: Path, net: "nn.Module", info: Optional["DataInfo"] = None,
                 arrays: Optional["Arrays"] = None, *, built: Optional[str] = None) -> None:
    """Leave ``net`` as the trained network of the job whose folder is
    ``folder`` (call it again to replace it): ``checkpoints/best.pt`` holds its
    weights and, with ``built`` (the name of the task's model parameter it is
    rebuilt from), nothing else, else the module itself (pickled: its classes
    at the top level of a module); ``info`` (what it was built for, with the
    normalisation of ``arrays`` when given) is written as ``data.json``."""
    from . import checkpoint

    state = {"model": net.state_dict(), **({"built": built} if built is not None else {"network": net})}
    checkpoint.save(Path(folder) / BEST, state, keep_previous=False)
    if info is not None:
        write_data(folder, info, arrays)


def no_trained_network(folder: Path, name: str) -> str:
    """The message for a job of xpm-train's tasks without ``checkpoints/best.pt``."""
    return (f"{name} job {folder.name[:12]} has no trained network ({BEST}): load or export "
            "a training job (Learn, a training function that calls ctx.save_model)")


def no_network(folder: Path, config: Any, name: str) -> NoTrainedModel:
    """The error for a job without ``checkpoints/best.pt``, saying what to do
    for its kind of task (``config``: loaded here when not given): a
    :class:`~xpm_train.training.TrainingTask` says it itself."""
    from .training import is_training_task

    best = folder / BEST
    if config is None:
        from .jobfolder import load_config

        try:
            config = load_config(folder)
        except ImportError:  # its code is not importable here: the generic message
            pass
    if is_training_task(config):
        return NoTrainedModel(config.no_network_message(folder, name))
    if config is not None and type(config).__module__.split(".")[0] != "xpm_train":
        return NoTrainedModel(
            f"{name} job {folder.name[:12]} is a plain experimaestro Task: export and load(job).network need "
            f"the trained network in its folder as {BEST}, which xpm-train's training tasks write (Learn, "
            "LightningFit, or a training function calling ctx.save_model(net)); this task keeps its weights "
            f"its own way: read them from {folder}, or train it as a training function")
    return NoTrainedModel(no_trained_network(folder, name))


def network(folder: Path, config: Any = None) -> "nn.Module":
    """The trained network of the job whose folder is ``folder``, in eval mode,
    with its best weights. Only the model's code is imported (its config is
    read from ``params.json``), not the dataset's; ``config``: the job's
    config when loaded already (for a Learn trained before ``data.json``
    existed). Raises :class:`NoTrainedModel` when there is none."""
    from . import checkpoint
    from .reporting import own_kind

    folder = Path(folder)
    best = folder / BEST
    params = read_params(folder)
    name = params["objects"][-1]["typename"].rsplit(".", 1)[-1]
    if not best.exists():
        raise no_network(folder, config, name)
    state = unpickle(lambda: checkpoint.load_latest(best), params,  # a network saved whole: its classes
                     f"cannot load the network of {name} {folder.name[:12]}")
    if state is None:
        raise NoTrainedModel(f"{name}: {best} is corrupt (and no intact .prev): train it again")
    field = model_field(params, state)
    if field is None:  # a training function's module, pickled
        if "network" not in state:
            raise NoTrainedModel(f"{name}: {best} holds no network: save it with ctx.save_model(net)")
        net = state["network"]
    else:
        description = read_data(folder)
        if description is not None:
            info = description["info"]
        elif own_kind(config) == "learn":  # a Learn trained before data.json existed
            from .objectives import objective_of

            info = objective_of(config).describe(config.data.arrays())
        else:
            info = None
        what = f"cannot rebuild the network of {name} {folder.name[:12]}"
        net = rebuild(load_definition(definition(params, field), what), info, state["model"], what)
    net.eval()
    return net
