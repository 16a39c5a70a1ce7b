"""Your own training function as a content-addressed task.

``@training_function`` turns a typed function into an experimaestro task
whose ``Param``s are the function's parameters (after the first, the
context)::

    # mypackage/mytrain.py  (an importable module: see below)
    from xpm_train import Result, training_function

    @training_function
    def train(ctx, lr: float, hidden: int = 32, epochs: int = 5) -> Result:
        ...                                  # ctx.device, ctx.log, ctx.seed...
        return Result(objective=accuracy, metrics={"loss": loss})

    # in a plan
    train.C(lr=1e-3, hidden=64).submit(launcher=launcher)

- A parameter with a default gets ``field(default=..., ignore_default=True)``:
  adding a parameter with a default later keeps the IDs of existing jobs.
- A ``seed: Param[int]`` (default 0) is added unless the function declares
  ``seed`` itself; torch and ``random`` are seeded with it before the call.
- ``Annotated[float, Positive()]`` checks a value when the config is built.
- ``device``, ``gpu_memory_fraction``, ``tracking`` and ``trial`` are
  ``Meta``: they never change the task ID.
- ``@training_function(distributed=True)`` declares a function that runs on
  several ranks (a launcher spec with ``processes=``/``nodes=``): every rank
  calls it, ``ctx.ranks`` says which one it is (``rank``, ``world_size``,
  ``is_main``, ``wrap(net)`` for DistributedDataParallel, ``sum_(*tensors)``)
  and ``ctx.device`` is its device; only rank 0's ``ctx.log`` writes and only
  rank 0's result is kept (see docs/distributed.md). A function not declared
  so is refused at ``submit()`` on several ranks.
- SIGTERM or SIGUSR1 (Slurm's warning before a job's time limit, a
  preemption, ``scancel``) stops the function at its next
  :meth:`Context.save_checkpoint`, once that checkpoint is written: the job
  ends with experimaestro's ``GracefulTimeout``, the scheduler submits it
  again and the function resumes from :meth:`Context.load_checkpoint`
  (``ctx.stop_requested`` says a signal came, for a function that checkpoints
  rarely and wants to save sooner). On several ranks every rank calls
  ``save_checkpoint`` at the same point: the ranks stop together.
- ``@training_function(budget="epochs")`` names the parameter where the run
  stops: the task gets a ``horizon`` Param (``ctx.horizon``) and a job of a
  larger budget continues the done run of a smaller one from its
  ``last.pt`` (prefix budgets, :mod:`xpm_train.budget`).

The task process imports the function's module again: define the function in
a module of an installed package, or in a top-level module (a ``.py`` file
imported by its own name, e.g. ``mytrain`` next to the plan with
``pythonpath: [.]`` in ``params.yaml``): experimaestro records such a module's
file and loads it from there. A function defined in the plan file itself or
inside another function is refused.

Job folder: ``metrics.jsonl`` and ``events.jsonl`` (:class:`MetricsLogger`,
mirrored to ``tracking``), ``checkpoints/`` (for :meth:`Context.save_checkpoint`)
and ``final.json``: ``{"objective": ..., "final": {metrics}, "pruned": ...,
"wall_time": ...}`` plus the score keys of :mod:`xpm_train.summary` (the
objective, and the ``direction`` given to the decorator).

A function that calls :meth:`Context.save_model` gets the outputs of a
Learn: its task output is the trained network as an init task, so
``Evaluate.C(model=task.saved_model(), data=test, ...).submit(init_tasks=[output])``
evaluates it; ``xpm_train.load(job).network`` and ``xpm-train export`` work.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import pickle
import random
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

from experimaestro import Constant, Meta, Param, PathGenerator, ResumableTask, field

from . import jobfolder
from .checks import DeviceName, validated
from .errors import UserError
from .hooks import Tracking, Trial

if TYPE_CHECKING:
    import torch

    from .distributed import Ranks
    from .metrics import MetricsLogger
    from .runtime import PreemptionFlag

logger = logging.getLogger("xpm_train.custom")


class SaveModelError(UserError, ValueError):
    """``ctx.save_model`` cannot keep this network (the message says how to fix it)."""


@dataclasses.dataclass
class Result:
    """What a training function returns."""

    objective: float
    """The value to compare runs by (and that Tune maximises), e.g. the
    validation accuracy"""

    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    """Other final metrics (written to ``final.json``)"""


@dataclasses.dataclass
class Context:
    """What a training function receives as first argument."""

    device: "torch.device"
    """The torch device to use (``device`` Meta resolved: CUDA when present)"""

    job_folder: Path
    """The job's folder (write any output there)"""

    checkpoints: Path
    """Folder for checkpoints (kept when the job is resumed)"""

    log: "MetricsLogger"
    """Metrics logger: ``ctx.log.log(epoch=, step=, split=, **values)`` and
    ``ctx.log.event(kind, ...)``; same files and MLflow mirroring as Learn"""

    seed: int
    """The task's seed (torch and ``random`` are already seeded with it)"""

    trial: Optional[Trial] = None
    """The Optuna trial when run by Tune (None otherwise)"""

    pruned: bool = False
    """Set when :meth:`should_prune` said to stop"""

    ranks: Optional["Ranks"] = None
    """This process's rank in the job (one process unless the function is
    ``distributed=True`` and its launcher gives several); see :mod:`xpm_train.distributed`"""

    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The function's parameters by name (as passed to it)"""

    horizon: Optional[int] = None
    """Epochs the schedule spans, for a function declared with a budget
    (``@training_function(budget="epochs")``): the task's ``horizon``, else
    its budget; build the learning-rate schedule over it (None: no budget declared)"""

    checkpoint_loaded: bool = False
    """Whether the function called :meth:`load_checkpoint` (a job that
    continues a smaller budget's run must: :func:`xpm_train.budget.check_resumed`)"""

    preemption: Optional["PreemptionFlag"] = None
    """SIGTERM/SIGUSR1 caught since the job started (set by the task: None, none caught)"""

    @property
    def stop_requested(self) -> bool:
        """Whether SIGTERM or SIGUSR1 arrived (on this rank): the next
        :meth:`save_checkpoint` stops the job once it has saved."""
        return self.preemption is not None and self.preemption.requested

    def should_prune(self, epoch: int, value: float) -> bool:
        """Report ``value`` (e.g. validation accuracy) after ``epoch`` to the
        trial; True when the trial is pruned: return a :class:`Result` now."""
        if self.trial is None or not self.trial.should_prune(epoch, value):
            return False
        self.pruned = True
        self.log.event("pruned", epoch=epoch)
        return True

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Save ``state`` (tensors, numbers...) to ``checkpoints/last.pt``,
        atomically and checksummed; then, when SIGTERM/SIGUSR1 arrived (see
        :attr:`stop_requested`), stop the job (``GracefulTimeout``: it is
        submitted again and resumes from this checkpoint)."""
        from . import checkpoint

        checkpoint.save(self.checkpoints / jobfolder.LAST, state)
        self.log.event("checkpoint")
        stop = self.ranks.any(self.stop_requested) if self.ranks is not None else self.stop_requested
        if stop:  # (every rank stops after the same checkpoint)
            from experimaestro import GracefulTimeout

            name = self.preemption.signal_name if self.stop_requested else "another rank's signal"
            self.log.event("preempted", signal=name)
            raise GracefulTimeout(f"stopped by {name} after a checkpoint")

    def save_model(self, net: "torch.nn.Module", data: Any = None, *, model: Any = None) -> None:
        """Keep ``net`` as the trained model of this job (call it again to
        replace it, e.g. for each better epoch) in ``checkpoints/best.pt``.

        A network built from a ``Model`` parameter of the function
        (``xpm_train.extend.build(model, info)``, or ``model=`` that
        parameter) is saved as Learn saves it: its weights, rebuilt from the
        config when loaded (its classes may be defined inside ``module()``).
        Any other network is saved whole (pickled: its classes must be
        importable, at the top level of your module).

        ``data``: the :class:`~xpm_train.data.base.Arrays` it was trained on
        (its shape, outputs and normalisation are recorded for ``load(job)``
        and ``xpm-train export``), or, for a loop over your own
        ``DataLoader``, the :class:`~xpm_train.data.base.DataInfo` it was built for."""
        from .data.base import DataInfo
        from .models import BUILT
        from .trained import DATA, save_network, write_data

        if self.ranks is not None and not self.ranks.is_main:
            return  # the ranks hold the same weights: rank 0 writes them
        built_from, built_info = BUILT.get(net, (None, None))
        info = data if isinstance(data, DataInfo) else built_info
        if data is not None and not isinstance(data, DataInfo):
            from .objectives import Classification, Regression

            objective = Classification.C() if data.num_classes is not None else Regression.C()
            info = objective.describe(data)
        name = self.model_parameter(model if model is not None else built_from, explicit=model is not None)
        if name is not None and info is None:
            raise SaveModelError("ctx.save_model(net, model=...): give data= too (the Arrays the network was "
                                 "trained on, or the DataInfo it was built for): it is rebuilt for that data")
        try:
            save_network(self.job_folder, net, built=name)
        except (AttributeError, TypeError, pickle.PicklingError) as error:
            if "pickle" not in str(error):
                raise
            raise SaveModelError(
                f"ctx.save_model cannot save {type(net).__name__} whole ({error}): build it from a Model "
                "parameter of the function (net = xpm_train.extend.build(model, info)) or name that parameter "
                "(ctx.save_model(net, data, model=model)) to save its weights, or define its classes at the top "
                "level of a module") from None
        if data is not None or (name is not None and not (self.job_folder / DATA).exists()):
            write_data(self.job_folder, info, None if isinstance(data, DataInfo) or data is None else data)
        self.log.event("model_saved")

    def model_parameter(self, model: Any, explicit: bool) -> Optional[str]:
        """The name of the function's parameter holding ``model`` (None: none)."""
        if model is None:
            return None
        name = next((key for key, value in self.params.items() if value is model), None)
        if name is None and explicit:
            from .errors import config_name

            raise SaveModelError(f"ctx.save_model(model={config_name(model)}...): that config is not a parameter of "
                                 f"the training function ({', '.join(self.params) or 'none'}): declare it as one "
                                 "(e.g. model: MyModel) so that the job can rebuild the network")
        return name

    def load_checkpoint(self) -> Optional[dict[str, Any]]:
        """The last intact state saved by :meth:`save_checkpoint` (None: start
        from scratch). Use it to resume a job that was stopped."""
        from . import checkpoint

        self.checkpoint_loaded = True
        return checkpoint.load_latest(self.checkpoints / jobfolder.LAST)


