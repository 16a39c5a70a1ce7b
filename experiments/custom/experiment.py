"""Your own training function (mytrain.train) swept with experimaestro's grid
search: every combination of the ``grid_search`` block of params.yaml is one
cached task; change the grid on the command line, not in this file::

    experimaestro run-experiment --workdir workspace experiments/custom/params.yaml \
        -c 'grid_search.hidden=[16, 64, 128]'
"""

import attrs
from experimaestro.experiments import ExperimentHelper, configuration, generate_grid
from experimaestro.experiments.configuration import ConfigurationBase

from mytrain import train  # this folder is on the path (params.yaml: pythonpath)
from xpm_train import find_launcher, finish, positive, print_table


@configuration()
class Configuration(ConfigurationBase):
    lr: float = attrs.field(default=3e-3, validator=positive)
    """Adam learning rate (a grid axis when listed under grid_search)"""

    hidden: int = attrs.field(default=32, validator=positive)
    """Width of the hidden layer"""

    epochs: int = attrs.field(default=5, validator=positive)
    """Training epochs"""

    seed: int = 0
    """Seed of the initialisation and sample order"""

    launcher: str = "duration=10m & cpu(cores=1)"
    """Resource spec of every job, matched against launchers.yaml"""

    device: str = "auto"
    """Torch device of the jobs: auto (CUDA when present), cpu, cuda..."""


def run(helper: ExperimentHelper, cfg: Configuration):
    launcher = find_launcher(cfg.launcher)
    configs, tags = generate_grid(cfg)
    for point, point_tags in zip(configs, tags):
        task = train.C(lr=point.lr, hidden=point.hidden, epochs=point.epochs, seed=point.seed,
                       device=point.device)
        for key, value in point_tags.items():
            task.tag(key, value)
        task.submit(launcher=launcher)

    finish(helper)
    print_table(helper, task="train", sort="objective")
