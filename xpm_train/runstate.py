"""Learn's progress: the counters of a run, what ``last.pt`` keeps of them to
resume, and the ``final.json`` made from them.

A run is at ``(epoch, batch)``: ``batch`` batches of epoch ``epoch`` are done
(the sample order of an epoch depends only on ``(seed, epoch)``, so these two
numbers say where to go on). Within an epoch, the objective's sums and the
number of samples so far are kept too, so that an epoch stopped half-way and
resumed reports the metrics of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from .objectives import Objective


@dataclasses.dataclass
class RunState:
    """Where a Learn run is (saved in ``last.pt`` as a dict of these fields)."""

    epoch: int = 0
    """Epochs done"""

    batch: int = 0
    """Batches of the current epoch done"""

    step: int = 0
    """Optimizer steps done (all epochs)"""

    samples_seen: int = 0
    """Training samples seen by finished epochs (for samples/s)"""

    elapsed: float = 0.0
    """Training seconds of the runs before this one (set when a checkpoint is saved)"""

    sums: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The objective's sums over the epoch's batches so far (:meth:`Objective.sums`)"""

    parts: dict[str, float] = dataclasses.field(default_factory=dict)
    """Distillation's ``ce``/``kl`` sums over the epoch's batches so far"""

    samples: int = 0
    """Samples of the epoch so far"""

    best: Optional[dict[str, Any]] = None
    """Metrics of the best epoch so far (with its ``epoch``), by the objective's score"""

    last: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Metrics of the last finished epoch (``val_*``, or ``train_*`` without validation)"""

    pruned: bool = False
    """Stopped early because the Optuna trial was pruned"""

    continued_from: Optional[str] = None
    """The job of a smaller budget this run continued (:mod:`xpm_train.budget`)"""

    def consider(self, epoch: int, record: dict[str, Any], objective: "Objective") -> bool:
        """Make ``record`` (an epoch's metrics) the best when its score beats
        the best so far; a non-finite score never does (:meth:`Objective.better`)."""
        if not objective.better(record[objective.score], self.best[objective.score] if self.best else None):
            return False
        self.best = {"epoch": epoch, **record}
        return True

    def next_epoch(self) -> None:
        """The epoch is over: the next one starts at its first batch, with empty sums."""
        self.epoch += 1
        self.batch = 0
        self.sums, self.parts, self.samples = {}, {}, 0

    def drop_partial_sums(self) -> None:
        """On a rank other than 0, resumed from rank 0's checkpoint: the partial
        sums saved are the ranks' total, which rank 0 holds; this rank's are
        zeros of the same keys (not none: an epoch resumed at its last batch
        runs no batch on it, and every rank sums the same tensors at its end)."""
        import torch

        self.sums = {k: torch.zeros_like(torch.as_tensor(v)) for k, v in self.sums.items()}
        self.parts, self.samples = {}, 0

    def as_checkpoint(self, elapsed: float) -> dict[str, Any]:
        """The dict ``last.pt`` holds (plain values: readable without this class)."""
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, "elapsed": elapsed}

    @classmethod
    def from_checkpoint(cls, run: dict[str, Any]) -> "RunState":
        """The state saved by :meth:`as_checkpoint` (or by an older Learn)."""
        if "parts" not in run:  # a checkpoint of the classification-only Learn (before objectives)
            import torch

            old = run["sums"]
            run = {**run, "parts": {k: old[k] for k in ("ce", "kl") if k in old}, "samples": old["samples"],
                   "sums": ({"loss": torch.tensor(float(old["loss"])), "correct": torch.tensor(int(old["correct"])),
                             "n": torch.tensor(int(old["samples"]))} if old["samples"] else {})}
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in run.items() if k in known})


def snapshot(net, optimizer, run: RunState, elapsed: float) -> dict[str, Any]:
    """Everything a resumed run needs (weights, optimizer, RNG, counters)."""
    import torch

    return {
        "model": net.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "run": run.as_checkpoint(elapsed),
    }


def restore(state: dict[str, Any], net, optimizer) -> RunState:
    """Load a :func:`snapshot` into ``net`` and ``optimizer``; returns the counters."""
    import torch

    net.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng_cpu"])
    if state.get("rng_cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    return RunState.from_checkpoint(state["run"])


def summary(run: RunState, has_val: bool, wall: float, objective: Optional["Objective"] = None,
            directions: Optional[dict[str, Any]] = None) -> "Summary":
    """``final.json`` (schema: :mod:`xpm_train.summary`; ``objective``: Classification when None;
    ``directions``: of the metrics logged besides the objective's, e.g. distillation's)."""
    from .objectives import Classification
    from .summary import PARTS, key, make, split_directions

    objective = objective if objective is not None else Classification.C()

    split = "val" if has_val else "train"
    best = run.best or {}
    declared = split_directions({**objective.directions, **(directions or {})}, ("train", split), PARTS)
    return make(
        key(split, objective.score), best.get(objective.score), objective.direction, declared,
        final=run.last,
        best={key(split, k): v for k, v in best.items() if k != "epoch"},
        best_epoch=best.get("epoch"),
        epochs=run.epoch,
        steps=run.step,
        wall_time=wall,
        samples_per_s=run.samples_seen / wall if wall > 0 else None,
        pruned=run.pruned,
        **({"continued_from": run.continued_from} if run.continued_from else {}),
    )
