"""Autoencoder: MLPs that reconstruct scikit-learn's 8x8 digits through a
narrow hidden layer (a grid over its width), evaluated on the test split.

``Reconstruction`` makes the target the input itself (in [0, 1]); with
``bce`` the network outputs logits of the pixels. The score is the
reconstruction MSE (lower is better): the best checkpoint and
``results --sort`` follow it. Run it again: nothing is retrained.
"""

import attrs
from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from xpm_train import (
    MLP, Adam, Digits, Evaluate, Learn, Reconstruction, find_launcher, finish, fraction, grid,
    positive, print_table,
)


@configuration()
class Configuration(ConfigurationBase):
    bottleneck: list[int] = grid([8, 32], positive)
    """Width of the hidden layer the digits are squeezed through (grid axis)"""

    criterion: str = "bce"
    """Reconstruction loss: bce (pixels in [0, 1]) or mse"""

    lr: float = attrs.field(default=3e-3, validator=positive)
    """Adam learning rate"""

    epochs: int = attrs.field(default=20, validator=positive)
    """Training epochs"""

    batch_size: int = attrs.field(default=32, validator=positive)
    """Training batch size"""

    val_fraction: float = attrs.field(default=0.1, validator=fraction)
    """Share of the training split held out for validation"""

    seed: int = 0
    """Seed of initialisation and sample order"""

    launcher: str = "duration=10m & cpu(cores=1)"
    """Resource spec of every job, matched against launchers.yaml"""

    device: str = "auto"
    """Torch device of the jobs: auto (CUDA when present), cpu, cuda..."""


def run(helper: ExperimentHelper, cfg: Configuration):
    launcher = find_launcher(cfg.launcher)
    objective = Reconstruction.C(criterion=cfg.criterion)
    for bottleneck in cfg.bottleneck:
        model = MLP.C(hidden_dims=[bottleneck])
        learn = Learn.C(model=model, data=Digits.C(split="train"), objective=objective, optimizer=Adam.C(lr=cfg.lr),
                        epochs=cfg.epochs, batch_size=cfg.batch_size, val_fraction=cfg.val_fraction, seed=cfg.seed,
                        device=cfg.device)
        learn.tag("bottleneck", bottleneck)
        trained = learn.submit(launcher=launcher)
        evaluation = Evaluate.C(model=model, data=Digits.C(split="test"), objective=objective, predictions=True,
                                device=cfg.device)
        evaluation.tag("bottleneck", bottleneck)
        evaluation.submit(launcher=launcher, init_tasks=[trained])
    finish(helper)
    print_table(helper, task="evaluate", sort="mse")
