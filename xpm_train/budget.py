"""Prefix budgets: a Learn that trains longer continues the same run stopped earlier.

A Learn with ``horizon=H`` follows the learning-rate schedule of an
``H``-epoch run and stops after ``epochs=E`` of them (its *budget*, ``E <=
H``). Nothing of its first ``e`` epochs depends on where it stops: the
schedule is a function of the step and ``H`` (:mod:`xpm_train.optim`), the
sample order and the augmentation of an epoch depend only on the seed and the
epoch (:mod:`xpm_train.sampler`), and the end-of-run checkpoint
(``checkpoints/last.pt``) holds the weights, the optimizer, the random states
and the counters (:mod:`xpm_train.runstate`). So the run of budget ``E`` *is*
the run of budget ``e < E`` continued, and its job starts from the end-of-run
checkpoint of the done job of the largest smaller budget instead of from
scratch; it ends, on the CPU, with the weights of a straight run of budget
``E``, bit for bit (as a resumed job does: the same mechanism).

A training function declared ``@training_function(budget="epochs")`` gets
the same: a ``horizon`` Param, and the prefix's ``last.pt`` becomes its job's
own, which the function's ``ctx.load_checkpoint()`` resumes from (bit for
bit when its checkpoint holds everything its next epoch depends on).

So does a ``LightningFit`` (``horizon``; ``max_epochs`` is its budget): the
Trainer runs with ``max_epochs=horizon``, a callback stops it at the budget,
and the prefix's ``last.ckpt`` becomes its job's own, which Lightning resumes
from as after a preemption.

Each budget is its own job: ``epochs`` stays a Param (its own ID, folder and
cache), and ``horizon=None``, the default, keeps today's meaning (the horizon
is ``epochs``) and IDs. Such a run cannot be continued: a longer run has
another schedule from its first step.

How the job finds its prefix: when the plan submits it (:func:`prefix_ids`,
called by ``Learn.__validate__``), the IDs of the same config (init tasks
included) with each smaller ``epochs`` are computed by experimaestro itself
and recorded in the Meta ``Learn.prefixes``; when the same plan submitted
one of them before, not done yet, the job waits for it
(:func:`wait_for_submitted`); when the job starts without a
checkpoint of its own, it takes the first of them that is done, not pruned,
and has an intact ``last.pt`` (:func:`find`). It copies the prefix's
``best.pt`` and ``metrics.jsonl`` (:func:`adopt`: the folder then reads as a
straight run's) and records the prefix in its ``start`` event and
``final.json`` (``continued_from``).

experimaestro's partial identifiers (tasks differing only in excluded Params
share a folder under ``WORKSPACE/partials``) were not used: the shared folder
lives outside any job (invisible to ``xpm-train gc``, export and
``experimaestro`` cleanup of jobs), and experimaestro locks it for every job
of the partial, which would serialise every Learn that differs only in
``epochs``, today's included, whether it has a horizon or not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from . import jobfolder
from .errors import UserError

logger = logging.getLogger("xpm_train.budget")


class BudgetError(UserError, ValueError):
    """A budget that the schedule's horizon does not allow."""


def budget_name(config) -> str:
    """The Param that is ``config``'s budget: ``epochs`` for a Learn, the
    parameter named by ``@training_function(budget=...)`` for a training function."""
    return getattr(type(config), "__xpm_train_budget__", None) or "epochs"


def budget_of(config) -> int:
    """Where the run of ``config`` stops (its budget Param's value)."""
    return getattr(config, budget_name(config))


def is_function(config) -> bool:
    """Whether ``config`` is a training function's task (its TrainingTask kind)."""
    return getattr(config, "training_kind", None) == "function"


def task_name(config) -> str:
    """``Learn``, ``LightningFit`` or the training function's name, for messages."""
    if is_function(config):
        return type(config).__xpm_train_function__.__name__
    return "LightningFit" if getattr(config, "training_kind", None) == "lightning" else "Learn"


def check(learn) -> None:
    """Refuse, in the plan, a horizon that is not a positive number of epochs
    or a budget (``epochs``, or a training function's budget) beyond it."""
    horizon, name, what = learn.horizon, budget_name(learn), task_name(learn)
    if horizon is None:
        return
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise BudgetError(f"{what}: horizon={horizon!r} must be a positive number of epochs (or None: the "
                          f"horizon is {name})")
    if budget_of(learn) > horizon:
        raise BudgetError(
            f"{what}: {name}={budget_of(learn)} is beyond horizon={horizon}: the schedule ends at epoch {horizon}, "
            f"so a run cannot stop after it; lower {name} to at most {horizon}, or raise horizon (another "
            "schedule: a new run, which cannot continue the shorter ones)")


