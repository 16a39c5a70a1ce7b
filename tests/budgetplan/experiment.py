"""One Learn with a horizon (tests of xpm_train.budget): dropout, batch
augmentation and momentum (state that must carry over), a warm-up + cosine
schedule over ``horizon`` epochs, stopped after each of ``epochs``."""

import attrs
from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from xpm_train import MLP, SGD, Augment, Cosine, Learn, Synthetic, find_launcher
from xpm_train.plan import finish


@configuration()
class Configuration(ConfigurationBase):
    epochs: list[int] = attrs.field(factory=lambda: [2])
    """Where the runs stop (their budgets), one Learn each, submitted in this order"""

    horizon: int = 6
    """Epochs the schedule spans (0: None, the horizon is epochs)"""


def run(helper: ExperimentHelper, cfg: Configuration):
    for epochs in cfg.epochs:
        submit(epochs, cfg.horizon)
    finish(helper)


def submit(epochs: int, horizon: int):
    learn = Learn.C(
        model=MLP.C(hidden_dims=[32], dropout=0.2),
        data=Synthetic.C(split="train", num_samples=192, height=8, width=8, num_classes=3, seed=5),
        optimizer=SGD.C(lr=0.05, momentum=0.9),
        schedule=Cosine.C(warmup_epochs=1),
        epochs=epochs,
        horizon=horizon or None,
        batch_size=32,
        augment=Augment.C(flip=True, cutout=2),
        seed=3,
        device="cpu",
    )
    learn.submit(launcher=find_launcher("duration=10m & cpu(cores=1)"))
