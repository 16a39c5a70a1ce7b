"""Scheduler benchmark: ``count`` trivial tasks, each its own job process."""

import attrs
from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from bench.tasks import Noop
from xpm_train import find_launcher
from xpm_train.plan import finish


@configuration()
class Configuration(ConfigurationBase):
    count: int = attrs.field(default=50, validator=attrs.validators.ge(0))
    """Number of tasks"""

    launcher: str = "duration=10m & cpu(cores=1)"
    """Resource spec of every job, matched against launchers.yaml"""

    tracking_uri: str = "off"
    """Unused (every bench plan accepts it)"""


def run(helper: ExperimentHelper, cfg: Configuration):
    launcher = find_launcher(cfg.launcher)
    for index in range(cfg.count):
        Noop.C(index=index).submit(launcher=launcher)
    finish(helper)