def horizon_of(learn) -> int:
    """The number of epochs the schedule spans."""
    return budget_of(learn) if learn.horizon is None else learn.horizon


def prefix_ids(learn) -> list[str]:
    """The job IDs of ``learn`` (a config being submitted) with each smaller
    budget (``epochs``), largest first; none without a horizon."""
    from experimaestro.core.objects.config import copyconfig

    if learn.horizon is None:
        return []
    ids, name = [], budget_name(learn)
    for epochs in range(budget_of(learn) - 1, 0, -1):
        shorter = copyconfig(learn, **{name: epochs})
        shorter.__xpm__.set_init_tasks(list(learn.__xpm__.init_tasks))
        ids.append(jobfolder.job_id(shorter))
    return ids


def plan(config) -> None:
    """At submit time: check the budget of ``config`` and record (and wait
    for) the jobs it may continue."""
    from .jobfolder import current_experiment, done_in_current_workspace

    check(config)
    if config.horizon is not None:
        config.prefixes = prefix_ids(config)
        xp = current_experiment()
        if xp is not None and not done_in_current_workspace(config):
            wait_for_submitted(config, Path(xp.workspace.path), xp.scheduler.jobs)


def wait_for_submitted(learn, workspace: Path, scheduled: dict[str, Any]) -> Optional[str]:
    """Make ``learn`` (being submitted) wait for the largest of its prefixes
    that this plan submitted and is not done yet (none when a larger one is
    done already), so that it continues that run rather than racing it
    (``scheduled``: the scheduler's jobs by hash). Returns its ID."""
    from experimaestro.scheduler.jobs import JobDependency

    for job in learn.prefixes or ():
        if jobfolder.is_done(jobfolder.job_path(workspace, job)):
            return None
        submitted = scheduled.get(job.rsplit("/", 1)[-1])
        if submitted is not None:
            learn.add_dependencies(JobDependency(submitted))
            return job
    return None


@dataclass
class Prefix:
    """The done job a run continues from, and its end-of-run checkpoint."""

    id: str
    folder: Path
    state: dict[str, Any]
    budget: int = 0
    """Its budget (epochs)"""

    @property
    def epochs(self) -> int:
        """Epochs a Learn's checkpoint has done."""
        return int(self.state["run"]["epoch"])


def find(workspace: Path, ids: list[str], epochs: int, learn: bool = True,
         last_name: str = jobfolder.LAST) -> Optional[Prefix]:
    """The first of the jobs ``ids`` (the budgets ``epochs - 1`` down to 1)
    that is done, not pruned, and has an intact end-of-run checkpoint
    (``last_name`` in its checkpoints; a Learn's: short of ``epochs``); None:
    train from scratch."""
    from .checkpoint import load_latest
    from .summary import read

    for index, job in enumerate(ids):
        folder = jobfolder.job_path(workspace, job)
        if not jobfolder.is_done(folder) or read(folder).get("pruned") is True:
            continue
        last = folder / jobfolder.CHECKPOINTS / last_name
        state = load_latest(last, on_corrupt=lambda path, error: logger.warning("%s: %s", path, error))
        if state is None:
            logger.info("Prefix %s has no intact %s (removed by xpm-train gc?): skipped", job, last_name)
            continue
        if not learn or int(state["run"]["epoch"]) < epochs:
            return Prefix(job, folder, state, epochs - 1 - index)
    return None


def continuation(learn, ranks, last_path: Path) -> Optional[Prefix]:
    """The prefix the job of ``learn`` (a Learn, or a training function with
    a budget) continues, its files adopted (rank 0), when it has no checkpoint
    of its own (``last_path``) and a prefix is done; None: resume from its own
    checkpoint, or start from scratch. A training function's job also gets the
    prefix's end-of-run state as its own ``last.pt``: ``ctx.load_checkpoint()``
    returns it, and the function goes on as after a stop; so does a
    LightningFit's (``last.ckpt``), which then resumes from it."""
    from .checkpoint import previous_path

    if not learn.prefixes or last_path.exists() or previous_path(last_path).exists():
        return None
    own_state = getattr(learn, "training_kind", None) != "learn"  # its state as its own last checkpoint
    prefix = find(jobfolder.workspace_of(Path(learn.final_path).parent), learn.prefixes, budget_of(learn),
                  learn=not own_state, last_name=last_path.name)
    if not agreed(ranks, prefix.budget if prefix else 0):
        return None  # a prefix finished while the ranks looked: every rank starts from scratch
    if prefix is not None and ranks.is_main:
        adopt(prefix, learn.checkpoints, learn.metrics_path)
        if own_state:
            adopt_function(prefix, last_path)
    return prefix


