"""A study whose Learns read MNIST-format files from ``data_folder``: with the
folder empty every trial's Learn fails."""

from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from xpm_train import MLP, MNIST, Adam, Learn, find_launcher
from xpm_train.plan import finish
from xpm_train.tune import TPE, Float, MedianPruner, Space, Study, optimize


@configuration()
class Configuration(ConfigurationBase):
    data_folder: str = ""
    """Folder of the MNIST-format files"""

    n_trials: int = 2
    """Trials to run the study to"""


def run(helper: ExperimentHelper, cfg: Configuration):
    launcher = find_launcher("duration=10m & cpu(cores=1)")
    base = Learn.C(model=MLP.C(hidden_dims=[8]), data=MNIST.C(split="train", folder=cfg.data_folder),
                   optimizer=Adam.C(), epochs=1, batch_size=64, val_fraction=0.25, device="cpu")
    study = Study(label="failing", base=base, space=Space([Float("optimizer.lr", 1e-4, 0.1, log=True)]),
                  sampler=TPE.C(seed=0, n_startup_trials=2), pruner=MedianPruner.C())
    optimize(study, n_trials=cfg.n_trials, n_parallel=1, launcher=launcher)
    finish(helper)
