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
A constructor argument that the config neither declares as a Param nor
passes (it takes its default) is not part of the job ID: the task says so in
a warning (see :func:`uncovered_arguments`); one the config computes from its
Params (``hidden=2 * self.width``) is not warned about.

:class:`CallbackConfig` and :class:`LoggerConfig` are the typed configs of
your own Lightning callbacks and loggers (``LightningFit(callbacks=...,
observers=..., loggers=...)``).
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

from experimaestro import Config

from ..errors import UserError, config_name

if TYPE_CHECKING:
    import lightning

T = TypeVar("T")
logger = logging.getLogger("xpm_train.lightning")


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

    def build(self, data=None) -> "lightning.LightningModule":
        """Its LightningModule (:meth:`module`; ``data`` unused), as a model
        config's :meth:`~xpm_train.models.Model.build`: how
        :func:`xpm_train.trained.rebuild` rebuilds a LightningFit's network."""
        return self.module()


class DataModuleConfig(Config):
    """A LightningDataModule (interface): declare its constructor arguments as
    ``Param``s and implement :meth:`datamodule`."""

    def datamodule(self) -> "lightning.LightningDataModule":
        """A freshly built LightningDataModule (called in the task process)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement datamodule()")


class CallbackConfig(Config):
    """A Lightning ``Callback`` (interface): declare its constructor arguments
    as ``Param``s and implement :meth:`callback`. In ``LightningFit(callbacks=[...])``
    (Params: it changes results, e.g. ``EarlyStopping``) or
    ``LightningFit(observers=[...])`` (Meta: it only watches, e.g. ``LearningRateMonitor``)."""

    def callback(self) -> "lightning.pytorch.Callback":
        """A freshly built callback (called in the task process)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement callback()")


class LoggerConfig(Config):
    """A Lightning ``Logger`` beside the job's own (interface, Meta in
    ``LightningFit(loggers=[...])``): implement :meth:`logger`."""

    def logger(self, folder: Path) -> "lightning.pytorch.loggers.Logger":
        """A freshly built logger (called in the task process); ``folder``
        (``<job>/loggers``) is where it should write, e.g. ``CSVLogger(save_dir=folder)``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement logger(folder)")


def built_with_arguments(build: Callable[[], T]) -> tuple[T, Optional[dict[str, Any]]]:
    """``build()`` and the arguments the built object's ``__init__`` received
    (defaults filled in), seen by a profile hook while ``build`` runs; None
    when that call was not seen (a C constructor, a wrapped ``__init__``)."""
    seen: dict[Any, dict[str, Any]] = {}

    def record(frame, event, arg):
        code = frame.f_code
        if event == "call" and code.co_name == "__init__" and code not in seen:
            count = code.co_argcount + code.co_kwonlyargcount
            seen[code] = {name: frame.f_locals.get(name) for name in code.co_varnames[:count]}

    previous = sys.getprofile()
    sys.setprofile(record)
    try:
        built = build()
    finally:
        sys.setprofile(previous)
    code = getattr(type(built).__init__, "__code__", None)
    return built, seen.get(code)


def same(value: Any, default: Any) -> bool:
    """``value`` is ``default`` (equality that never raises)."""
    if value is default:
        return True
    try:
        return bool(value == default)
    except Exception:  # an array's elementwise ==, a type refusing comparison
        return False


def uncovered_arguments(config: Config, built: object, received: Optional[dict[str, Any]] = None) -> list[str]:
    """Constructor arguments of ``built`` that are not Params of ``config``
    and took their defaults: they do not count in the job ID. ``received``
    (from :func:`built_with_arguments`): what ``__init__`` got; an argument
    that got another value than its default was computed by the config (from
    its Params) and is not listed. Without ``received``, every argument that
    is not a Param is listed."""
    params = set(type(config).__xpmtype__.arguments)
    signature = inspect.signature(type(built).__init__)
    return [name for name, parameter in list(signature.parameters.items())[1:]
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
            and name not in params
            and (received is None or name not in received or same(received[name], parameter.default))]



def build_checked(config: Config, build: Callable[[], T]) -> T:
    """``build()`` (e.g. ``config.module``), with a warning naming the
    constructor arguments that took their defaults without being Params of
    ``config`` (see :func:`uncovered_arguments`)."""
    built, received = built_with_arguments(build)
    missing = uncovered_arguments(config, built, received)
    if missing:
        logger.warning("%s.__init__ arguments %s are not Params of %s and take their defaults: they are not part "
                       "of the job ID (declare them as Params to vary them)", type(built).__name__,
                       ", ".join(missing), config_name(config))
    return built
