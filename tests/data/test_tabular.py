"""Diabetes: scikit-learn's table, offline, split and normalised as documented."""

import numpy as np
import pytest


def test_diabetes_is_sklearns_table():
    from sklearn.datasets import load_diabetes

    from xpm_train import Diabetes

    train, test = (Diabetes.C(split=s).instance().arrays() for s in ("train", "test"))
    assert (len(train), len(test)) == (354, 88) and train.shape == (10,) and train.num_classes is None
    bunch = load_diabetes(scaled=False)
    features = np.concatenate([train.inputs.numpy(), test.inputs.numpy()])
    targets = np.concatenate([train.targets.numpy(), test.targets.numpy()])
    order = np.lexsort(features.T[::-1])
    expected = np.lexsort(bunch.data.T[::-1])
    np.testing.assert_allclose(features[order], bunch.data[expected], rtol=1e-6)
    np.testing.assert_allclose(targets[order], bunch.target[expected], rtol=1e-6)
    assert train.mean == pytest.approx(tuple(train.inputs.double().mean(0).tolist()), rel=1e-5)
    assert Diabetes.C(split="train").instance().targets() == "values"
