"""A Lightning project under xpm-train: digits_lightning's LightningModule and
DataModule, trained by LightningFit (a cached, resumable task) over a grid,
then tuned by a short Optuna study whose trials are LightningFit jobs too
(pruned from inside their Trainer). The configs of the user's classes are in
digits_configs.py; the plan never imports Lightning.
"""

from typing import Any

import attrs
from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from digits_configs import DigitsClassifier, DigitsData  # this folder is on the path (params.yaml: pythonpath)
from xpm_train import (
    find_launcher, LightningFit, require_lightning, finish, non_empty, positive, print_table,
    setup_tracking, MedianPruner, Space, Study, TPE, optimize,
)


@configuration()
class Configuration(ConfigurationBase):
    hidden: list[int] = attrs.field(factory=lambda: [32, 128], validator=[non_empty, positive])
    """Widths of the hidden layer (grid axis)"""

    lr: list[float] = attrs.field(factory=lambda: [3e-3], validator=[non_empty, positive])
    """Adam learning rates (grid axis)"""

    max_epochs: int = attrs.field(default=6, validator=positive)
    """Epochs of every training"""

    batch_size: int = attrs.field(default=32, validator=positive)
    """Training batch size"""

    seed: int = 0
    """Seed of every training"""

    n_trials: int = attrs.field(default=4, validator=attrs.validators.ge(0))
    """Trials of the study after the grid (0: no study)"""

    n_parallel: int = attrs.field(default=2, validator=positive)
    """Trials in flight at once"""

    space: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    """Search space: Param path of the LightningFit -> {float|int|categorical: ...}"""

    pruner_startup_trials: int = attrs.field(default=1, validator=positive)
    """Trials that finish before the median rule prunes"""

    pruner_warmup_epochs: int = 1
    """Epochs of a trial before it may be pruned"""

    launcher: str = "duration=10m & cpu(cores=1)"
    """Resource spec of every job, matched against launchers.yaml"""

    accelerator: str = "auto"
    """Lightning accelerator of the jobs: auto (a GPU when present), cpu, gpu"""

    tracking_uri: str = ""
    """MLflow URI; empty: MLFLOW_TRACKING_URI, else the workspace store; "off": no MLflow"""


def run(helper: ExperimentHelper, cfg: Configuration):
    require_lightning()  # without the extra: one line saying how to install it, nothing submitted
    launcher = find_launcher(cfg.launcher)
    space = Space.parse(cfg.space)  # a bad entry fails before anything is written
    tracking = setup_tracking(helper, cfg.tracking_uri)
    data = DigitsData.C(batch_size=cfg.batch_size)

    def fit(module: DigitsClassifier) -> LightningFit:
        return LightningFit.C(module=module, datamodule=data, max_epochs=cfg.max_epochs, seed=cfg.seed, test=True,
                              accelerator=cfg.accelerator, tracking=tracking)

    # --- The grid: one cached job per point
    for hidden in cfg.hidden:
        for lr in cfg.lr:
            fit(DigitsClassifier.C(hidden=hidden, lr=lr)).tag("hidden", hidden).tag("lr", lr).submit(
                launcher=launcher)
    finish(helper)
    print_table(helper, task="lightningfit", sort="best.val_accuracy")

    # --- A short study around the same base: trials are LightningFit jobs
    if cfg.n_trials:
        study = Study(label="digits-lightning", base=fit(DigitsClassifier.C()), space=space,
                      sampler=TPE.C(seed=cfg.seed, n_startup_trials=cfg.n_trials),
                      pruner=MedianPruner.C(n_startup_trials=cfg.pruner_startup_trials,
                                            n_warmup_steps=cfg.pruner_warmup_epochs),
                      metric="best.val_accuracy")
        result = optimize(study, n_trials=cfg.n_trials, n_parallel=cfg.n_parallel, launcher=launcher)
        finish(helper)

        from xpm_train import format_trials, load_trials

        print(format_trials(load_trials(result.journal, study.name)))  # noqa: T201
        print(f"study {study.name}: best trial {result.best_number}, "  # noqa: T201
              f"{study.metric} = {result.best_value:.4f} ({result.best_job})")
