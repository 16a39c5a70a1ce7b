"""Regression: an MLP grid on scikit-learn's diabetes table, then a Tune
study minimising the validation MSE; every model evaluated on the test split.

The objective (``Regression``) is the only change from a classification
plan: the best checkpoint, the study's direction and ``results --sort``
follow its score (mse, lower is better). Evaluate saves the test predictions
(``predictions.npz``) for checks of your own. Run it again: nothing is retrained.
"""

import attrs
from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from xpm_train import (
    MLP, Adam, Diabetes, Evaluate, Learn, Regression, find_launcher, finish, fraction, grid,
    positive, print_table, TPE, Float, NoPruner, Space, Study, optimize,
)


@configuration()
class Configuration(ConfigurationBase):
    hidden_dim: list[int] = grid([16, 64], positive)
    """Width of the MLP's hidden layer (grid axis)"""

    lr: list[float] = grid([0.01, 0.03], positive)
    """Adam learning rate (grid axis)"""

    criterion: str = "mse"
    """Training loss: mse or l1"""

    epochs: int = attrs.field(default=60, validator=positive)
    """Training epochs"""

    batch_size: int = attrs.field(default=32, validator=positive)
    """Training batch size"""

    val_fraction: float = attrs.field(default=0.15, validator=fraction)
    """Share of the training split held out for validation"""

    n_trials: int = attrs.field(default=4, validator=positive)
    """Trials of the Tune study over the learning rate (0 trials: no study)"""

    seed: int = 0
    """Seed of initialisation and sample order"""

    launcher: str = "duration=10m & cpu(cores=1)"
    """Resource spec of every job, matched against launchers.yaml"""

    device: str = "auto"
    """Torch device of the jobs: auto (CUDA when present), cpu, cuda..."""


def run(helper: ExperimentHelper, cfg: Configuration):
    launcher = find_launcher(cfg.launcher)
    objective = Regression.C(criterion=cfg.criterion)
    train, test = Diabetes.C(split="train"), Diabetes.C(split="test")

    def learn(model, lr):
        return Learn.C(model=model, data=train, objective=objective, optimizer=Adam.C(lr=lr), epochs=cfg.epochs,
                       batch_size=cfg.batch_size, val_fraction=cfg.val_fraction, seed=cfg.seed, device=cfg.device)

    def evaluate(model, trained, **tags):
        evaluation = Evaluate.C(model=model, data=test, objective=objective, predictions=True, device=cfg.device)
        for key, value in tags.items():
            evaluation.tag(key, value)
        evaluation.submit(launcher=launcher, init_tasks=[trained])

    for hidden_dim in cfg.hidden_dim:
        for lr in cfg.lr:
            model = MLP.C(hidden_dims=[hidden_dim])
            training = learn(model, lr)
            training.tag("hidden_dim", hidden_dim)
            training.tag("lr", lr)
            evaluate(model, training.submit(launcher=launcher), hidden_dim=hidden_dim, lr=lr)

    # Tune: the study minimises the validation MSE (the objective's score)
    study = Study(label="diabetes-mlp", base=learn(MLP.C(hidden_dims=[64]), 0.01),
                  space=Space([Float("optimizer.lr", 1e-3, 1e-1, log=True)]),
                  sampler=TPE.C(seed=cfg.seed, n_startup_trials=2), pruner=NoPruner.C())
    result = optimize(study, n_trials=cfg.n_trials, launcher=launcher)
    evaluate(result.best_learn.model, result.task().submit(launcher=launcher), study=study.name)
    finish(helper)
    print(f"study {study.name}: {study.direction} {study.metric}, best {result.best_value:.2f}")  # noqa: T201
    print_table(helper, task="evaluate", sort="mse")
