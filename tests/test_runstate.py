"""Learn's run state: the best epoch ignores non-finite scores, and a
diverged training loss stops the run with a message saying how to fix it."""

from __future__ import annotations

import math

import pytest
import torch

from xpm_train.objectives import Classification, Regression
from xpm_train.runstate import RunState, summary
from xpm_train.runtime import check_loss
from xpm_train.summary import NonFiniteResult

NAN = float("nan")


@pytest.mark.parametrize("objective, scores, best_epoch", [
    (Classification.C(), [NAN, 0.5, 0.4, NAN, math.inf], 1),
    (Regression.C(), [NAN, 2.0, -math.inf, 1.5, NAN], 3),
])
def test_a_non_finite_score_is_never_the_best(objective, scores, best_epoch):
    run = RunState()
    chosen = [run.consider(epoch, {objective.score: score, "loss": 1.0}, objective)
              for epoch, score in enumerate(scores)]
    assert run.best["epoch"] == best_epoch, chosen
    assert not chosen[0] and chosen[best_epoch]
    assert summary(run, True, 1.0, objective)["score"] == scores[best_epoch]


def test_no_finite_score_leaves_no_best():
    run = RunState()
    assert not run.consider(0, {"accuracy": NAN}, Classification.C())
    assert run.best is None and summary(run, True, 1.0)["score"] is None  # refused when written


def test_a_non_finite_loss_stops_the_run_with_epoch_step_and_fix():
    sums = {"loss": torch.tensor(NAN), "correct": torch.tensor(3), "n": torch.tensor(8)}
    with pytest.raises(NonFiniteResult) as failure:
        check_loss(sums, epoch=3, step=70, checked_every=50)
    message = str(failure.value)
    assert "non-finite" in message and "epoch 3" in message and "step 70" in message
    assert "learning rate" in message and "grad_clip" in message and "ends failed" in message


def test_finite_sums_pass():
    check_loss({}, epoch=0, step=0, checked_every=50)
    check_loss({"loss": torch.tensor(1.5), "sse": torch.ones(3)}, epoch=0, step=10, checked_every=50)
    with pytest.raises(NonFiniteResult):
        check_loss({"loss": torch.tensor(1.5), "sse": torch.tensor([1.0, math.inf])}, 0, 10, 50)


def test_the_job_a_run_continued_survives_a_resume_and_reaches_the_summary():
    from xpm_train.runstate import RunState, summary

    run = RunState.from_checkpoint(RunState(epoch=3, continued_from="xpm_train.learn.learn/abc").as_checkpoint(1.0))
    assert run.continued_from == "xpm_train.learn.learn/abc"
    assert summary(run, True, 1.0)["continued_from"] == "xpm_train.learn.learn/abc"
    assert "continued_from" not in summary(RunState(), True, 1.0)


def test_a_rank_resumed_at_an_epoch_s_last_batch_sums_the_same_tensors_as_rank_0():
    """Rank 1 of a 2-rank Learn resumed from a checkpoint saved after the last
    batch of an epoch (Slurm's SIGUSR1 at that step) runs no batch before the
    epoch's end: its partial sums must be zeros of rank 0's keys, not none (it
    failed with KeyError: 'n' and rank 0 with a closed connection, seen under
    Slurm's time limit in tests/reliability/test_slurm_faults.py)."""
    objective = Classification.C()
    saved = objective.sums(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0]))
    run = RunState(epoch=4, batch=8, step=40, sums=dict(saved), samples=2)
    run.drop_partial_sums()
    assert run.sums.keys() == saved.keys() and run.samples == 0
    assert all(v.dtype == saved[k].dtype and not v.any() for k, v in run.sums.items())
    assert objective.metrics(run.sums) == {"loss": 0.0, "accuracy": 0.0}
