"""Importing the data module stays cheap: no torch, torchvision or scikit-learn."""

import subprocess
import sys


def test_import_does_not_load_heavy_modules():
    code = (
        "import sys, xpm_train.data\n"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'sklearn') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"import xpm_train.data loaded {result.stdout.strip()}"


def test_public_names_exist():
    import xpm_train.data as data

    assert all(hasattr(data, name) for name in data.__all__)


def test_a_built_in_dataset_is_one_module():
    """Source, reader, configs, prepare function and synthetic writer of a
    downloadable dataset live in its own module (issue 27 item 5): adding one
    is one file, not a line in each layer."""
    import xpm_train.data as data

    owners = {
        "xpm_train.data.mnist": ("MNIST_SOURCE", "FASHION_MNIST_SOURCE", "read_idx", "write_idx", "MNIST",
                                 "FashionMNIST", "prepare_mnist", "prepare_fashion_mnist", "write_idx_dataset"),
        "xpm_train.data.cifar": ("CIFAR10_SOURCE", "read_cifar10_archive", "write_cifar10_archive", "CIFAR10",
                                 "prepare_cifar10", "write_cifar10_dataset"),
        "xpm_train.data.digits": ("Digits", "prepare_digits"),
    }
    for module, names in owners.items():
        for name in names:
            value = getattr(data, name)
            defined = value.__module__ if callable(value) else module  # a source: where xpm_train.data has it from
            assert defined == module and getattr(sys.modules[module], name) is value, f"{name} is not in {module}"


def test_every_split_is_in_splits():
    """The split names, Splits, the seeded partitions and Learn's validation
    part have one module (the others import them from it)."""
    import xpm_train.data.splits as splits
    from xpm_train import extend, pipeline
    from xpm_train.data import Splits

    assert Splits is splits.Splits and pipeline.split_indices is splits.split_indices
    assert (extend.check_split, extend.stratified_split, extend.random_split) == (
        splits.check_split, splits.stratified_split, splits.random_split)
