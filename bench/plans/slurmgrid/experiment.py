"""Arrays benchmark: ``count`` trivial tasks (each writes a file) through the
Slurm launcher of ``launchers.yaml``, and with ``chain`` a 1 s job then its
dependent; ``baseline``: experimaestro's own ``SlurmLauncher`` with the same
sbatch options and poll interval (one ``sbatch`` per job, ``sacct`` polling)."""

import attrs
from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from xpm_train import find_launcher
from xpm_train.launchers.testing import RecordDevices
from xpm_train.plan import finish


@configuration()
class Configuration(ConfigurationBase):
    count: int = attrs.field(default=200, validator=attrs.validators.ge(0))
    """Number of trivial tasks"""

    chain: bool = False
    """Also a 1 s task and a task depending on it"""

    baseline: bool = False
    """experimaestro's SlurmLauncher instead of xpm-train's"""

    launcher: str = "duration=10m & cpu(cores=1, mem=100M)"
    """Resource spec of every job, matched against launchers.yaml (a Slurm launcher)"""

    tracking_uri: str = "off"
    """Unused (every bench plan accepts it)"""


def run(helper: ExperimentHelper, cfg: Configuration):
    launcher = find_launcher(cfg.launcher)
    if cfg.baseline:
        from experimaestro.launchers.slurm import SlurmLauncher

        launcher = SlurmLauncher(options=launcher.options, interval=launcher.interval,
                                 binpath=launcher.binpath)
    if cfg.chain:
        first = RecordDevices.C(index=-1, hold=1).submit(launcher=launcher)
        second = RecordDevices.C(index=-2, hold=0)
        second.add_dependencies(first.__xpm__.dependency())
        second.submit(launcher=launcher)
    for index in range(cfg.count):
        RecordDevices.C(index=index, hold=0).submit(launcher=launcher)
    finish(helper)
