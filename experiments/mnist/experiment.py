"""MNIST: the experimaestro demo's CNN grid, as xpm-train tasks.

Every (hidden_dim, n_layers, kernel_size) triple is a Learn task followed by
an Evaluate on the official test split, all tagged, so that
`experimaestro jobs ... list --tags` and `xpm-train results` show the grid.
The resource spec comes from params.yaml (`launcher`) and is matched against
launchers.yaml: by default a GPU when one is free, else two CPU cores.
"""

import attrs
from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from xpm_train import (
    CNN, Adam, Evaluate, Learn, find_launcher, FASHION_MNIST_SOURCE, MNIST_SOURCE, mirror_source,
    prepare_fashion_mnist, prepare_mnist, finish, fraction, grid, positive, print_table,
)


@configuration()
class Configuration(ConfigurationBase):
    dataset: str = attrs.field(default="mnist", validator=attrs.validators.in_(["mnist", "fashion_mnist"]))
    """Which 28x28 dataset: mnist or fashion_mnist"""

    hidden_dim: list[int] = grid([32, 64], positive)
    """Channels of each convolution (grid axis)"""

    n_layers: list[int] = grid([1, 2], positive)
    """Number of convolution blocks (grid axis)"""

    kernel_size: list[int] = grid([3, 5], positive)
    """Convolution kernel size (grid axis)"""

    epochs: int = attrs.field(default=5, validator=positive)
    """Training epochs"""

    batch_size: int = attrs.field(default=128, validator=positive)
    """Training batch size"""

    lr: float = attrs.field(default=1e-3, validator=positive)
    """Adam learning rate"""

    val_fraction: float = attrs.field(default=0.1, validator=fraction)
    """Share of the training split held out for validation"""

    seed: int = 0
    """Seed of initialisation and sample order"""

    data_root: str = ""
    """Folder of the raw files ('' : datamaestro's data folder, see README)"""

    mirror: str = ""
    """Folder or URL to fetch the files from instead of the official sites"""

    launcher: str = "duration=2h & cuda(mem=4G)*1 & cpu(cores=2) | duration=4h & cpu(cores=2)"
    """Resource spec of every job, matched against launchers.yaml"""

    device: str = "auto"
    """Torch device of the jobs: auto (CUDA when present), cpu, cuda..."""


def run(helper: ExperimentHelper, cfg: Configuration):
    launcher = find_launcher(cfg.launcher)
    if cfg.dataset == "mnist":
        source = mirror_source(MNIST_SOURCE, cfg.mirror) if cfg.mirror else MNIST_SOURCE
        splits = prepare_mnist(cfg.data_root or None, source=source)
    else:
        source = mirror_source(FASHION_MNIST_SOURCE, cfg.mirror) if cfg.mirror else FASHION_MNIST_SOURCE
        splits = prepare_fashion_mnist(cfg.data_root or None, source=source)

    for hidden_dim in cfg.hidden_dim:
        for n_layers in cfg.n_layers:
            for kernel_size in cfg.kernel_size:
                model = CNN.C(n_layers=n_layers, hidden_dim=hidden_dim, kernel_size=kernel_size)
                learn = Learn.C(
                    model=model,
                    data=splits.train,
                    optimizer=Adam.C(lr=cfg.lr),
                    epochs=cfg.epochs,
                    batch_size=cfg.batch_size,
                    val_fraction=cfg.val_fraction,
                    seed=cfg.seed,
                    device=cfg.device,
                )
                evaluate = Evaluate.C(model=model, data=splits.test, device=cfg.device)
                for config in (learn, evaluate):
                    config.tag("hidden_dim", hidden_dim)
                    config.tag("n_layers", n_layers)
                    config.tag("kernel_size", kernel_size)
                trained = learn.submit(launcher=launcher)
                evaluate.submit(launcher=launcher, init_tasks=[trained])

    finish(helper)
    print_table(helper, task="evaluate", sort="accuracy")
