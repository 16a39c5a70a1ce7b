"""ASHA on digits: 27 configurations of an MLP trained rung by rung (1, 3, 9,
27 epochs), paused between rungs and the best promoted; then the best model
on the test split.

The same study can be run with Optuna's successive-halving pruner inside each
trial's Learn (``scheduler: halving``) or with no pruning (``scheduler:
none``): the same space, sampler, schedule (cosine over 27 epochs) and number
of trials, so that ``python -m bench --only budgets`` compares the three
(docs/tune.md). The last line printed is the run's figures as JSON.
"""

import json
from typing import Any

import attrs
from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from xpm_train import (
    ASHA, Adam, Cosine, Digits, Evaluate, Learn, MLP, NoPruner, SuccessiveHalving, TPE, Space, Study,
    find_launcher, finish, fraction, job_of, positive, setup_tracking, optimize,
)

SCHEDULERS = ("asha", "halving", "none")


@configuration()
class Configuration(ConfigurationBase):
    label: str = "digits-asha"
    """Readable prefix of the study name"""

    scheduler: str = attrs.field(default="asha", validator=attrs.validators.in_(SCHEDULERS))
    """asha: pause and promote (Study.scheduler); halving: Optuna's SuccessiveHalvingPruner inside each
    trial's Learn; none: every trial trains max_epochs"""

    n_trials: int = attrs.field(default=27, validator=positive)
    """Configurations tried (raise it to extend the same study)"""

    n_parallel: int = attrs.field(default=2, validator=positive)
    """Learn jobs in flight at once"""

    min_epochs: int = attrs.field(default=1, validator=positive)
    """Epochs of the first rung"""

    max_epochs: int = attrs.field(default=27, validator=positive)
    """Epochs of the last rung: the horizon of every trial's cosine schedule"""

    eta: int = attrs.field(default=3, validator=positive)
    """Reduction factor: the top 1/eta of a rung goes on"""

    space: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    """Search space: Param path of the Learn -> {float|int|categorical: ..., log, step, when}"""

    seed: int = 0
    """Seed of the sampler and of every training"""

    startup_trials: int = attrs.field(default=6, validator=positive)
    """Random trials before TPE models the space"""

    val_fraction: float = attrs.field(default=0.15, validator=fraction)
    """Share of the training split held out for validation (the objective)"""

    launcher: str = "duration=10m & cpu(cores=1)"
    """Resource spec of every job, matched against launchers.yaml"""

    device: str = "auto"
    """Torch device of the jobs"""

    tracking_uri: str = ""
    """MLflow URI; empty: MLFLOW_TRACKING_URI, else the workspace store; "off": no MLflow"""


def study_of(cfg: Configuration, base) -> Study:
    """The study under ``cfg.scheduler`` (everything else equal)."""
    asha = halving = None
    if cfg.scheduler == "asha":
        asha = ASHA(cfg.min_epochs, cfg.max_epochs, cfg.eta)  # a ladder that does not fit fails here
    elif cfg.scheduler == "halving":
        halving = SuccessiveHalving.C(min_resource=cfg.min_epochs, reduction_factor=cfg.eta)
    return Study(label=cfg.label, base=base, space=Space.parse(cfg.space),
                 sampler=TPE.C(seed=cfg.seed, n_startup_trials=cfg.startup_trials),
                 pruner=halving if halving is not None else NoPruner.C(), scheduler=asha)


def run(helper: ExperimentHelper, cfg: Configuration):
    launcher = find_launcher(cfg.launcher)
    tracking = setup_tracking(helper, cfg.tracking_uri)
    base = Learn.C(model=MLP.C(), data=Digits.C(split="train"), optimizer=Adam.C(), schedule=Cosine.C(),
                   epochs=cfg.max_epochs, val_fraction=cfg.val_fraction, seed=cfg.seed, device=cfg.device,
                   tracking=tracking)
    study = study_of(cfg, base)
    result = optimize(study, n_trials=cfg.n_trials, n_parallel=cfg.n_parallel, launcher=launcher)

    best_model = result.task(tracking=tracking).submit(launcher=launcher)
    evaluate = Evaluate.C(model=result.best_learn.model, data=Digits.C(split="test"), device=cfg.device,
                          tracking=tracking)
    evaluate.tag("study", study.name)
    evaluate.submit(launcher=launcher, init_tasks=[best_model])
    finish(helper)

    from xpm_train import format_trials, load_trials

    test = job_of(evaluate).metrics()["accuracy"]
    print(format_trials(load_trials(result.journal, study.name)))  # noqa: T201
    print(f"study {study.name} ({cfg.scheduler}): best trial {result.best_number}, "  # noqa: T201
          f"{study.metric} = {result.best_value:.4f} ({result.best_job}); test accuracy {test:.4f}")
    print(json.dumps({"study": study.name, "scheduler": cfg.scheduler, "n_trials": cfg.n_trials,  # noqa: T201
                      "best_trial": result.best_number, "best_value": result.best_value, "test": test,
                      "best_job": result.best_job, "launched": len(result.launched)}))
