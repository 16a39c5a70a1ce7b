"""xpm-train: reproducible, deduplicated and scalable deep-learning experiments
on top of experimaestro.

The public API is listed in ``__all__``; names are imported on first use so
that ``import xpm_train`` stays cheap in every task process.
"""

from __future__ import annotations

import importlib

# name -> module that defines it
_EXPORTS = {
    # data
    "ImageArrays": "xpm_train.data.base",
    "ImageDataset": "xpm_train.data.base",
    "Digits": "xpm_train.data",
    "HeldOut": "xpm_train.data",
    "MNIST": "xpm_train.data",
    "FashionMNIST": "xpm_train.data",
    "CIFAR10": "xpm_train.data",
    "Synthetic": "xpm_train.data",
    "prepare_digits": "xpm_train.data",
    "prepare_mnist": "xpm_train.data",
    "prepare_fashion_mnist": "xpm_train.data",
    "prepare_cifar10": "xpm_train.data",
    "Dataset": "xpm_train.data.base",
    "Diabetes": "xpm_train.data",
    "ImageFolder": "xpm_train.data",
    "prepare_image_folder": "xpm_train.data",
    "Streaming": "xpm_train.data.stream",
    "prepare_for_streaming": "xpm_train.data.stream",
    # objectives
    "Objective": "xpm_train.objectives",
    "Classification": "xpm_train.objectives",
    "Regression": "xpm_train.objectives",
    "Reconstruction": "xpm_train.objectives",
    # models
    "Model": "xpm_train.models",
    "MLP": "xpm_train.models",
    "CNN": "xpm_train.models",
    "ResNet": "xpm_train.models",
    "LoadWeights": "xpm_train.models",
    "SavedModel": "xpm_train.models",
    "Augment": "xpm_train.augment",
    # optimisation
    "SGD": "xpm_train.optim",
    "Adam": "xpm_train.optim",
    "AdamW": "xpm_train.optim",
    "Constant": "xpm_train.optim",
    "StepDecay": "xpm_train.optim",
    "Cosine": "xpm_train.optim",
    # tasks
    "Learn": "xpm_train.learn",
    "Evaluate": "xpm_train.evaluate",
    "Distillation": "xpm_train.distill",
    # your own training function
    "training_function": "xpm_train.custom",
    "Result": "xpm_train.custom",
    "Context": "xpm_train.custom",
    # analysis
    "load": "xpm_train.analysis",
    "results": "xpm_train.analysis",
    "JobNotFound": "xpm_train.analysis",
    # launchers
    "find_launcher": "xpm_train.launchers",
    # hyper-parameter search
    "Study": "xpm_train.tune",
    "Space": "xpm_train.tune",
    "Float": "xpm_train.tune",
    "Int": "xpm_train.tune",
    "Categorical": "xpm_train.tune",
    "optimize": "xpm_train.tune",
    "Tune": "xpm_train.tune",
    "TPE": "xpm_train.tune",
    "MedianPruner": "xpm_train.tune",
    "SuccessiveHalving": "xpm_train.tune",
    "Hyperband": "xpm_train.tune",
    # tracking
    "MLflowTracking": "xpm_train.tracking.mlflow_sink",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'xpm_train' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
