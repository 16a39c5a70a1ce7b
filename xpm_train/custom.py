"""Your own training function as a content-addressed task: the decorator
:func:`training_function` and the task it makes (:class:`TrainingFunction`).

What the function receives (the context, ``ctx``) and returns (``Result``)
is :mod:`xpm_train.context`.

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
  :meth:`~xpm_train.context.Context.save_checkpoint`, once that checkpoint
  is written: the job ends with experimaestro's ``GracefulTimeout``, the
  scheduler submits it again and the function resumes from
  :meth:`~xpm_train.context.Context.load_checkpoint`
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
mirrored to ``tracking``), ``checkpoints/`` (for
:meth:`~xpm_train.context.Context.save_checkpoint`) and ``final.json``:
``{"objective": ..., "final": {metrics}, "pruned": ..., "wall_time": ...}``
plus the score keys of :mod:`xpm_train.summary` (the objective, and the
``direction`` given to the decorator).

A function that calls :meth:`~xpm_train.context.Context.save_model` gets the
outputs of a Learn: its task output is the trained network as an init task, so
``Evaluate.C(model=task.saved_model(), data=test, ...).submit(init_tasks=[output])``
evaluates it; ``xpm_train.load(job).network`` and ``xpm-train export`` work.
"""

from __future__ import annotations

import inspect
import logging
import random
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

from experimaestro import Constant, Meta, Param, PathGenerator, ResumableTask, field

from . import context, jobfolder
from .checks import DeviceName, validated
from .directions import FUNCTION_OBJECTIVE
from .hooks import Tracking, Trial

if TYPE_CHECKING:
    from .runtime import PreemptionFlag

logger = logging.getLogger("xpm_train.custom")


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

    direction: typing.ClassVar[str] = FUNCTION_OBJECTIVE
    """Whether a higher objective is better (set by ``@training_function(direction=...)``)"""

    def saved_model(self):
        """The model config of the network this function saves
        (:meth:`~xpm_train.context.Context.save_model`), to give Evaluate with
        the task's output as init task: ``Evaluate.C(model=task.saved_model(), ...)``.
        The same object each time: the init task attaches the weights to it."""
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
        ctx = context.Context(device=device, job_folder=self.final_path.parent, checkpoints=self.checkpoints,
                      log=log, seed=self.seed, trial=self.trial, ranks=ranks, preemption=stop,
                      horizon=budget.horizon_of(self) if budgeted else None)
        function = type(self).__xpm_train_function__
        kwargs = ctx.params = {name: getattr(self, name) for name in self.__xpm_train_params__}
        name = f"{function.__module__}.{function.__qualname__}"
        extent = budget.summary_fields(self, prefix) if budgeted else {}
        with lifecycle(log, ranks, device=str(device), function=name, **extent) as job:  # start, then end or error
            result = context.as_result(function(ctx, **kwargs), function)
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


def param_annotation(annotation: Any) -> Any:
    """``float`` -> ``Param[float]``; ``Annotated[float, check]`` -> ``Annotated[Param[float], check]``."""
    if typing.get_origin(annotation) is Annotated:
        base, *extras = typing.get_args(annotation)
        return Annotated[(Param[base], *extras)]
    return Param[annotation]


def training_function(function: Callable | None = None, *, version: str = "1",
                      distributed: bool = False, direction: str = FUNCTION_OBJECTIVE, budget: Optional[str] = None):
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

