"""Predictions of a finished LightningFit: Lightning's ``Trainer.predict``
with the job's trained module (``checkpoints/best.pt``).

::

    job = xpm_train.load("xpm_train.lightning.fit.lightningfit/3f2a...", workspace="workspace")
    outputs = lightning_predict(job)                          # the data module's predict_dataloader()
    outputs = lightning_predict(job, dataloaders=my_loader)   # or your own batches

``job.network`` is the LightningModule itself (eval mode), for calling it
directly. Nothing is written: the Trainer has no logger and no checkpoints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .configs import require_lightning

if TYPE_CHECKING:
    from ..analysis import LoadedJob


def lightning_predict(job: "LoadedJob", dataloaders: Any = None, *, datamodule: Any = None, accelerator: str = "cpu",
            **trainer_options: Any) -> list[Any]:
    """``Trainer.predict`` of ``job``'s LightningModule with its best weights,
    on ``dataloaders``, or on ``datamodule`` (default: the job's own data
    module, built from its config: its ``predict_dataloader``). The module's
    ``predict_step`` decides what a batch gives (Lightning's default:
    ``module(batch)``). ``trainer_options`` go to the ``Trainer`` (e.g.
    ``precision``); the list of the batches' outputs is returned."""
    require_lightning()
    import lightning.pytorch as pl

    from .fit import LightningFit

    if not isinstance(job.config, LightningFit):
        raise TypeError(f"predict() takes a LightningFit job, got {type(job.config).__name__} ({job.info.id})")
    if dataloaders is None and datamodule is None:
        datamodule = job.config.datamodule.datamodule()
    trainer = pl.Trainer(accelerator=accelerator, devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, **trainer_options)
    return trainer.predict(job.network, dataloaders=dataloaders, datamodule=datamodule)
