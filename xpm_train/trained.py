"""What a training leaves for the tasks and tools after it (one owner).

A training job (Learn, or a training function that called
``ctx.save_model``) leaves in its folder::

    checkpoints/best.pt   {"model": state_dict, "epoch": ...}; a training
                          function's also holds "network", the saved nn.Module
    data.json             what the network was built for: the DataInfo
                          (input shape, outputs, classes...) and the input
                          normalisation (dtype, mean, std)

:func:`network` rebuilds the trained network from a job folder (or an
export) for ``xpm_train.load``, ``xpm-train export`` and Evaluate.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from .errors import UserError, config_name

if TYPE_CHECKING:
    from torch import nn

    from .data.base import Arrays, DataInfo

BEST = Path("checkpoints") / "best.pt"
DATA = "data.json"


class NoTrainedModel(UserError, LookupError):
    """A job that left no trained network (an evaluation, a function that saved none)."""


def data_description(info: "DataInfo", arrays: "Arrays") -> dict[str, Any]:
    """The content of ``data.json``."""
    return {"info": dataclasses.asdict(info), "dtype": str(arrays.inputs.dtype).removeprefix("torch."),
            "mean": list(arrays.mean), "std": list(arrays.std)}


def write_data(folder: Path, info: "DataInfo", arrays: "Arrays") -> None:
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


def network(folder: Path, config: Any) -> "nn.Module":
    """The trained network of the job whose folder is ``folder`` and config
    ``config``, in eval mode, with its best weights. Raises
    :class:`NoTrainedModel` when there is none."""
    from . import checkpoint
    from .models import attach_weights, build

    folder = Path(folder)
    best = folder / BEST
    name = config_name(config)
    if not best.exists():
        if hasattr(config, "__xpm_train_function__"):
            raise NoTrainedModel(f"{name} saved no model ({best} is missing): call ctx.save_model(net) in the "
                                 "training function, then run the plan again (bump its version to retrain)")
        if type(config).__module__.split(".")[0] != "xpm_train":
            raise NoTrainedModel(
                f"{name} job {folder.name[:12]} is a plain experimaestro Task: export and load(job).network need "
                f"the trained network in its folder as {BEST}, which xpm-train's training tasks write (Learn, "
                "LightningFit, or a training function calling ctx.save_model(net)); this task keeps its weights "
                f"its own way: read them from {folder}, or train it as a training function")
        raise NoTrainedModel(f"{name} job {folder.name[:12]} has no trained network ({BEST}): load or export "
                             "a training job (Learn, a training function that calls ctx.save_model)")
    if hasattr(config, "trained_network"):  # a task that builds its own (LightningFit)
        net = config.trained_network(best)
    elif hasattr(config, "model") and hasattr(config, "data"):  # a Learn: rebuild from its typed model config
        description = read_data(folder)
        if description is not None:
            info = description["info"]
        else:  # a job trained before data.json existed: describe the data again
            from .objectives import objective_of

            info = objective_of(config).describe(config.data.arrays())
        attach_weights(config.model, best)
        net = build(config.model, info)
    else:  # a training function: the module it saved
        state = checkpoint.load_latest(best)
        if state is None or "network" not in state:
            raise NoTrainedModel(f"{name}: {best} holds no network: save it with ctx.save_model(net)")
        net = state["network"]
    net.eval()
    return net
