"""Search spaces: parsed from params.yaml or built in Python, checked against
the Learn config, sampled (conditional entries) and applied to Learn."""

from __future__ import annotations

import optuna
import pytest

from xpm_train import Adam, Digits, Learn, MLP
from xpm_train.tune import (TPE, Categorical, Float, Int, MedianPruner, Random, Space, SpaceError, Study,
                            SuccessiveHalving)


def base(**values):
    return Learn.C(**{"model": MLP.C(), "data": Digits.C(split="train"), "optimizer": Adam.C(), **values})


YAML = {
    "optimizer.lr": {"float": [1e-4, 1e-1], "log": True},
    "model.hidden_dims": {"categorical": [[32], [64, 32]]},
    "model.dropout": {"float": [0.0, 0.5], "step": 0.1, "when": {"model.hidden_dims": [[64, 32]]}},
    "batch_size": {"int": [16, 128], "step": 16},
}


def test_yaml_and_python_forms_are_the_same_space():
    python = Space([
        Float("optimizer.lr", 1e-4, 1e-1, log=True),
        Categorical("model.hidden_dims", [[32], [64, 32]]),
        Float("model.dropout", 0.0, 0.5, step=0.1, when={"model.hidden_dims": [[64, 32]]}),
        Int("batch_size", 16, 128, step=16),
    ])
    assert Space.parse(YAML) == python
    assert Study("a", base(), Space.parse(YAML)).name == Study("a", base(), python).name


@pytest.mark.parametrize("entries, message", [
    ({"optimizer.lrr": {"float": [1e-4, 1]}}, "optimizer.lrr: Adam has no parameter 'lrr'"),
    ({"device": {"categorical": ["cpu"]}}, "device: 'device' of Learn is a Meta"),
    ({"model.widths": {"int": [1, 2]}}, "model.widths: MLP has no parameter 'widths'"),
    ({"optimizer.lr": {"float": [1, 0.1]}}, "optimizer.lr: low (1) is greater than high (0.1)"),
    ({"optimizer.lr": {"float": [0, 1], "log": True}}, "optimizer.lr: a log scale needs low > 0"),
    ({"optimizer.lr": {"float": [0.1, 1], "lg": True}}, "optimizer.lr: unknown key(s) ['lg']"),
    ({"optimizer.lr": {"float": [0.1]}}, "optimizer.lr: float needs [low, high]"),
    ({"batch_size": {"int": [1.5, 8]}}, "batch_size: low and high must be integers"),
    ({"batch_size": {"categorical": []}}, "batch_size: choices must be a non-empty list"),
    ({"batch_size": {"categorical": [{"a": 1}]}}, "batch_size: choice {'a': 1} is not a number"),
    ({"batch_size": 32}, "batch_size: expected a mapping"),
    ({"model.dropout": {"float": [0, 0.5], "when": {"model.hidden_dims": [[32]]}}},
     "model.dropout: its condition refers to 'model.hidden_dims'"),
    ({}, "the search space is empty"),
])
def test_validation_errors_name_the_entry(entries, message):
    with pytest.raises(SpaceError) as error:
        Study("a", base(), Space.parse(entries))
    assert message in str(error.value)


def test_conditional_entries_are_sampled_only_when_their_condition_holds():
    space = Space.parse(YAML)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        values = space.sample(trial)
        study.tell(trial, 0.0)
        deep = values["model.hidden_dims"] == [64, 32]
        assert ("model.dropout" in values) == deep
        assert values["batch_size"] % 16 == 0 and 1e-4 <= values["optimizer.lr"] <= 1e-1
        assert space.decode(trial.params) == values  # lists come back from their stored JSON text
        seen.add(deep)
    assert seen == {True, False}


def test_apply_sets_the_params_on_a_copy():
    learn = base(epochs=3)
    trained = Space.parse(YAML).apply(learn, {"optimizer.lr": 0.01, "model.hidden_dims": [64, 32],
                                              "batch_size": 32})
    assert (trained.optimizer.lr, trained.model.hidden_dims, trained.batch_size, trained.epochs) == \
        (0.01, [64, 32], 32, 3)
    assert learn.optimizer.lr == 1e-3 and learn.model.hidden_dims == [128]  # base untouched
    same = base(epochs=3, batch_size=32, optimizer=Adam.C(lr=0.01), model=MLP.C(hidden_dims=[64, 32]))
    assert trained.__identifier__().all == same.__identifier__().all


