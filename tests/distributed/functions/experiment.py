"""A training function on the ranks of its launcher spec."""

from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from ddpfunctions import plain, ranked  # this folder is on the path (params.yaml: pythonpath)
from xpm_train import find_launcher
from xpm_train.plan import finish


@configuration()
class Configuration(ConfigurationBase):
    spec: str = "duration=10m & cpu(cores=2) & processes=2"
    """Resource spec of the function's task"""

    aware: bool = True
    """Submit the DDP-aware function (False: the plain one)"""


def run(helper: ExperimentHelper, cfg: Configuration):
    task = ranked if cfg.aware else plain
    task.C(scale=2.0).submit(launcher=find_launcher(cfg.spec))
    finish(helper)
