"""Bring your Lightning module: a LightningModule and its LightningDataModule
trained as a content-addressed, resumable xpm-train task (docs/lightning.md).

- :mod:`.configs`: :class:`ModuleConfig`, :class:`DataModuleConfig`,
  :class:`CallbackConfig`, :class:`LoggerConfig`, the typed configs of your
  classes (their constructor arguments as Params);
- :mod:`.fit`: :class:`LightningFit`, the task running Lightning's ``Trainer``;
- :mod:`.logger`, :mod:`.callbacks`: what the task adds to the Trainer
  (metrics into the job folder, checkpoints, preemption, Optuna pruning);
- :mod:`.predict`: :func:`lightning_predict`, ``Trainer.predict`` with a finished job's module.

Lightning is an optional extra (``pip install 'xpm-train[lightning]'``) and
is slow to import: this package imports it only inside the task's process
(``LightningFit.execute``), never in a plan or another task.
"""

from .configs import (CallbackConfig, DataModuleConfig, LoggerConfig, MissingLightning, ModuleConfig,
                      require_lightning)
from .fit import LightningFit
from .options import PrecisionError
from .predict import lightning_predict

__all__ = ["CallbackConfig", "DataModuleConfig", "LightningFit", "LoggerConfig", "MissingLightning",
           "ModuleConfig", "PrecisionError", "lightning_predict", "require_lightning"]
