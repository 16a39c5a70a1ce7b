"""One Learn on synthetic data, with dropout (its RNG must resume too), batch
augmentation, a warm-up + cosine schedule and gradient clipping; every step is logged so
that the fault-injection harness can kill it at chosen steps."""

from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from xpm_train import MLP, SGD, Augment, Cosine, Learn, Synthetic, find_launcher
from xpm_train.data.stream import Streaming
from xpm_train.plan import finish


@configuration()
class Configuration(ConfigurationBase):
    epochs: int = 4
    """Training epochs"""

    log_interval: int = 1
    """Steps between logged points (Meta)"""

    streaming: bool = False
    """Stream the data from its prepared records (Meta: the same job)"""


def run(helper: ExperimentHelper, cfg: Configuration):
    learn = Learn.C(
        # sized so that a step takes milliseconds: the harness can stop it at a chosen step
        model=MLP.C(hidden_dims=[1024, 512], dropout=0.2),
        data=Synthetic.C(split="train", num_samples=4096, height=16, width=16, num_classes=6, seed=3),
        optimizer=SGD.C(lr=0.05, momentum=0.9),
        schedule=Cosine.C(warmup_epochs=1),
        epochs=cfg.epochs,
        batch_size=32,
        grad_clip=1.0,
        augment=Augment.C(crop_padding=2, flip=True, cutout=4),
        seed=7,
        device="cpu",
        log_interval=cfg.log_interval,
        streaming=Streaming.C(mode="always", workers=2) if cfg.streaming else None,
    )
    learn.submit(launcher=find_launcher("duration=10m & cpu(cores=1)"))
    finish(helper)