class TrainingFunction(ResumableTask):
    """Base of the tasks made by :func:`training_function` (not used directly)."""

    device: Annotated[Meta[str], DeviceName()] = field(default="auto", ignore_default=True)
    """``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``..."""

    gpu_memory_fraction: Meta[Optional[float]] = field(default=None, ignore_default=True)
    """Cap on this job's share of its GPU's memory, in (0, 1] (None: no cap)"""

    tracking: Meta[Optional[Tracking]] = field(default=None, ignore_default=True)
    """Where metrics are mirrored besides the job folder (e.g. MLflow)"""

    trial: Meta[Optional[Trial]] = field(default=None, ignore_default=True)
    """The Optuna trial this run answers (set by Tune)"""

    checkpoints: Meta[Path] = field(default_factory=PathGenerator("checkpoints"))
    """Folder of the function's checkpoints"""

    metrics_path: Meta[Path] = field(default_factory=PathGenerator(jobfolder.METRICS))
    """Metrics, one JSON object per line"""

    events_path: Meta[Path] = field(default_factory=PathGenerator(jobfolder.EVENTS))
    """Events, one JSON object per line"""

    final_path: Meta[Path] = field(default_factory=PathGenerator(jobfolder.FINAL))
    """Result written at the end"""

    # Set by make_task: the function, the names of its task parameters,
    # whether it runs on several ranks, and the parameter that is its budget
    __xpm_train_function__ = None
    __xpm_train_params__ = ()
    __xpm_train_distributed__ = False
    __xpm_train_budget__ = None

    def __validate__(self):
        """With a budget (``@training_function(budget=...)``): refuse one beyond
        the horizon and record the jobs of smaller budgets it may continue
        (installed on each such function's config class: :func:`~xpm_train.checks.validated`)."""
        from . import budget

        budget.plan(self)

    # --- The TrainingTask protocol (xpm_train/training.py)

    training_kind: typing.ClassVar[str] = "function"

    def study_score(self) -> tuple[str, Optional[str]]:
        """A Study's default: the function's objective (``score``), in the decorator's direction."""
        return "score", type(self).direction

    def no_network_message(self, folder: Path, name: str) -> str:
        from .trained import BEST

        return (f"{name} saved no model ({folder / BEST} is missing): call ctx.save_model(net) in the "
                "training function, then run the plan again (bump its version to retrain)")

    def check_ranks(self, world_size: int) -> None:
        """Called at ``submit()`` when the launcher gives the job several ranks."""
        if not type(self).__xpm_train_distributed__:
            from .launchers.ranks import RanksSpecError

            function = type(self).__xpm_train_function__
            raise RanksSpecError(
                f"@training_function {function.__module__}.{function.__qualname__} is not DDP-aware but its "
                f"launcher gives it {world_size} ranks: declare it @training_function(distributed=True) "
                "(and use ctx.ranks), or submit it with a spec without processes=/nodes=")

    direction: typing.ClassVar[str] = "maximize"
    """Whether a higher objective is better (set by ``@training_function(direction=...)``)"""

    def saved_model(self):
        """The model config of the network this function saves
        (:meth:`Context.save_model`), to give Evaluate with the task's output
        as init task: ``Evaluate.C(model=task.saved_model(), ...)``. The same
        object each time: the init task attaches the weights to it."""
        from .models import SavedModel

        model = self.__dict__.get("_xpm_train_saved_model")
        if model is None:
            model = self.__dict__["_xpm_train_saved_model"] = SavedModel.C()
        return model

    def task_outputs(self, dep):
        """The network the function saved, as an init task (see :meth:`saved_model`)."""
        from .models import LoadWeights
        from .trained import BEST

        return dep(LoadWeights.C(model=self.saved_model(), path=self.checkpoints / BEST.name))

    def execute(self):
        from .runtime import PreemptionFlag

        # From the start SIGTERM/SIGUSR1 are caught (Slurm may warn up to a minute
        # early, while the function sets up): they stop it at its next checkpoint
        with PreemptionFlag() as stop:
            self._run(stop)

    def _run(self, stop: "PreemptionFlag"):
        from . import budget, runtime, summary
        from .metrics import lifecycle, open_log

        # One process unless the launcher gave several; GPU memory capped, torch seeded
        ranks = runtime.start(self.device, gpu_memory_fraction=self.gpu_memory_fraction, seed=self.seed)
        device = ranks.device
        random.seed(self.seed)

        self.checkpoints.mkdir(parents=True, exist_ok=True)
        budgeted = type(self).__xpm_train_budget__ is not None
        # a job of a larger budget continues the done run of a smaller one (xpm_train.budget)
        prefix = budget.continuation(self, ranks, self.checkpoints / jobfolder.LAST) if budgeted else None
        log = open_log(self, ranks)
        ctx = Context(device=device, job_folder=self.final_path.parent, checkpoints=self.checkpoints,
                      log=log, seed=self.seed, trial=self.trial, ranks=ranks, preemption=stop,
                      horizon=budget.horizon_of(self) if budgeted else None)
        function = type(self).__xpm_train_function__
        kwargs = ctx.params = {name: getattr(self, name) for name in self.__xpm_train_params__}
        name = f"{function.__module__}.{function.__qualname__}"
        extent = budget.summary_fields(self, prefix) if budgeted else {}
        with lifecycle(log, ranks, device=str(device), function=name, **extent) as job:  # start, then end or error
            result = as_result(function(ctx, **kwargs), function)
            if prefix is not None:
                budget.check_resumed(name, prefix, ctx.checkpoint_loaded)
            ranks.close()
            if not ranks.is_main:
                return
            wall = log.elapsed()
            final = summary.make("objective", result.objective, type(self).direction, {},
                                 objective=result.objective, final=result.metrics, pruned=ctx.pruned,
                                 wall_time=wall, **extent)
            summary.write(self.final_path, final)
            job.end(wall_time=wall, objective=result.objective)
        logger.info("objective %.4f", result.objective)


