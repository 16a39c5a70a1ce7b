"""xpm_train.trained: how a trained network is rebuilt (one owner)."""

import pytest

from xpm_train.extend import DataInfo, Model
from xpm_train.lightning.configs import ModuleConfig


class ElsewhereModel(Model):
    """A model whose module() imports code that is not installed here (as a
    LightningFit's ModuleConfig imports the user's Lightning code)."""

    def module(self, data):
        import xpm_train_not_installed_anywhere  # noqa: F401

        raise AssertionError("unreachable")


class Lightning(ModuleConfig):
    def module(self):
        import torch

        return torch.nn.Linear(3, 1)


def test_code_that_module_imports_and_is_missing_is_a_one_line_error():
    from xpm_train.errors import CodeNotFound
    from xpm_train.trained import rebuild

    with pytest.raises(CodeNotFound) as raised:
        rebuild(ElsewhereModel.C().instance(), DataInfo(shape=(4,), outputs=2), {}, "cannot load the export here")
    message = str(raised.value)
    assert message.startswith("cannot load the export here: its code is in module 'xpm_train_not_installed_anywhere'")
    assert "PYTHONPATH" in message and "\n" not in message and raised.value.__suppress_context__


def test_a_config_is_rebuilt_as_it_builds_itself():
    """rebuild asks the config (its build(info)), it does not sort the kinds of
    config itself: trained needs no import of models (SavedModel reads trained)."""
    import torch

    from xpm_train.models import MLP
    from xpm_train.trained import rebuild

    info = DataInfo(shape=(4,), outputs=2)
    model = MLP.C(hidden_dims=[]).instance()
    weights = {"1.weight": torch.ones(2, 4), "1.bias": torch.zeros(2)}
    assert torch.equal(rebuild(model, info, weights, "here")(torch.ones(1, 4)), torch.full((1, 2), 4.0))
    assert isinstance(rebuild(Lightning.C().instance(), None, torch.nn.Linear(3, 1).state_dict(), "here"),
                      torch.nn.Linear)

    class Built:  # any config that says how it builds its network
        def build(self, data):
            return torch.nn.Linear(data.features, data.outputs)

    assert rebuild(Built(), info, torch.nn.Linear(4, 2).state_dict(), "here").out_features == 2
