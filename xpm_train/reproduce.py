"""Run a done job's exact config again in another workspace, and compare.

``xpm-train reproduce JOB [--into NEW]`` rebuilds the job's config from its
``params.json`` (the same Params, so the same job ID; the Meta that mirror
results elsewhere, ``tracking`` and a Tune ``trial``, are left out so the
reproduction touches neither MLflow nor the study), runs it in the workspace
NEW (a new temporary folder by default) with the thread count the job
recorded at its start (the CPU's results depend on it: launchers.yaml's
launcher for ``cpu(cores=N)``), waits, then compares:
the weights (``checkpoints/best.pt``) bit for bit, the summary's metrics
(timings aside), and the environment recorded in both ``provenance.json``
(:func:`xpm_train.provenance.differences`).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import UserError

logger = logging.getLogger("xpm_train.reproduce")

UNCOMPARED = ("wall_time", "samples_per_s")
"""Summary keys that measure time, not the result"""
LEFT_OUT = ("tracking", "trial")
"""Meta of a task that send its results elsewhere (MLflow, the Tune study)"""
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


class ReproduceError(UserError, ValueError):
    """A job that cannot be reproduced (the message says why and what to do)."""


@dataclass
class Reproduction:
    """What :func:`reproduce` found."""

    original: Path
    copy: Path
    weights: Optional[int] = None
    """Number of weight tensors compared (None: the job saved no weights)"""
    max_weight_difference: float = 0.0
    metric_differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    environment: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.max_weight_difference == 0 and not self.metric_differences

    def lines(self) -> list[str]:
        """The verdict, then the differences, one per line."""
        if self.identical:
            what = f"bit-identical weights ({self.weights} tensors) and metrics" if self.weights else "identical metrics"
            lines = [f"reproduced: {what}"]
        else:
            lines = ["differs from the original:"]
            if self.weights:
                lines.append(f"  weights: max |difference| = {self.max_weight_difference:.3g} over {self.weights} tensors")
            lines += [f"  {key}: {old} -> {new}" for key, (old, new) in self.metric_differences.items()]
        lines.append(f"original: {self.original}")
        lines.append(f"copy:     {self.copy}")
        if self.environment:
            lines.append("environment differs from the recorded one:")
            lines += [f"  {line}" for line in self.environment]
        return lines


def reproduce(job: str | Path, workspace: Path | str = "workspace", into: Optional[Path] = None) -> Reproduction:
    """Run ``job`` (ID, hash prefix or folder of ``workspace``) again in ``into``
    and compare (see the module documentation)."""
    from . import provenance
    from .analysis import resolve

    info = resolve(job, workspace)
    if info.state != "done":
        raise ReproduceError(f"{info.id} is {info.state}: only a done job can be reproduced; "
                             "run its plan until it is done first")
    target = Path(into) if into is not None else Path(tempfile.mkdtemp(prefix="xpm-reproduce-"))
    if target.resolve() == Path(info.path).parent.parent.parent.resolve():
        raise ReproduceError(f"--into {target} is the job's own workspace, where the job is done already: "
                             "give another folder")
    config = rebuild(info.path)
    recorded = provenance.read(info.path)
    plan = Path(recorded.plan) if recorded is not None and recorded.plan and Path(recorded.plan).is_dir() else None
    if plan is not None:
        provenance.use_plan_folder(str(plan))  # today's git state of the plan's repository
    copy = run(config, target, launcher_for(threads_of(info.path), plan))
    return compare(info.path, copy)


def rebuild(folder: Path):
    """The task config of the job in ``folder``, as submitted (its Params and
    Meta), without :data:`LEFT_OUT` and the paths generated in its folder."""
    from experimaestro.core.serialization import from_state_dict
    import experimaestro.taskglobals as taskglobals

    from .errors import code_not_found
    from .jobfolder import PARAMS

    content = json.loads((Path(folder) / PARAMS).read_text())
    task = content["objects"][-1]
    for key, value in list(task.get("fields", {}).items()):
        if key in LEFT_OUT or (isinstance(value, dict) and value.get("type") == "path" and value.get("base") == "job"):
            del task["fields"][key]
    if any(obj.get("task") is not None and obj is not task for obj in content["objects"]):
        raise ReproduceError(f"{folder.parent.name}/{folder.name[:12]} depends on another job's result (an "
                             "Evaluate of a Learn...): reproduce that job instead")
    content["data"] = {"type": "python", "value": task["id"]}
    env = taskglobals.Env.instance()
    saved = env.wspath
    env.wspath = Path(content["workspace"]) if "workspace" in content else saved  # workspace-relative paths
    try:
        config = from_state_dict(content)
    except ModuleNotFoundError as error:
        raise code_not_found(error, f"cannot rebuild {folder.name[:12]}") from None
    finally:
        env.wspath = saved
    # experimaestro marks a loaded task as submitted and seals it with its recorded ID:
    # a new config, whose ID is computed again (from today's classes) when submitted
    config.__xpm__.job = None
    config.__xpm__.__unseal__()
    return config


def threads_of(folder: Path) -> Optional[int]:
    """The thread count the job recorded in its ``start`` event (None: not recorded)."""
    from .jobfolder import EVENTS
    from .metrics import read_jsonl

    starts = [e for e in read_jsonl(Path(folder) / EVENTS) if e.get("event") == "start"]
    return starts[-1].get("threads") if starts else None


def launcher_for(threads: Optional[int], plan: Optional[Path]):
    """The launcher of the reproduction: launchers.yaml's (of the plan's folder,
    else the working directory) for ``cpu(cores=threads)``, which sizes the
    job's thread pool; when none fits, experimaestro's direct launcher with
    the thread count and this process's ``PYTHONPATH``."""
    import os

    from experimaestro.connectors.local import LocalConnector
    from experimaestro.launchers.direct import DirectLauncher

    from .launchers.finder import find_launcher_or_none

    if threads:
        launcher = find_launcher_or_none(f"cpu(cores={threads})", start=plan)
        if launcher is not None:
            return launcher
    launcher = DirectLauncher(LocalConnector.instance())
    for name in THREAD_VARIABLES if threads else ():
        launcher.setenv(name, str(threads))
    if os.environ.get("PYTHONPATH"):
        launcher.setenv("PYTHONPATH", os.environ["PYTHONPATH"])
    return launcher