def adopt(prefix: Prefix, checkpoints: Path, metrics_path: Path) -> None:
    """Make the job folder read as a straight run's up to the prefix's end:
    its best checkpoint and its metrics become the prefix's."""
    from .atomic import atomic_write_bytes

    best = prefix.folder / jobfolder.CHECKPOINTS / jobfolder.BEST
    if best.is_file():
        atomic_write_bytes(Path(checkpoints) / jobfolder.BEST, best.read_bytes())
    metrics = prefix.folder / jobfolder.METRICS
    atomic_write_bytes(Path(metrics_path), metrics.read_bytes() if metrics.is_file() else b"")


def check_resumed(function: str, prefix: Prefix, loaded: bool) -> None:
    """Fail the job of a training function that was given a prefix's run to
    continue and never read it (``ctx.load_checkpoint()``): it trained from
    scratch, and its folder would hold the prefix's epochs and its own."""
    if not loaded:
        raise BudgetError(
            f"{function} was given the run of {prefix.id} ({prefix.budget} epochs) to continue but never called "
            "ctx.load_checkpoint(): it trained from scratch; resume from ctx.load_checkpoint() at its start "
            "(docs/workflows.md, prefix budgets) or declare it without budget=")


def adopt_function(prefix: Prefix, last_path: Path) -> None:
    """A training function's (or LightningFit's) job also takes the prefix's
    end-of-run state as its own (``last.pt``, ``last.ckpt``: ``last_path``)
    and the description of its saved model's data."""
    from .atomic import atomic_write_bytes
    from .checkpoint import save

    save(last_path, prefix.state)
    data = prefix.folder / jobfolder.DATA
    if data.is_file():
        atomic_write_bytes(last_path.parent.parent / jobfolder.DATA, data.read_bytes())


def agreed(ranks, value: int) -> bool:
    """Whether every rank holds the same ``value`` (a rank may have seen a
    prefix finish that another had not)."""
    if not ranks.distributed:
        return True
    import torch

    total = torch.tensor([float(value)], device=ranks.device)
    ranks.sum_(total)
    return not ranks.any(float(value) * ranks.world_size != float(total.item()))


def continuable(summary: dict[str, Any]) -> bool:
    """Whether a done Learn's summary says that longer runs may continue it
    (it stopped short of its horizon): its ``last.pt`` is worth keeping."""
    horizon, epochs = summary.get("horizon"), summary.get("budget", summary.get("epochs"))
    return isinstance(horizon, int) and isinstance(epochs, int) and epochs < horizon and not summary.get("pruned")


def summary_fields(task, prefix: Optional[Prefix]) -> dict[str, Any]:
    """What the ``start`` event and ``final.json`` of a function (or a
    LightningFit) with a horizon say of it: its horizon and budget, and the
    job it continued: ``prefix``, or, for a job resumed after it continued
    one (stopped, then run again from its own checkpoint), the prefix its
    first ``start`` event names."""
    if task.horizon is None:
        return {}
    continued_from = prefix.id if prefix is not None else recorded_prefix(Path(task.events_path))
    return {"horizon": task.horizon, "budget": budget_of(task),
            **({"continued_from": continued_from} if continued_from else {})}


def recorded_prefix(events_path: Path) -> Optional[str]:
    """The ``continued_from`` of the first ``start`` event of a job's ``events.jsonl`` (None: none)."""
    from .metrics import read_jsonl

    starts = [event for event in read_jsonl(events_path) if event.get("event") == "start"] \
        if events_path.is_file() else []
    return starts[0].get("continued_from") if starts else None


def function_params(where: str, budget: str, hints: dict[str, Any], names: tuple[str, ...],
                    annotations: dict[str, Any], namespace: dict[str, Any]) -> None:
    """The ``horizon`` Param and ``prefixes`` Meta of a function whose
    parameter ``budget`` says where its run stops; TypeError when it cannot."""
    import typing
    from typing import Annotated

    from experimaestro import Meta, Param, field

    hint = hints.get(budget)
    if typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    if budget not in names or hint is not int:
        raise TypeError(f"{where}: budget={budget!r} must name an int parameter of the function (where its run "
                        f"stops, e.g. epochs: int = 10); its parameters: {', '.join(names) or 'none'}")
    for name in ("horizon", "prefixes"):
        if name in names:
            raise TypeError(f"{where}: with budget={budget!r} the task has its own '{name}'; rename that "
                            "parameter (read the schedule's span from ctx.horizon)")
    annotations["horizon"] = Param[Optional[int]]
    namespace["horizon"] = field(default=None, ignore_default=True)
    annotations["prefixes"] = Meta[Optional[list[str]]]
    namespace["prefixes"] = field(default=None, ignore_default=True)
