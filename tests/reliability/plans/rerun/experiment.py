"""One small Learn on MNIST-format files read from ``data_folder``: with the
folder empty the job fails; once the files are there, the same plan (same job
ID: the folder is Meta) must run the failed job again. Also used with a checkpoint
write made to fail (ENOSPC) by the test."""

from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from xpm_train import MLP, MNIST, Adam, Learn, find_launcher
from xpm_train.plan import finish


@configuration()
class Configuration(ConfigurationBase):
    data_folder: str = ""
    """Folder of the MNIST-format files"""

    epochs: int = 1
    """Training epochs (a checkpoint after each)"""


def run(helper: ExperimentHelper, cfg: Configuration):
    learn = Learn.C(model=MLP.C(hidden_dims=[16]), data=MNIST.C(split="train", folder=cfg.data_folder),
                    optimizer=Adam.C(lr=1e-3), epochs=cfg.epochs, batch_size=64, device="cpu")
    learn.submit(launcher=find_launcher("duration=10m & cpu(cores=1)"))
    finish(helper)
