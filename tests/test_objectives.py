"""Objectives: their metrics agree with scikit-learn, their score says which way is better,
and a wrong objective is refused when the plan submits it."""

import numpy as np
import pytest
import torch

from xpm_train.models import Model
from xpm_train.objectives import Classification, ObjectiveError, Reconstruction, Regression
from xpm_train.summary import known_direction as direction_of


def summed(objective, outputs, targets, batch=7):
    sums = {}
    for begin in range(0, len(targets), batch):  # as Learn and Evaluate do: sums over batches
        for key, value in objective.sums(outputs[begin:begin + batch], targets[begin:begin + batch]).items():
            sums[key] = sums[key] + value if key in sums else value
    return objective.metrics(sums)


@pytest.mark.parametrize("target_shape", [(), (3,)])
def test_regression_metrics_match_sklearn(target_shape):
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    generator = torch.Generator().manual_seed(0)
    targets = torch.randn(50, *target_shape, generator=generator) * 10 + 3
    outputs = (targets + torch.randn(targets.shape, generator=generator)).reshape(50, -1)
    metrics = summed(Regression.C().instance(), outputs, targets)
    y, p = targets.reshape(50, -1).numpy(), outputs.numpy()
    assert metrics["mse"] == pytest.approx(mean_squared_error(y, p), rel=1e-6)
    assert metrics["mae"] == pytest.approx(mean_absolute_error(y, p), rel=1e-6)
    assert metrics["r2"] == pytest.approx(r2_score(y, p), rel=1e-6)
    assert metrics["loss"] == pytest.approx(metrics["mse"])
    l1 = summed(Regression.C(criterion="l1").instance(), outputs, targets)
    assert l1["loss"] == pytest.approx(l1["mae"])


def test_classification_metrics():
    outputs = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 1, 1, 1])
    metrics = summed(Classification.C().instance(), outputs, labels, batch=3)
    assert metrics["accuracy"] == 0.75
    assert metrics["loss"] == pytest.approx(torch.nn.functional.cross_entropy(outputs, labels).item(), rel=1e-6)


def test_reconstruction_bce_measures_the_sigmoid():
    target = torch.rand(6, 1, 2, 2)
    logits = torch.randn(6, 4)
    metrics = summed(Reconstruction.C(criterion="bce").instance(), logits, target, batch=4)
    expected = ((logits.sigmoid() - target.reshape(6, 4)) ** 2).mean().item()
    assert metrics["mse"] == pytest.approx(expected, rel=1e-5)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target.reshape(6, 4)).item()
    assert metrics["loss"] == pytest.approx(bce, rel=1e-5)


def test_scores_and_directions():
    assert (Classification.score, Classification.direction) == ("accuracy", "maximize")
    assert (Regression.score, Regression.direction) == ("mse", "minimize")
    regression = Regression.C().instance()
    assert regression.better(1.0, 2.0) and not regression.better(2.0, 1.0) and regression.better(5.0, None)
    assert direction_of("best.val_mse") == "minimize" and direction_of("eval_accuracy") == "maximize"
    assert direction_of("r2") == "maximize" and direction_of("lr") is None
    with pytest.raises(ValueError, match="one of 'mse', 'l1'"):
        Regression.C(criterion="huber")


def test_wrong_objective_is_refused_at_submit_time():
    from xpm_train import MLP, Adam, Diabetes, Digits, Learn

    regression_data = Learn.C(model=MLP.C(), data=Diabetes.C(split="train"), optimizer=Adam.C(lr=1e-3))
    with pytest.raises(ObjectiveError, match=r"Learn\(model=MLP, data=Diabetes\).*objective=Regression.C\(\)"):
        regression_data.__xpm__.validate()
    labels_data = Learn.C(model=MLP.C(), data=Digits.C(split="train"), optimizer=Adam.C(lr=1e-3),
                          objective=Regression.C())
    with pytest.raises(ObjectiveError, match="objective=Classification.C()"):
        labels_data.__xpm__.validate()
    # an autoencoder ignores the targets
    Learn.C(model=MLP.C(), data=Digits.C(split="train"), optimizer=Adam.C(lr=1e-3),
            objective=Reconstruction.C()).__xpm__.validate()


def test_output_size_mismatch_is_one_line():
    from xpm_train import MLP
    from xpm_train.data.base import DataInfo

    info = DataInfo(shape=(10,), outputs=1)
    with pytest.raises(ObjectiveError, match=r"MLP: the network outputs 3 values.*Regression needs 1"):
        Regression.C().instance().check_outputs(torch.zeros(2, 3), info, MLP.C().instance())


