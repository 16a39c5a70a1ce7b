"""Your LightningModule and LightningDataModule as typed configs.

A config declares the constructor arguments of your class as documented
``Param``s (they make the job ID) and builds the object in the task process::

    class Classifier(ModuleConfig):
        # its docstring: what the module is

        hidden: Param[int] = field(default=64, ignore_default=True)
        # its docstring: "Width of the hidden layer"

        def module(self):
            from mypackage.models import DigitsClassifier  # Lightning is imported here only

            return DigitsClassifier(hidden=self.hidden)

The config module must not import Lightning (the plan and every other task
import it): import your Lightning code inside :meth:`ModuleConfig.module`.
A constructor argument left out of the config takes its default and is not
part of the job ID: the task says so in a warning (see :func:`uncovered_arguments`).
"""

from __future__ import annotations

import importlib.util
import inspect
from typing import TYPE_CHECKING

from experimaestro import Config

from ..errors import UserError

if TYPE_CHECKING:
    import lightning


INSTALL = "pip install 'xpm-train[lightning]'"


class MissingLightning(UserError, ImportError):
    """PyTorch Lightning is not installed (it is an optional extra)."""


def require_lightning() -> None:
    """Raise :class:`MissingLightning` (one line, with the fix) unless
    ``lightning`` can be imported; cheap: nothing is imported."""
    try:
        found = importlib.util.find_spec("lightning") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingLightning(
            f"xpm_train.lightning needs PyTorch Lightning, which is not installed here: {INSTALL}"
        )


class ModuleConfig(Config):
    """A LightningModule (interface): declare its constructor arguments as
    ``Param``s and implement :meth:`module`."""

    def module(self) -> "lightning.LightningModule":
        """A freshly built LightningModule (called in the task process)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement module()")


class DataModuleConfig(Config):
    """A LightningDataModule (interface): declare its constructor arguments as
    ``Param``s and implement :meth:`datamodule`."""

    def datamodule(self) -> "lightning.LightningDataModule":
        """A freshly built LightningDataModule (called in the task process)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement datamodule()")


def uncovered_arguments(config: Config, built: object) -> list[str]:
    """Constructor arguments of ``built`` that are not Params of ``config``:
    they take their defaults and do not count in the job ID."""
    params = set(type(config).__xpmtype__.arguments)
    signature = inspect.signature(type(built).__init__)
    return [name for name, parameter in list(signature.parameters.items())[1:]
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
            and name not in params]
