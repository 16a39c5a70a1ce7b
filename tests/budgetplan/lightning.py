"""A LightningFit with a horizon (tests of xpm_train.budget): the digits
example's module (dropout, a StepLR schedule) and data, one job per budget
in ``max_epochs``, submitted in this order, few batches an epoch."""

import attrs
from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from digits_configs import DigitsClassifier, DigitsData  # experiments/lightning (params: pythonpath)
from xpm_train import LightningFit, find_launcher
from xpm_train.plan import finish


@configuration()
class Configuration(ConfigurationBase):
    max_epochs: list[int] = attrs.field(factory=lambda: [1])
    """Where the runs stop (their budgets), one job each, submitted in this order"""

    horizon: int = 3
    """Epochs the schedule spans"""


def run(helper: ExperimentHelper, cfg: Configuration):
    launcher = find_launcher("duration=10m & cpu(cores=1)")
    for epochs in cfg.max_epochs:
        LightningFit.C(module=DigitsClassifier.C(hidden=16, lr=0.01, lr_step=1), datamodule=DigitsData.C(batch_size=64),
                       max_epochs=epochs, horizon=cfg.horizon, limit_train_batches=6, seed=1,
                       accelerator="cpu").submit(launcher=launcher)
    finish(helper)
