"""A training function with a budget (budgetfn.budgeted), submitted with
each of ``epochs`` in order, with ``horizon`` (0: None)."""

import attrs
from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from budgetfn import budgeted, forgetful
from xpm_train import find_launcher
from xpm_train.plan import finish


@configuration()
class Configuration(ConfigurationBase):
    epochs: list[int] = attrs.field(factory=lambda: [2])
    """Where the runs stop (their budgets), one job each, submitted in this order"""

    horizon: int = 4
    """Epochs the schedule spans (0: None, the horizon is epochs)"""

    forgetful: bool = False
    """Submit budgetfn.forgetful (which never resumes) instead"""


def run(helper: ExperimentHelper, cfg: Configuration):
    launcher = find_launcher("duration=10m & cpu(cores=1)")
    function = forgetful if cfg.forgetful else budgeted
    for epochs in cfg.epochs:
        function.C(epochs=epochs, horizon=cfg.horizon or None, device="cpu").submit(launcher=launcher)
    finish(helper)
