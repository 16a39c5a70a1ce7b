"""MNIST / Fashion-MNIST / CIFAR-10 configs on real-format synthetic files, and Synthetic."""

from __future__ import annotations

import numpy as np
import pytest

from xpm_train.data import (
    CIFAR10,
    MNIST,
    FashionMNIST,
    Synthetic,
    prepare_cifar10,
    prepare_fashion_mnist,
    prepare_mnist,
    write_cifar10_dataset,
    write_idx_dataset,
)
from xpm_train.data.synthetic import synthetic_arrays


def ident(config):
    return config.__xpm__.identifier.all


@pytest.mark.parametrize("prepare, name", [(prepare_mnist, "mnist"), (prepare_fashion_mnist, "fashion-mnist")])
def test_idx_datasets(tmp_path, prepare, name):
    source = write_idx_dataset(tmp_path / "mirror", 80, 20, seed=3, name=name)
    splits = prepare(root=tmp_path / "data", source=source)
    assert splits.train.folder == tmp_path / "data" / name
    train, test = splits.train.instance().arrays(), splits.test.instance().arrays()
    assert (len(train), len(test)) == (80, 20) and train.shape == (1, 28, 28) and train.num_classes == 10
    expected, labels = synthetic_arrays("test", 20, (1, 28, 28), 10, 3)
    np.testing.assert_array_equal(test.images.numpy(), expected)
    np.testing.assert_array_equal(test.labels.numpy(), labels)
    assert test.mean == train.mean and test.std == train.std
    images = train.images.double() / 255
    assert train.mean[0] == pytest.approx(float(images.mean()), abs=1e-12)
    assert train.std[0] == pytest.approx(float(images.std(unbiased=False)), abs=1e-12)


def test_cifar10(tmp_path):
    source = write_cifar10_dataset(tmp_path / "mirror", 50, 10, seed=1)
    splits = prepare_cifar10(root=tmp_path / "data", source=source)
    train, test = splits.train.instance().arrays(), splits.test.instance().arrays()
    assert (len(train), len(test)) == (50, 10) and test.shape == (3, 32, 32)
    expected, labels = synthetic_arrays("train", 50, (3, 32, 32), 10, 1)
    np.testing.assert_array_equal(train.images.numpy(), expected)
    np.testing.assert_array_equal(train.labels.numpy(), labels)
    assert len(train.mean) == 3 and test.std == train.std
    assert len(train.subset(train.labels == 0)) == int((train.labels == 0).sum())


def test_identity_ignores_the_folder_but_not_split_or_dataset(tmp_path):
    assert ident(MNIST.C(split="train", folder=tmp_path / "a")) == ident(MNIST.C(split="train", folder=tmp_path / "b"))
    assert ident(MNIST.C(split="train", folder=tmp_path)) != ident(MNIST.C(split="test", folder=tmp_path))
    assert ident(MNIST.C(split="train", folder=tmp_path)) != ident(FashionMNIST.C(split="train", folder=tmp_path))
    assert ident(CIFAR10.C(split="test", folder=tmp_path)) != ident(MNIST.C(split="test", folder=tmp_path))


def test_missing_files_say_how_to_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="prepare_cifar10"):
        CIFAR10.C(split="train", folder=tmp_path).instance().arrays()


def test_bad_split(tmp_path):
    with pytest.raises(ValueError, match="MNIST: unknown split 'val'"):
        MNIST.C(split="val", folder=tmp_path).instance()


def test_synthetic_is_deterministic_and_learnable():
    config = dict(num_samples=200, channels=3, height=6, width=5, num_classes=5, seed=7)
    train = Synthetic.C(split="train", **config).instance().arrays()
    test = Synthetic.C(split="test", **config).instance().arrays()
    again = Synthetic.C(split="test", **config).instance().arrays()
    assert train.shape == (3, 6, 5) and len(train) == 200 and train.num_classes == 5
    assert bool((test.images == again.images).all()) and not bool((test.images == train.images).all())
    assert test.mean == train.mean
    assert np.bincount(train.labels.numpy()).tolist() == [40] * 5
    # nearest class centroid (learnt on train) classifies test nearly perfectly
    x_train, x_test = (a.images.double().flatten(1) for a in (train, test))
    centroids = np.stack([x_train[train.labels == k].mean(0).numpy() for k in range(5)])
    distances = ((x_test.numpy()[:, None, :] - centroids[None]) ** 2).sum(-1)
    assert (distances.argmin(1) == test.labels.numpy()).mean() > 0.95
    assert ident(Synthetic.C(split="train", **config)) != ident(Synthetic.C(split="train", **{**config, "seed": 8}))
