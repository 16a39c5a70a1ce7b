"""The plan's params.yaml and -c overrides as xpm_train.preflight reads them."""

import importlib.util

import pytest
import yaml

from helpers import REPO


def tune_plan_configuration():
    spec = importlib.util.spec_from_file_location("tune_plan_for_preflight", REPO / "experiments" / "tune" / "experiment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Configuration


def read(*overrides):
    """params.yaml of the tune plan with ``-c`` overrides, merged and validated as run-experiment does."""
    from experimaestro.experiments import cli
    from experimaestro.utils.config import deep_merge, from_dotlist

    import xpm_train.preflight  # noqa: F401 - installs the validation

    configuration = yaml.safe_load((REPO / "experiments" / "tune" / "params.yaml").read_text())
    deep_merge(configuration, from_dotlist(list(overrides)))
    return cli.validate_attrs(tune_plan_configuration(), configuration)


def test_a_search_space_mapping_is_overridden_from_the_command_line():
    """issue 26 item 17: -c reads a mapping as YAML, as it reads a list."""
    from xpm_train.tune import Space

    cfg = read("space={optimizer.lr: {float: [0.001, 0.1], log: true}, batch_size: {categorical: [16, 32]}}",
               "n_trials=3")
    assert cfg.space == {"optimizer.lr": {"float": [0.001, 0.1], "log": True},
                         "batch_size": {"categorical": [16, 32]}}
    assert cfg.n_trials == 3 and len(Space.parse(cfg.space).entries) == 2
    assert read("n_trials=4").space["optimizer.lr"]["log"] is True  # without -c space: the file's space


def test_a_mapping_that_is_not_yaml_is_refused_in_one_line():
    from xpm_train.preflight import ParamsError

    with pytest.raises(ParamsError, match="key 'space'"):
        read("space=[1, 2")