RESERVED = frozenset({"device", "gpu_memory_fraction", "tracking", "trial", "checkpoints",
                      "metrics_path", "events_path", "final_path", "version"})
"""Names of the base task's fields, which a function's parameters cannot take"""


def as_result(value: Any, function: Callable) -> Result:
    """The function's return value as a :class:`Result` (a bare number is the
    objective); a NaN or infinite objective or metric is refused
    (:class:`~xpm_train.summary.NonFiniteResult`: the job ends failed, never done)."""
    if isinstance(value, Result):
        result = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        result = Result(objective=float(value))
    else:
        raise TypeError(
            f"{function.__qualname__} returned {type(value).__name__}; a training function must "
            "return xpm_train.Result(objective=..., metrics={...}) or a number (the objective), e.g. "
            "`return Result(objective=val_accuracy)` at the end of the function"
        )
    from .summary import DIVERGED_FIX, check_result

    where = f"{function.__module__}.{function.__qualname__}"
    fix = ("return the real score (a function resumed after its last epoch returns the score kept in its "
           "checkpoint, not a placeholder: see experiments/custom/mytrain.py); otherwise " + DIVERGED_FIX)
    return Result(objective=check_result(result.objective, f"the objective returned by {where}", fix),
                  metrics={str(k): check_result(v, f"metric {k!r} returned by {where}", fix)
                           for k, v in result.metrics.items()})


