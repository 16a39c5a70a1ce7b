"""@training_function: Params from the signature, IDs, and the refusals."""

from __future__ import annotations

from typing import Annotated

import pytest

from xpm_train import Result, training_function
from xpm_train.checks import Positive
from xpm_train.custom import TrainingFunction, as_result


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
