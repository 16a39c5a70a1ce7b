"""The benchmarks' training plan: ``count`` Learn tasks (seeds ``0..count-1``),
each followed by an Evaluate on the test split when ``evaluate`` is set."""

import attrs
from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from xpm_train import CNN, MLP, Adam, Cosine, Digits, Evaluate, Learn, MNIST, Synthetic, find_launcher
from xpm_train.tracking import setup
from xpm_train.plan import finish, fraction, positive


@configuration()
class Configuration(ConfigurationBase):
    data: str = attrs.field(default="synthetic", validator=attrs.validators.in_(["synthetic", "digits", "mnist"]))
    """synthetic (in memory), digits (scikit-learn) or mnist (IDX files in mnist_folder)"""

    mnist_folder: str = ""
    """Folder of the four MNIST IDX files (data=mnist)"""

    synthetic_samples: int = attrs.field(default=256, validator=positive)
    """Train samples of the synthetic data (8x8, 4 classes)"""

    model: str = attrs.field(default="mlp", validator=attrs.validators.in_(["mlp", "cnn"]))
    """mlp (one hidden layer) or cnn (the experimaestro demo's CNN)"""

    hidden: int = attrs.field(default=128, validator=positive)
    """MLP hidden width, or CNN channels"""

    cnn_layers: int = attrs.field(default=2, validator=positive)
    """CNN convolution layers"""

    kernel_size: int = attrs.field(default=3, validator=positive)
    """CNN kernel size"""

    epochs: int = attrs.field(default=1, validator=positive)
    """Training epochs"""

    batch_size: int = attrs.field(default=64, validator=positive)
    """Training batch size"""

    lr: float = attrs.field(default=1e-3, validator=positive)
    """Adam learning rate"""

    cosine: bool = False
    """Cosine learning-rate decay (else constant)"""

    val_fraction: float = attrs.field(default=0.0, validator=fraction)
    """Share of the training split held out for validation"""

    count: int = attrs.field(default=1, validator=positive)
    """Number of Learn tasks (seeds 0..count-1)"""

    evaluate: bool = False
    """Evaluate each trained model on the test split"""

    device: str = "auto"
    """Torch device of the jobs"""

    log_interval: int = attrs.field(default=50, validator=positive)
    """Learn logs the training loss every this many steps"""

    fused: bool = True
    """Adam's fused kernel (xpm_train.Adam's default); false: torch's for-loop Adam"""

    launcher: str = "duration=1h & cpu(cores=1)"
    """Resource spec of every job, matched against launchers.yaml"""

    tracking_uri: str = "off"
    """MLflow store of the jobs (off: none; the tracking benchmark turns it on)"""


def datasets(cfg: Configuration):
    """(train, test) configs of ``cfg.data``."""
    if cfg.data == "synthetic":
        return (Synthetic.C(split="train", num_samples=cfg.synthetic_samples),
                Synthetic.C(split="test", num_samples=max(cfg.synthetic_samples // 4, 1)))
    if cfg.data == "digits":
        return Digits.C(split="train"), Digits.C(split="test")
    if not cfg.mnist_folder:
        raise ValueError("data=mnist needs mnist_folder (the folder of the four IDX files)")
    return MNIST.C(split="train", folder=cfg.mnist_folder), MNIST.C(split="test", folder=cfg.mnist_folder)


def network(cfg: Configuration):
    if cfg.model == "mlp":
        return MLP.C(hidden_dims=[cfg.hidden])
    return CNN.C(n_layers=cfg.cnn_layers, hidden_dim=cfg.hidden, kernel_size=cfg.kernel_size)


def run(helper: ExperimentHelper, cfg: Configuration):
    launcher = find_launcher(cfg.launcher)
    tracking = setup(helper, cfg.tracking_uri)
    train, test = datasets(cfg)
    for seed in range(cfg.count):
        model = network(cfg)
        learn = Learn.C(
            model=model,
            data=train,
            optimizer=Adam.C(lr=cfg.lr, fused=cfg.fused),
            schedule=Cosine.C() if cfg.cosine else None,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            val_fraction=cfg.val_fraction,
            seed=seed,
            device=cfg.device,
            log_interval=cfg.log_interval,
            tracking=tracking,
        )
        trained = learn.submit(launcher=launcher)
        if cfg.evaluate:
            Evaluate.C(model=model, data=test, device=cfg.device).submit(launcher=launcher, init_tasks=[trained])
    finish(helper)