def run(config, target: Path, launcher) -> Path:
    """Submit ``config`` in the workspace ``target`` with ``launcher``, wait; its job folder."""
    from experimaestro import DirtyGitAction, experiment

    from .jobfolder import is_done
    from .provenance import install_hooks

    install_hooks()  # the copy records its provenance as a plan's job does
    with experiment(target, "reproduce", no_environmental_impact=True, dirty_git=DirtyGitAction.IGNORE) as xp:
        config.submit(launcher=launcher)
        xp.wait()
    folder = Path(config.__xpm__.job.path)
    if not is_done(folder):
        raise ReproduceError(f"the reproduction failed: see {folder}")
    return folder


def compare(original: Path, copy: Path) -> Reproduction:
    """Weights, metrics and environment of two runs of one job."""
    from . import provenance, summary

    result = Reproduction(original=original, copy=copy)
    if copy.name != original.name:  # the classes' Params or Constants changed since
        result.metric_differences["job ID"] = (original.name, copy.name)
    old_weights, new_weights = weights(original), weights(copy)
    if old_weights is not None and new_weights is not None:
        result.weights = len(old_weights)
        result.max_weight_difference = max_difference(old_weights, new_weights)
    old, new = (summary.flatten(summary.read(folder)) for folder in (original, copy))
    for key in sorted(set(old) | set(new)):
        if key.split(".")[-1] not in UNCOMPARED and not same(old.get(key), new.get(key)):
            result.metric_differences[key] = (old.get(key), new.get(key))
    recorded, today = provenance.read(original), provenance.read(copy)
    if recorded is None:
        result.environment = ["(the original job recorded no provenance: it ran before xpm-train recorded it)"]
    elif today is not None:
        result.environment = provenance.differences(recorded, today)
    return result


def same(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def weights(folder: Path) -> Optional[dict[str, Any]]:
    """The trained weights of ``folder`` (``best.pt``: a model's state, or a
    training function's saved network), None when it saved none."""
    from . import checkpoint
    from .trained import BEST

    path = Path(folder) / BEST
    if not path.exists():
        return None
    state = checkpoint.load_latest(path)
    if state is None:
        return None
    if "model" in state:
        return dict(state["model"])
    network = state.get("network")
    return dict(network.state_dict()) if network is not None else None


def max_difference(a: dict[str, Any], b: dict[str, Any]) -> float:
    """The largest absolute difference between two state dicts (inf: other names or shapes)."""
    import torch

    if a.keys() != b.keys():
        return math.inf
    largest = 0.0
    for name, tensor in a.items():
        other = b[name]
        if tensor.shape != other.shape:
            return math.inf
        if not torch.equal(tensor, other):
            largest = max(largest, (tensor.double() - other.double()).abs().max().item())
    return largest
