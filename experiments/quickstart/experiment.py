"""Quickstart: a 2 x 2 grid of MLPs on digits, each trained then evaluated.

Every (hidden_dim, lr) pair is a Learn task followed by an Evaluate on the
test split; both are tagged so `experimaestro jobs ... list --tags` and
`xpm-train results` show the grid. Run it again: nothing is retrained.
"""

import attrs
from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from xpm_train import (
    Adam, Digits, Evaluate, Learn, MLP, find_launcher, finish, fraction, grid, positive,
    print_table, setup_tracking, ExportBest,
)


@configuration()
class Configuration(ConfigurationBase):
    hidden_dim: list[int] = grid([32, 128], positive)
    """Width of the MLP's hidden layer (grid axis)"""

    lr: list[float] = grid([1e-3, 3e-3], positive)
    """Adam learning rate (grid axis)"""

    epochs: int = attrs.field(default=20, validator=positive)
    """Training epochs"""

    batch_size: int = attrs.field(default=32, validator=positive)
    """Training batch size"""

    val_fraction: float = attrs.field(default=0.1, validator=fraction)
    """Share of the training split held out for validation"""

    seed: int = 0
    """Seed of initialisation and sample order"""

    launcher: str = "duration=10m & cpu(cores=1)"
    """Resource spec of every job, matched against launchers.yaml"""

    device: str = "auto"
    """Torch device of the jobs: auto (CUDA when present), cpu, cuda..."""

    tracking_uri: str = ""
    """MLflow URI; empty: MLFLOW_TRACKING_URI, else the workspace store
    (workspace/mlflow); "off": no MLflow"""


def run(helper: ExperimentHelper, cfg: Configuration):
    launcher = find_launcher(cfg.launcher)
    tracking = setup_tracking(helper, cfg.tracking_uri)
    train, test = Digits.C(split="train"), Digits.C(split="test")
    trainings = []

    for hidden_dim in cfg.hidden_dim:
        for lr in cfg.lr:
            model = MLP.C(hidden_dims=[hidden_dim])
            learn = Learn.C(
                model=model,
                data=train,
                optimizer=Adam.C(lr=lr),
                epochs=cfg.epochs,
                batch_size=cfg.batch_size,
                val_fraction=cfg.val_fraction,
                seed=cfg.seed,
                device=cfg.device,
                tracking=tracking,
            )
            learn.tag("hidden_dim", hidden_dim)
            learn.tag("lr", lr)
            trained = learn.submit(launcher=launcher)
            trainings.append(learn)

            evaluate = Evaluate.C(model=model, data=test, device=cfg.device, tracking=tracking)
            evaluate.tag("hidden_dim", hidden_dim)
            evaluate.tag("lr", lr)
            evaluate.submit(launcher=launcher, init_tasks=[trained])

    # After the run: experimaestro experiments --workdir W actions run quickstart
    helper.xp.add_action(ExportBest.C(trainings=trainings, workspace=str(helper.xp.workspace.path)))
    finish(helper)
    print_table(helper, task="evaluate", sort="accuracy")