def param_annotation(annotation: Any) -> Any:
    """``float`` -> ``Param[float]``; ``Annotated[float, check]`` -> ``Annotated[Param[float], check]``."""
    if typing.get_origin(annotation) is Annotated:
        base, *extras = typing.get_args(annotation)
        return Annotated[(Param[base], *extras)]
    return Param[annotation]


def training_function(function: Callable | None = None, *, version: str = "1",
                      distributed: bool = False, direction: str = "maximize", budget: Optional[str] = None):
    """Decorator: a typed function ``f(ctx, a: T, b: U = default, ...) -> Result``
    becomes a task class named like the function (see the module documentation).

    ``version`` is a Constant of the task: bump it to invalidate every
    previous run on purpose (e.g. after fixing a bug in the function).
    ``distributed=True``: the function runs on every rank of a job given
    several (``ctx.ranks``); it does not change the task ID.
    ``direction``: ``maximize`` (an accuracy) or ``minimize`` (a loss) the
    objective: the best run, ``results --sort score`` and Tune follow it.
    ``budget``: the name of the function's integer parameter that says where
    the run stops (e.g. ``"epochs"``): the task gets a ``horizon`` Param (the
    epochs its schedule spans, ``ctx.horizon``; None: the budget), and a job
    of a larger budget with a horizon starts from the end-of-run checkpoint of
    the done job of the largest smaller one (prefix budgets, docs/workflows.md).
    """
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"@training_function(direction={direction!r}): use 'maximize' or 'minimize'")

    def decorate(function: Callable) -> type[TrainingFunction]:
        task = make_task(function, version, distributed, budget)
        task.direction = direction
        return task

    return decorate(function) if function is not None else decorate