def test_default_objective_keeps_ids():
    """Classification is the default: spelling it out gives the ID of a Learn without it."""
    from xpm_train import MLP, Adam, Digits, Learn

    def learn(**extra):
        return Learn.C(model=MLP.C(), data=Digits.C(split="train"), optimizer=Adam.C(lr=1e-3), **extra)

    implicit, explicit = learn(), learn(objective=Classification.C())
    other = learn(objective=Regression.C())
    ids = [c.__xpm__.identifier.all.hex() for c in (implicit, explicit, other)]
    assert ids[0] == ids[1] != ids[2]


def test_arrays_accept_float_features_and_targets():
    from xpm_train.extend import Arrays, feature_arrays

    features = np.random.default_rng(0).normal(5, 2, size=(20, 3))
    arrays = feature_arrays(features, np.arange(20.0), features)
    assert arrays.inputs.dtype == torch.float32 and arrays.num_classes is None and arrays.shape == (3,)
    assert arrays.mean == pytest.approx(tuple(features.mean(0)))
    with pytest.raises(ValueError, match="give num_classes"):
        Arrays(inputs=torch.zeros(4, 2), targets=torch.zeros(4, dtype=torch.long))


class Wide(Model):
    """A user's model that ignores data.outputs: one value too many."""

    def module(self, data):
        import math

        from torch import nn

        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(data.shape), data.outputs + 1))


class FromFile(Model):
    """A model that cannot be built before the job runs (it reads a file)."""

    def module(self, data):
        return torch.load("/nonexistent/model.pt")


def test_a_model_whose_output_size_does_not_fit_is_refused_at_submit_time():
    from xpm_train import MLP, Adam, Diabetes, Digits, Evaluate, HeldOut, Learn, Synthetic

    digits = Digits.C(split="train")
    wrong = Learn.C(model=Wide.C(), data=digits, optimizer=Adam.C(lr=1e-3))
    with pytest.raises(ObjectiveError, match=r"Wide: the network outputs 11 values.*Classification needs 10"
                                             r".*make module\(data\) end with data.outputs units"):
        wrong.__xpm__.validate()
    for objective, data, needs in ((Regression.C(), Diabetes.C(split="train"), 1),
                                   (Reconstruction.C(), Synthetic.C(split="train", height=4, width=4), 16)):
        with pytest.raises(ObjectiveError, match=f"needs {needs} "):
            Learn.C(model=Wide.C(), data=data, objective=objective, optimizer=Adam.C(lr=1e-3)).__xpm__.validate()
    with pytest.raises(ObjectiveError, match="needs 10"):
        Evaluate.C(model=Wide.C(), data=HeldOut.C(data=digits, fraction=0.1)).__xpm__.validate()
    # fitting models pass; a model that cannot be built before its job runs is checked when it starts
    Learn.C(model=MLP.C(), data=digits, optimizer=Adam.C(lr=1e-3)).__xpm__.validate()
    Learn.C(model=FromFile.C(), data=digits, optimizer=Adam.C(lr=1e-3)).__xpm__.validate()


def test_a_job_already_done_is_not_built_at_submit(tmp_path, monkeypatch):
    """A plan run again over cached jobs does not pay for the submit check
    (building the network imports torch in the plan): a job already done in the
    experiment's workspace is not checked, a job not done is."""
    from types import SimpleNamespace

    from xpm_train import Adam, Digits, Learn, jobfolder

    wrong = Learn.C(model=Wide.C(), data=Digits.C(split="train"), optimizer=Adam.C(lr=1e-3))
    xp = SimpleNamespace(workspace=SimpleNamespace(path=str(tmp_path)))
    monkeypatch.setattr(jobfolder, "current_experiment", lambda: xp)
    assert not jobfolder.done_in_current_workspace(wrong)
    with pytest.raises(ObjectiveError, match="needs 10"):
        wrong.__xpm__.validate()
    folder = jobfolder.job_path(tmp_path, jobfolder.job_id(wrong))
    folder.mkdir(parents=True)
    jobfolder.marker(folder, "done").touch()
    again = Learn.C(model=Wide.C(), data=Digits.C(split="train"), optimizer=Adam.C(lr=1e-3))
    assert jobfolder.done_in_current_workspace(again)
    again.__xpm__.validate()  # done: not built, not refused
    monkeypatch.setattr(jobfolder, "current_experiment", lambda: None)
    assert not jobfolder.done_in_current_workspace(again)  # outside an experiment: checked


def test_the_submit_check_leaves_the_plans_environment_as_it_was():
    """Building a network on the meta device makes torch write its default
    TORCHINDUCTOR_CACHE_DIR into os.environ (once per process: hence a fresh
    one); the plan's jobs inherit its environment, so the check must leave it
    as it found it."""
    import os
    import subprocess
    import sys

    probe = ("import os\n"
             "from xpm_train import MLP, Adam, Digits, Learn\n"
             "before = dict(os.environ)\n"
             "Learn.C(model=MLP.C(), data=Digits.C(split='train'), optimizer=Adam.C(lr=1e-3)).__xpm__.validate()\n"
             "print(sorted(set(os.environ.items()) ^ set(before.items())))\n")
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
