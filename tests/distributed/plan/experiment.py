"""One Learn whose ranks come from the launcher spec (``processes=``, ``nodes=``):
the same job ID whatever the spec, so runs with 1 and 2 ranks can be compared."""

from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from xpm_train import MLP, SGD, Evaluate, Learn, Synthetic, find_launcher
from xpm_train.plan import finish


@configuration()
class Configuration(ConfigurationBase):
    spec: str = "duration=10m & cpu(cores=1)"
    """Resource spec of the Learn (add processes=/nodes= for ranks)"""

    epochs: int = 3
    """Training epochs"""

    batch_size: int = 32
    """Global batch size"""

    log_interval: int = 5
    """Steps between logged points (Meta)"""

    device: str = "cpu"
    """Device of the Learn (Meta: the same job ID on any device)"""

    evaluate_spec: str = ""
    """When set, also an Evaluate of the trained model, submitted with this spec"""


def run(helper: ExperimentHelper, cfg: Configuration):
    learn = Learn.C(
        model=MLP.C(hidden_dims=[64]),
        data=Synthetic.C(split="train", num_samples=986, height=8, width=8, num_classes=4, seed=3),
        optimizer=SGD.C(lr=0.05, momentum=0.9),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=5,
        device=cfg.device,
        log_interval=cfg.log_interval,
    )
    trained = learn.submit(launcher=find_launcher(cfg.spec))
    if cfg.evaluate_spec:
        test = Synthetic.C(split="test", num_samples=200, height=8, width=8, num_classes=4, seed=3)
        Evaluate.C(model=learn.model, data=test).submit(launcher=find_launcher(cfg.evaluate_spec),
                                                         init_tasks=[trained])
    finish(helper)
