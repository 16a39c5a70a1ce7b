"""The bundled scikit-learn digits: shapes, split, determinism, identity."""

from __future__ import annotations

import numpy as np
import pytest

from xpm_train.data import Digits, prepare_digits
from xpm_train.data.digits import DIGITS_SPLIT_SEED, DIGITS_TEST_FRACTION, load_digits_arrays
from xpm_train.data.splits import stratified_split


@pytest.fixture(scope="module")
def digits():
    splits = prepare_digits()
    return splits.train.instance().arrays(), splits.test.instance().arrays()


def test_shapes_and_types(digits):
    import torch

    train, test = digits
    assert (len(train), len(test)) == (1438, 359)
    for arrays in digits:
        assert arrays.shape == (1, 8, 8) and arrays.num_classes == 10
        assert arrays.images.dtype == torch.uint8 and arrays.labels.dtype == torch.int64
        assert int(arrays.images.max()) == 255 and int(arrays.images.min()) == 0
        assert set(arrays.labels.tolist()) == set(range(10))


def test_split_is_stratified_disjoint_and_complete():
    _, labels = load_digits_arrays()
    split = stratified_split(labels, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)
    assert not set(split["train"]) & set(split["test"])
    assert sorted(np.concatenate([split["train"], split["test"]])) == list(range(len(labels)))
    per_class = np.bincount(labels[split["test"]]) / np.bincount(labels)
    assert np.all(np.abs(per_class - 0.2) < 0.02)


def test_deterministic_and_stats_from_train(digits):
    again = Digits.C(split="test").instance().arrays()
    assert bool((again.images == digits[1].images).all()) and bool((again.labels == digits[1].labels).all())
    train = digits[0].images.double() / 255
    assert digits[1].mean == digits[0].mean
    assert digits[0].mean[0] == pytest.approx(float(train.mean()), abs=1e-12)
    assert digits[0].std[0] == pytest.approx(float(train.std(unbiased=False)), abs=1e-12)


def test_identifiers():
    def ident(config):
        return config.__xpm__.identifier.all

    assert ident(Digits.C(split="train")) == ident(Digits.C(split="train"))
    assert ident(Digits.C(split="train")) != ident(Digits.C(split="test"))


def test_unknown_split_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown split 'valid'.*'train', 'test'"):
        Digits.C(split="valid").instance()


def test_digits_read_without_sklearn_equal_sklearn_load_digits():
    """The bundled CSV is read directly (no scikit-learn import in task
    processes); the arrays are those of ``sklearn.datasets.load_digits``."""
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    images, labels = load_digits_arrays()
    bunch = load_digits()
    assert np.array_equal(labels, bunch.target)
    assert np.array_equal(images[:, 0], np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8))
    code = ("import sys; from xpm_train.data.digits import load_digits_arrays; load_digits_arrays(); "
            "print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
