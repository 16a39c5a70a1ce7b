"""xpm_train.trained: how a trained network is rebuilt (one owner)."""

import pytest

from xpm_train.extend import DataInfo, Model


class ElsewhereModel(Model):
    """A model whose module() imports code that is not installed here (as a
    LightningFit's ModuleConfig imports the user's Lightning code)."""

    def module(self, data):
        import xpm_train_not_installed_anywhere  # noqa: F401

        raise AssertionError("unreachable")


def test_code_that_module_imports_and_is_missing_is_a_one_line_error():
    from xpm_train.errors import CodeNotFound
    from xpm_train.trained import rebuild

    with pytest.raises(CodeNotFound) as raised:
        rebuild(ElsewhereModel.C().instance(), DataInfo(shape=(4,), outputs=2), {}, "cannot load the export here")
    message = str(raised.value)
    assert message.startswith("cannot load the export here: its code is in module 'xpm_train_not_installed_anywhere'")
    assert "PYTHONPATH" in message and "\n" not in message and raised.value.__suppress_context__
