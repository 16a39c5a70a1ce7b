"""@training_function: Params from the signature, IDs, and the refusals."""

from __future__ import annotations

from typing import Annotated

import pytest

from xpm_train import Result, training_function
from xpm_train.checks import Positive
from xpm_train.context import as_result
from xpm_train.custom import TrainingFunction


@training_function
def fit(ctx, lr: Annotated[float, Positive()], hidden: int = 32, layers: list[int] = [8]) -> Result:
    """A function for the tests (never run here)."""
    return Result(objective=lr)


@training_function(version="2")
def fit_v2(ctx, lr: float, seed: int = 7) -> Result:
    return Result(objective=lr)


def ident(config):
    return config.__xpm__.identifier.all.hex()


def test_the_function_becomes_a_task_named_like_it():
    assert issubclass(fit, TrainingFunction)
    assert fit.__name__ == "fit" and fit.__module__ == __name__
    assert fit.__xpm_train_params__ == ("lr", "hidden", "layers")
    assert str(fit.__getxpmtype__().identifier) == f"{__name__}.fit"


def test_id_changes_with_params_not_with_meta():
    base = ident(fit.C(lr=0.1))
    assert ident(fit.C(lr=0.1, hidden=32, layers=[8], seed=0)) == base  # defaults are ignored
    assert ident(fit.C(lr=0.1, device="cpu", gpu_memory_fraction=0.5)) == base
    others = {ident(fit.C(lr=0.2)), ident(fit.C(lr=0.1, hidden=64)), ident(fit.C(lr=0.1, layers=[8, 8])),
              ident(fit.C(lr=0.1, seed=1))}
    assert base not in others and len(others) == 4


def test_version_and_own_seed():
    assert ident(fit_v2.C(lr=0.1)) != ident(fit.C(lr=0.1))
    assert fit_v2.C(lr=0.1).seed == 7  # the function's own seed parameter is the task's seed
    assert fit_v2.__xpm_train_params__ == ("lr", "seed")


def test_annotated_checks_run_when_the_config_is_built():
    with pytest.raises(ValueError, match="must be > 0"):
        fit.C(lr=-1.0)


def test_missing_param_is_an_error():
    with pytest.raises(Exception, match="lr"):
        ident(fit.C(hidden=3))


def local_function_factory():
    def inner(ctx, lr: float) -> Result:
        return Result(objective=lr)
    return inner


@pytest.mark.parametrize("function, message", [
    (local_function_factory(), "top level of a module"),
    (lambda ctx, x: x, "top level of a module"),
])
def test_unimportable_functions_are_refused(function, message):
    with pytest.raises(TypeError, match=message):
        training_function(function)


def unannotated(ctx, lr) -> Result: ...
def reserved(ctx, device: str) -> Result: ...
def variadic(ctx, *args: int) -> Result: ...
def no_context() -> Result: ...


@pytest.mark.parametrize("function, message", [
    (unannotated, "needs a type annotation"),
    (reserved, "'device' is reserved"),
    (variadic, "cannot be task parameters"),
    (no_context, "first parameter must be the context"),
])
def test_bad_signatures_are_refused(function, message):
    with pytest.raises(TypeError, match=message):
        training_function(function)


def test_results():
    assert as_result(0.5, fit) == Result(objective=0.5)
    assert as_result(Result(1, {"loss": 2}), fit) == Result(objective=1.0, metrics={"loss": 2.0})
    with pytest.raises(TypeError, match="must return xpm_train.Result"):
        as_result({"accuracy": 1.0}, fit)


def test_mytrain_resumed_after_its_last_epoch_returns_its_saved_score(monkeypatch):
    """The example resumed with no epoch left returns the score its checkpoint
    kept, not a placeholder (a cached 0.0, or a NaN that fails the job)."""
    import torch

    from helpers import REPO

    monkeypatch.syspath_prepend(str(REPO / "experiments" / "custom"))
    from mytrain import train

    class Done:  # a context whose checkpoint says the 2 epochs are done
        device, saved = torch.device("cpu"), None

        def load_checkpoint(self):
            net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4), torch.nn.ReLU(),
                                      torch.nn.Linear(4, 10))
            return {"model": net.state_dict(), "optimizer": torch.optim.Adam(net.parameters()).state_dict(),
                    "epoch": 1, "accuracy": 0.875}

        def save_model(self, net, data):
            self.saved = net

    ctx = Done()
    result = as_result(train.__xpm_train_function__(ctx, lr=0.01, hidden=4, epochs=2), train)
    assert result.objective == 0.875 and ctx.saved is not None


SIGNAL_AT = {"epoch": None}
"""The epoch at whose start :func:`signalled` sends SIGUSR1 to this process (None: never)"""


@training_function
def signalled(ctx, epochs: int = 3) -> Result:
    """Three epochs of a random walk, checkpointed after each; SIGUSR1 arrives
    inside epoch ``SIGNAL_AT["epoch"]`` (as Slurm's warning would)."""
    import os
    import signal

    import torch

    state = ctx.load_checkpoint() or {"epoch": -1, "value": 0.0, "rng": torch.get_rng_state()}
    torch.set_rng_state(state["rng"])
    value = state["value"]
    for epoch in range(state["epoch"] + 1, epochs):
        if epoch == SIGNAL_AT["epoch"]:
            SIGNAL_AT["epoch"] = None  # once
            os.kill(os.getpid(), signal.SIGUSR1)
        value += float(torch.randn(()))
        ctx.log.log(epoch=epoch, step=epoch, split="train", value=value)
        ctx.save_checkpoint({"epoch": epoch, "value": value, "rng": torch.get_rng_state()})
    return Result(objective=value)


def test_a_signal_stops_a_function_at_its_next_checkpoint_and_it_resumes_to_the_same_result(tmp_path):
    """SIGUSR1 (Slurm's time-limit warning; SIGTERM is handled alike) is
    caught from the job's start: the function stops once its next checkpoint
    is written (GracefulTimeout: the scheduler submits it again), and the
    run resumed from it returns the result of a straight run."""
    import json
    import signal

    from experimaestro import GracefulTimeout

    from test_learn import run

    config = signalled.C(device="cpu")
    run(tmp_path / "straight", config)
    SIGNAL_AT["epoch"] = 1
    before = signal.getsignal(signal.SIGUSR1)
    with pytest.raises(GracefulTimeout, match="stopped by SIGUSR1 after a checkpoint"):
        run(tmp_path / "stopped", signalled.C(device="cpu"))
    assert signal.getsignal(signal.SIGUSR1) == before  # the handlers are put back
    events = [json.loads(line) for line in (tmp_path / "stopped" / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["start", "checkpoint", "checkpoint", "preempted"], events
    assert events[-1]["signal"] == "SIGUSR1"
    run(tmp_path / "stopped", signalled.C(device="cpu"))
    finals = [json.loads((tmp_path / name / "final.json").read_text()) for name in ("straight", "stopped")]
    assert finals[0]["objective"] == finals[1]["objective"]
    resumed = [json.loads(line)["event"] for line in (tmp_path / "stopped" / "events.jsonl").read_text().splitlines()]
    assert resumed[4:] == ["start", "checkpoint", "end"], resumed  # only the last epoch ran again
