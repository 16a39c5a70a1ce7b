"""xpm-train: reproducible, deduplicated and scalable deep-learning experiments
on top of experimaestro.

The public API has two tiers:

- here, ``__all__``: what a plan names (datasets, models, objectives,
  optimisers, tasks, plan helpers, launchers, tuning, tracking, results);
- :mod:`xpm_train.extend`: what you need to bring your own dataset, model or
  objective (docs/extending.md).

Every other module is internal. Names are imported on first use so that
``import xpm_train`` stays cheap in every task process.
"""

from __future__ import annotations

import importlib

# name -> (module that defines it, its name there)
_EXPORTS = {
    # data
    "Digits": "xpm_train.data",
    "HeldOut": "xpm_train.data",
    "MNIST": "xpm_train.data",
    "FashionMNIST": "xpm_train.data",
    "CIFAR10": "xpm_train.data",
    "Synthetic": "xpm_train.data",
    "Diabetes": "xpm_train.data",
    "ImageFolder": "xpm_train.data",
    "prepare_digits": "xpm_train.data",
    "prepare_mnist": "xpm_train.data",
    "prepare_fashion_mnist": "xpm_train.data",
    "prepare_cifar10": "xpm_train.data",
    "prepare_image_folder": "xpm_train.data",
    "ImageFolderError": "xpm_train.data",
    "Streaming": "xpm_train.data.stream",
    "prepare_for_streaming": "xpm_train.data.stream",
    "mirror_source": "xpm_train.data",
    "MNIST_SOURCE": "xpm_train.data",
    "FASHION_MNIST_SOURCE": "xpm_train.data",
    # objectives
    "Classification": "xpm_train.objectives",
    "Regression": "xpm_train.objectives",
    "Reconstruction": "xpm_train.objectives",
    # models
    "MLP": "xpm_train.models",
    "CNN": "xpm_train.models",
    "ResNet": "xpm_train.models",
    "SavedModel": "xpm_train.models",
    "Augment": "xpm_train.augment",
    # optimisation
    "SGD": "xpm_train.optim",
    "Adam": "xpm_train.optim",
    "AdamW": "xpm_train.optim",
    "ConstantRate": "xpm_train.optim",
    "StepDecay": "xpm_train.optim",
    "Cosine": "xpm_train.optim",
    # tasks
    "Learn": "xpm_train.learn",
    "Evaluate": "xpm_train.evaluate",
    "Distillation": "xpm_train.distill",
    # your own training function
    "training_function": "xpm_train.custom",
    "report": "xpm_train.reporting",
    "Result": "xpm_train.context",
    # Lightning (optional dependency: imported when used)
    "LightningFit": "xpm_train.lightning",
    "ModuleConfig": "xpm_train.lightning",
    "DataModuleConfig": "xpm_train.lightning",
    "require_lightning": "xpm_train.lightning",
    "CallbackConfig": "xpm_train.lightning",
    "LoggerConfig": "xpm_train.lightning",
    "lightning_predict": "xpm_train.lightning",
    # the plan: params.yaml checks, end of run
    "positive": "xpm_train.plan",
    "fraction": "xpm_train.plan",
    "non_empty": "xpm_train.plan",
    "grid": "xpm_train.plan",
    "finish": "xpm_train.plan",
    "job_of": "xpm_train.plan",
    "print_table": "xpm_train.plan",
    "Positive": "xpm_train.checks",
    "Range": "xpm_train.checks",
    # results
    "load": "xpm_train.analysis",
    "ExportBest": "xpm_train.export",
    "load_export": "xpm_train.export",
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
    "TPE": "xpm_train.tune",
    "MedianPruner": "xpm_train.tune",
    "NoPruner": "xpm_train.tune",
    "SuccessiveHalving": "xpm_train.tune",
    "ASHA": "xpm_train.tune",
    "Hyperband": "xpm_train.tune",
    "load_trials": "xpm_train.tune.report",
    "format_trials": "xpm_train.tune.report",
    # tracking
    "setup_tracking": ("xpm_train.tracking", "setup"),
    "MLflowTracking": "xpm_train.tracking.mlflow_sink",
}

_INTERNAL = {
    "Constant": "xpm_train.optim",  # ConstantRate's old name
    "LoadWeights": "xpm_train.models",
    "Tune": "xpm_train.tune",
    "Context": "xpm_train.context",
    "ImageArrays": "xpm_train.data.base",
    "ImageDataset": "xpm_train.data.base",
    "Dataset": "xpm_train.data.base",
    "Objective": "xpm_train.objectives",
    "Model": "xpm_train.models",
}
"""Still importable from here (older plans and pinned IDs name them) but not
the plan's API: a plan never names the configs that optimize(), Learn or a
training function build themselves; the interfaces are in xpm_train.extend"""

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    where = _EXPORTS.get(name) or _INTERNAL.get(name)
    if where is None:
        raise AttributeError(f"module 'xpm_train' has no attribute {name!r}")
    module, attribute = (where, name) if isinstance(where, str) else where
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__():
    return __all__
