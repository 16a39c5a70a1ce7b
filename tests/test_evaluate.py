"""Evaluate's metrics cross-checked against scikit-learn, computed
independently from the same network's logits on the whole split at once."""

from __future__ import annotations

import numpy as np
import pytest


def sklearn_metrics(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    from scipy.special import softmax
    from sklearn.metrics import accuracy_score, confusion_matrix, log_loss, recall_score, top_k_accuracy_score

    classes = list(range(num_classes))
    predicted = logits.argmax(axis=1)
    return {
        "loss": log_loss(labels, softmax(logits.astype(np.float64), axis=1), labels=classes),
        "accuracy": accuracy_score(labels, predicted),
        "top5_accuracy": top_k_accuracy_score(labels, logits, k=5, labels=classes),
        "per_class_accuracy": recall_score(labels, predicted, labels=classes, average=None, zero_division=0),
        "confusion_matrix": confusion_matrix(labels, predicted, labels=classes),
    }


def assert_match(ours: dict, theirs: dict, n: int) -> None:
    assert ours["samples"] == n
    assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
    assert ours["accuracy"] == pytest.approx(theirs["accuracy"], abs=1e-12)
    assert ours["top5_accuracy"] == pytest.approx(theirs["top5_accuracy"], abs=1e-12)
    assert np.allclose(ours["per_class_accuracy"], theirs["per_class_accuracy"], atol=1e-6)
    assert np.array_equal(np.array(ours["confusion_matrix"]), theirs["confusion_matrix"])


@pytest.mark.parametrize("batch_size", [7, 1024])  # several batches (last one partial) and one
def test_classification_metrics_match_scikit_learn(batch_size):
    import torch

    from xpm_train import Synthetic
    from xpm_train.measure import split_metrics
    from xpm_train.objectives import Classification
    from xpm_train.pipeline import DeviceData

    arrays = Synthetic.C(split="test", num_samples=203, num_classes=10, channels=3).instance().arrays()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))  # untrained: errors in every cell
    data = DeviceData(arrays, torch.device("cpu"))
    ours = split_metrics(net, data, Classification.C().instance(), batch_size=batch_size, details=True)

    with torch.no_grad():
        (images, labels), = data.batches(len(data))
        logits = net(images).numpy()
    theirs = sklearn_metrics(logits, labels.numpy(), 10)
    assert 0.05 < theirs["accuracy"] < 0.9 and theirs["confusion_matrix"].sum() == 203  # a non-trivial case
    assert_match(ours, theirs, 203)
