"""A tiny study for the tests (Synthetic data, small MLPs, few epochs):
Tune -> Evaluate like experiments/tune, with the pruner chosen by the test."""

from typing import Any

import attrs
from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase
from experimaestro.settings import get_settings

from xpm_train import Adam, Evaluate, Learn, MLP, Synthetic, find_launcher
from xpm_train.plan import finish, job_of
from xpm_train.tracking import setup as setup_tracking
from xpm_train.tune import (ASHA, TPE, Categorical, Float, Hyperband, MedianPruner, Space, Study,
                            SuccessiveHalving, optimize)

# Carbon tracking off, as xpm_train.preflight turns it off for the real plans
# (this plan runs without preflight): experimaestro 2.7 would pause 3 s with a
# warning in every run when CodeCarbon is missing
get_settings().carbon.enabled = False


@configuration()
class Configuration(ConfigurationBase):
    label: str = "tiny"
    n_trials: int = 4
    n_parallel: int = 2
    epochs: int = 2
    pruner: str = "median"
    sampler_seed: int = 0
    startup_trials: int = 2
    enqueue: list[dict[str, Any]] = attrs.field(factory=list)
    launcher: str = "duration=10m & cpu(cores=1)"
    tracking_uri: str = "off"
    evaluate: bool = False
    metric: str = "best.val_accuracy"
    asha: list[int] = attrs.field(factory=list)
    """[min_epochs, max_epochs, eta]: train the trials rung by rung (Study.scheduler)"""
    final: bool = True
    """After the study, submit its Tune task and an Evaluate of the best (False: the trials only)"""


def pruner_of(cfg: Configuration):
    if cfg.pruner == "median":
        return MedianPruner.C(n_startup_trials=1, n_warmup_steps=0)
    if cfg.pruner == "halving":
        return SuccessiveHalving.C(min_resource=1, reduction_factor=2)
    if cfg.pruner == "hyperband":
        return Hyperband.C(min_resource=1, max_resource=cfg.epochs, reduction_factor=2)
    raise ValueError(f"pruner: median, halving or hyperband, got {cfg.pruner!r}")


def run(helper: ExperimentHelper, cfg: Configuration):
    launcher = find_launcher(cfg.launcher)
    tracking = setup_tracking(helper, cfg.tracking_uri)
    base = Learn.C(model=MLP.C(hidden_dims=[16]), data=Synthetic.C(split="train"), optimizer=Adam.C(),
                   epochs=cfg.epochs, batch_size=32, val_fraction=0.25, device="cpu", log_interval=1000,
                   tracking=tracking)
    space = Space([Float("optimizer.lr", 1e-5, 0.1, log=True), Categorical("model.hidden_dims", [[8], [32]])])
    sampler = TPE.C(seed=cfg.sampler_seed, n_startup_trials=cfg.startup_trials)
    study = Study(label=cfg.label, base=base, space=space, sampler=sampler,
                  pruner=pruner_of(cfg), evaluate=cfg.evaluate, metric=cfg.metric,
                  scheduler=ASHA.parse(cfg.asha))
    result = optimize(study, n_trials=cfg.n_trials, n_parallel=cfg.n_parallel, launcher=launcher,
                      enqueue=cfg.enqueue)
    evaluate = None
    if cfg.final:
        best = result.task(tracking=tracking).submit(launcher=launcher)
        evaluate = Evaluate.C(model=result.best_learn.model, data=Synthetic.C(split="test"), device="cpu")
        evaluate.submit(launcher=launcher, init_tasks=[best])
    finish(helper)
    test = f" TEST {job_of(evaluate).metrics()['accuracy']:.4f}" if evaluate else ""
    print(f"STUDY {study.name} BEST {result.best_number} {result.best_value:.4f} "  # noqa: T201
          f"LAUNCHED {len(result.launched)}{test}")
