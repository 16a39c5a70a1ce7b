"""A tiny workspace for the tests of ``xpm-train gc``: a study whose second
trial is pruned, a grid of two Learns, and a Learn that fails (its MNIST
folder is empty); the second Learn of the grid, and an Evaluate of it,
stream their records from ``prepared_root``; ``extra`` adds a Learn that only this run submits (the
tests remove the run: an orphan)."""

from pathlib import Path

from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase
from experimaestro.settings import get_settings

from xpm_train import MLP, MNIST, Adam, Evaluate, Learn, Streaming, Synthetic, find_launcher
from xpm_train.plan import finish
from xpm_train.tune import Float, MedianPruner, Space, Study, TPE, optimize

# Carbon tracking off, as xpm_train.preflight turns it off for the real plans
# (this plan runs without preflight): experimaestro 2.7 would pause 3 s with a
# warning in every run when CodeCarbon is missing
get_settings().carbon.enabled = False


@configuration()
class Configuration(ConfigurationBase):
    empty_folder: str = ""
    """An empty folder: the failing Learn's MNIST files"""

    prepared_root: str = ""
    """Folder of the prepared records of the streaming Learn"""

    extra: bool = False
    """Only submit one more Learn (the orphan to be)"""


def learn(lr: float, data=None, streaming=None) -> Learn:
    return Learn.C(model=MLP.C(hidden_dims=[8]), data=data or Synthetic.C(split="train"),
                   optimizer=Adam.C(lr=lr), epochs=2, batch_size=32, val_fraction=0.25, device="cpu",
                   log_interval=1000, streaming=streaming)


def run(helper: ExperimentHelper, cfg: Configuration):
    launcher = find_launcher("duration=10m & cpu(cores=1)")
    if cfg.extra:
        learn(0.003).tag("grid", "extra").submit(launcher=launcher)
        finish(helper)
        return
    study = Study(label="gc", base=learn(0.01), space=Space([Float("optimizer.lr", 1e-5, 0.1, log=True)]),
                  sampler=TPE.C(seed=0, n_startup_trials=2),
                  pruner=MedianPruner.C(n_startup_trials=1, n_warmup_steps=0))
    optimize(study, n_trials=2, n_parallel=1, launcher=launcher,
             enqueue=[{"optimizer.lr": 0.05}, {"optimizer.lr": 0.00001}])
    streaming = Streaming.C(mode="always", workers=0, prepare_workers=1, root=Path(cfg.prepared_root))
    learn(0.02).tag("grid", 0.02).submit(launcher=launcher)
    streamed = learn(0.04, streaming=streaming).tag("grid", 0.04)
    weights = streamed.submit(launcher=launcher)
    Evaluate.C(model=streamed.model, data=Synthetic.C(split="test"), device="cpu",
               streaming=streaming).submit(launcher=launcher, init_tasks=[weights])
    learn(0.01, MNIST.C(split="train", folder=cfg.empty_folder)).tag("grid", "failing").submit(launcher=launcher)
    finish(helper)
