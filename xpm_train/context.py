"""What a training function receives and returns: :class:`Context` and :class:`Result`.

A ``@training_function`` (:mod:`xpm_train.custom`, which makes the task) is
called as ``f(ctx, **params)``: ``ctx`` is a :class:`Context` -- the device,
the job folder, the metrics logger (``ctx.log``), the seed, the Optuna trial
(``ctx.should_prune``), the ranks, the budget's ``horizon`` -- and its methods
are what the function may leave in the job folder:

- :meth:`Context.save_checkpoint` / :meth:`Context.load_checkpoint`:
  ``checkpoints/last.pt``, atomic and checksummed; after SIGTERM/SIGUSR1
  ``save_checkpoint`` stops the job once it has saved (``GracefulTimeout``);
- :meth:`Context.save_model`: the trained network in ``checkpoints/best.pt``
  (its weights when built from a ``Model`` parameter, else pickled whole) and
  ``data.json``, or :class:`SaveModelError` saying how to make it savable.

The function returns a :class:`Result` (or a bare number, the objective):
:func:`as_result` normalises it and refuses a NaN or infinite value.
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from . import jobfolder
from .errors import UserError
from .hooks import Trial

if TYPE_CHECKING:
    import torch

    from .distributed import Ranks
    from .metrics import MetricsLogger
    from .runtime import PreemptionFlag


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
