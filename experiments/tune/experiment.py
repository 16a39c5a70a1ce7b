"""Tune: an Optuna study over MLPs on digits, then the best model on the test split.

Every trial is a Learn job (cached by content: a configuration already
trained, by this study or any other, is never trained again); up to
``n_parallel`` run at once; the median rule stops poor trials from inside
their Learn process. The ``Tune`` task records the study and outputs the best
model, which ``Evaluate`` scores on the test split.
"""

from typing import Any

import attrs
from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from xpm_train import (
    ASHA, Adam, Digits, Evaluate, Learn, MLP, find_launcher, finish, fraction, job_of, positive,
    setup_tracking, TPE, MedianPruner, Space, Study, optimize,
)


@configuration()
class Configuration(ConfigurationBase):
    label: str = "digits-mlp"
    """Readable prefix of the study name"""

    n_trials: int = attrs.field(default=20, validator=positive)
    """Trials of the study (raise it to continue the same study)"""

    n_parallel: int = attrs.field(default=2, validator=positive)
    """Learn jobs in flight at once"""

    space: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    """Search space: Param path of the Learn -> {float|int|categorical: ..., log, step, when}"""

    seed: int = 0
    """Seed of the sampler and of every training"""

    startup_trials: int = attrs.field(default=6, validator=positive)
    """Random trials before TPE models the space"""

    pruner_startup_trials: int = attrs.field(default=4, validator=positive)
    """Trials that finish before the median rule prunes"""

    pruner_warmup_epochs: int = 2
    """Epochs of a trial before it may be pruned"""

    epochs: int = attrs.field(default=12, validator=positive)
    """Epochs of a full training"""

    val_fraction: float = attrs.field(default=0.15, validator=fraction)
    """Share of the training split held out for validation (the objective)"""

    launcher: str = "duration=10m & cpu(cores=1)"
    """Resource spec of every job, matched against launchers.yaml"""

    device: str = "auto"
    """Torch device of the jobs"""

    tracking_uri: str = ""
    """MLflow URI; empty: MLFLOW_TRACKING_URI, else the workspace store; "off": no MLflow"""

    evaluate: bool = False
    """Evaluate each finished trial on the data its Learn held out (a cached job)"""

    metric: str = "best.val_accuracy"
    """Objective: a key of Learn's final.json, or evaluate.<key> (needs evaluate: true)"""

    asha: list[int] = attrs.field(factory=list)
    """[min_epochs, max_epochs, eta]: train the trials rung by rung, pause them and promote the best
    (ASHA, docs/tune.md; the pruner is then not used); empty: every trial trains ``epochs``, median rule"""


def run(helper: ExperimentHelper, cfg: Configuration):
    launcher = find_launcher(cfg.launcher)
    space = Space.parse(cfg.space)  # a bad entry fails before anything is written
    tracking = setup_tracking(helper, cfg.tracking_uri)
    base = Learn.C(model=MLP.C(), data=Digits.C(split="train"), optimizer=Adam.C(), epochs=cfg.epochs,
                   val_fraction=cfg.val_fraction, seed=cfg.seed, device=cfg.device, tracking=tracking)
    study = Study(
        label=cfg.label,
        base=base,
        space=space,
        sampler=TPE.C(seed=cfg.seed, n_startup_trials=cfg.startup_trials),
        pruner=MedianPruner.C(n_startup_trials=cfg.pruner_startup_trials, n_warmup_steps=cfg.pruner_warmup_epochs),
        metric=cfg.metric,
        evaluate=cfg.evaluate,
        scheduler=ASHA.parse(cfg.asha),
    )
    result = optimize(study, n_trials=cfg.n_trials, n_parallel=cfg.n_parallel, launcher=launcher)

    best_model = result.task(tracking=tracking).submit(launcher=launcher)
    evaluate = Evaluate.C(model=result.best_learn.model, data=Digits.C(split="test"), device=cfg.device,
                          tracking=tracking)
    evaluate.tag("study", study.name)
    evaluate.submit(launcher=launcher, init_tasks=[best_model])
    finish(helper)

    from xpm_train import format_trials, load_trials

    test = job_of(evaluate).metrics()
    print(format_trials(load_trials(result.journal, study.name)))  # noqa: T201
    print(f"study {study.name}: best trial {result.best_number}, "  # noqa: T201
          f"{study.metric} = {result.best_value:.4f} ({result.best_job})")
    print(f"test accuracy of the best model: {test['accuracy']:.4f}")  # noqa: T201