def test_study_name_covers_what_changes_results():
    space = Space.parse(YAML)
    name = Study("s", base(), space).name
    assert name.startswith("s-") and name == Study("s", base(), Space.parse(YAML)).name
    assert name == Study("s", base(device="cpu"), space).name  # Meta: same study
    others = [
        Study("s", base(epochs=5), space),
        Study("s", base(), space, sampler=TPE.C(seed=1)),
        Study("s", base(), space, sampler=Random.C()),
        Study("s", base(), space, pruner=SuccessiveHalving.C()),
        Study("s", base(), space, pruner=MedianPruner.C(n_warmup_steps=3)),
        Study("s", base(), space, metric="final.val_accuracy"),
        Study("s", base(), Space([Float("optimizer.lr", 1e-4, 1e-2, log=True)])),
    ]
    assert len({o.name for o in others} | {name}) == len(others) + 1


def test_enqueued_values_are_encoded_for_optuna():
    space = Space.parse(YAML)
    assert space.encode({"model.hidden_dims": [32], "optimizer.lr": 0.1}) == \
        {"model.hidden_dims": "[32]", "optimizer.lr": 0.1}
    with pytest.raises(SpaceError, match="epochs: not in the search space"):
        space.encode({"epochs": 3})


def test_evaluate_option_of_a_study():
    """``evaluate=True`` is another study; ``evaluate.*`` metrics need it and a
    held-out split; the studies made before the option kept their names."""
    space = Space.parse(YAML)
    plain = Study("s", base(), space)
    assert "evaluate" not in plain.content()  # the names of earlier studies are unchanged
    assert Study("s", base(), space, evaluate=True).name != plain.name
    Study("s", base(), space, evaluate=True, metric="evaluate.top5_accuracy")
    with pytest.raises(ValueError, match="evaluate=True"):
        Study("s", base(), space, metric="evaluate.accuracy")
    with pytest.raises(ValueError, match="val_fraction"):
        Study("s", base(val_fraction=0.0), space, evaluate=True)


def test_held_out_is_the_part_learn_validates_on():
    import torch

    from xpm_train import HeldOut, Synthetic
    from xpm_train.pipeline import split_indices

    train = Synthetic.C(split="train", num_samples=50)
    learn = Learn.C(model=MLP.C(), data=train, optimizer=Adam.C(), val_fraction=0.2, split_seed=3)
    held_out = learn.held_out()
    assert held_out.__identifier__().all == HeldOut.C(data=train, fraction=0.2, seed=3).__identifier__().all
    arrays, part = train.instance().arrays(), held_out.instance().arrays()
    _, indices = split_indices(50, 0.2, 3)
    assert len(part) == 10 and torch.equal(part.labels, arrays.labels[indices])
    assert torch.equal(part.images, arrays.images[indices])
    with pytest.raises(ValueError, match="val_fraction=0"):
        Learn.C(model=MLP.C(), data=train, optimizer=Adam.C(), val_fraction=0.0).held_out()


def test_options_are_keyword_only_as_in_optuna():
    """``log``/``step``/``when`` by name (Optuna's ``suggest_float(name, low, high, *, step, log)``),
    and a study's options (Optuna's ``create_study(*, ...)``)."""
    import inspect

    from xpm_train.tune import optimize

    with pytest.raises(TypeError):
        Float("optimizer.lr", 1e-4, 1e-1, True)
    with pytest.raises(TypeError):
        Int("batch_size", 16, 128, False, 16)
    with pytest.raises(TypeError):
        Categorical("model.hidden_dims", [[32]], {})
    with pytest.raises(TypeError):
        Study("s", base(), Space([Float("optimizer.lr", 1e-4, 1e-1)]), TPE.C())
    options = inspect.signature(optimize).parameters
    assert [name for name, p in options.items() if p.kind != p.KEYWORD_ONLY] == ["study", "n_trials"]


def test_the_tuning_loop_uses_public_optuna_api_only():
    """No private attribute of another object (Optuna's ``_storage``, ``_trial_id``...) in xpm_train/tune."""
    import ast
    from pathlib import Path

    import xpm_train.tune

    private = [f"{path.name}:{node.lineno}: .{node.attr}"
               for path in sorted(Path(xpm_train.tune.__file__).parent.glob("*.py"))
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
               and not (isinstance(node.value, ast.Name) and node.value.id == "self")]
    assert not private, private