def make_task(function: Callable, version: str, distributed: bool = False,
              budget: Optional[str] = None) -> type[TrainingFunction]:
    """The task class of ``function``; raises TypeError for unusable signatures."""
    where = f"@training_function {function.__module__}.{function.__qualname__}"
    if "<locals>" in function.__qualname__ or function.__name__ == "<lambda>":
        raise TypeError(f"{where}: define the function at the top level of a module, "
                        "not inside another function (the task process must import it)")
    if function.__module__ in ("__main__", "experiment"):
        raise TypeError(f"{where}: define the function in its own importable module "
                        "(e.g. mytrain.py beside the plan), not in the plan or a script: the task ID "
                        f"would be {function.__module__}.{function.__name__}, the same for every plan")
    parameters = list(inspect.signature(function).parameters.values())
    if not parameters:
        raise TypeError(f"{where}: the first parameter must be the context (ctx)")
    hints = typing.get_type_hints(function, include_extras=True)
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {}
    for parameter in parameters[1:]:
        name = parameter.name
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            raise TypeError(f"{where}: *args/**kwargs ({name}) cannot be task parameters")
        if name in RESERVED:
            raise TypeError(f"{where}: parameter '{name}' is reserved ({', '.join(sorted(RESERVED))})")
        if name not in hints:
            raise TypeError(f"{where}: parameter '{name}' needs a type annotation (e.g. {name}: float)")
        annotations[name] = param_annotation(hints[name])
        if parameter.default is not parameter.empty:
            namespace[name] = field(default=parameter.default, ignore_default=True)
    names = tuple(p.name for p in parameters[1:])
    if "seed" not in names:
        annotations["seed"] = Param[int]
        namespace["seed"] = field(default=0, ignore_default=True)
    if budget is not None:
        from .budget import function_params

        function_params(where, budget, hints, names, annotations, namespace)
    annotations["version"] = Constant[str]
    namespace.update(
        version=version,
        __annotations__=annotations,
        __module__=function.__module__,
        __qualname__=function.__qualname__,
        __doc__=function.__doc__ or f"Task made from {function.__qualname__} by @training_function",
        __xpm_train_function__=staticmethod(function),
        __xpm_train_params__=names,
        __xpm_train_distributed__=distributed,
        __xpm_train_budget__=budget,
        __wrapped__=function,
    )
    task = type(function.__name__, (TrainingFunction,), namespace)
    return validated(task) if budget is not None else task

