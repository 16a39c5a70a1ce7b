"""Multi-stage training: a warm-up stage at a small learning rate, then the
main stage starting from its weights, then an evaluation on the test split.

    Learn(stage 1: warm-up) ──> Learn(stage 2, per lr) ──> Evaluate

Stage 2 starts from stage 1's trained weights because stage 1's output (a
``LoadWeights`` init task) is given as its init task; that init task is part
of stage 2's job ID. Changing only stage 2 (its learning rate, its epochs)
reuses the finished stage 1; changing stage 1 retrains both. Stage 2 starts
from stage 1's best checkpoint with a fresh optimizer.
"""

import attrs
from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from xpm_train import MLP, Adam, Digits, Evaluate, Learn, find_launcher, finish, grid, positive, print_table


@configuration()
class Configuration(ConfigurationBase):
    hidden_dim: int = attrs.field(default=64, validator=positive)
    """Width of the MLP's hidden layer"""

    warmup_lr: float = attrs.field(default=1e-4, validator=positive)
    """Stage 1: Adam learning rate of the warm-up"""

    warmup_epochs: int = attrs.field(default=3, validator=positive)
    """Stage 1: epochs of the warm-up"""

    lr: list[float] = grid([1e-3, 3e-3], positive)
    """Stage 2: Adam learning rate (grid axis)"""

    epochs: int = attrs.field(default=10, validator=positive)
    """Stage 2: epochs"""

    batch_size: int = attrs.field(default=32, validator=positive)
    """Training batch size (both stages)"""

    seed: int = 0
    """Seed of initialisation and sample order (both stages)"""

    launcher: str = "duration=10m & cpu(cores=1)"
    """Resource spec of every job, matched against launchers.yaml"""

    device: str = "auto"
    """Torch device of the jobs: auto (CUDA when present), cpu, cuda..."""


def run(helper: ExperimentHelper, cfg: Configuration):
    launcher = find_launcher(cfg.launcher)
    train, test = Digits.C(split="train"), Digits.C(split="test")
    # One model config for every stage: each stage's output loads weights into it
    model = MLP.C(hidden_dims=[cfg.hidden_dim])
    common = dict(model=model, data=train, batch_size=cfg.batch_size, seed=cfg.seed, device=cfg.device)

    warmup = Learn.C(optimizer=Adam.C(lr=cfg.warmup_lr), epochs=cfg.warmup_epochs, **common)
    warmup.tag("stage", 1)
    warmed_up = warmup.submit(launcher=launcher)

    for lr in cfg.lr:
        main = Learn.C(optimizer=Adam.C(lr=lr), epochs=cfg.epochs, **common)
        main.tag("stage", 2)
        main.tag("lr", lr)
        trained = main.submit(launcher=launcher, init_tasks=[warmed_up])

        evaluate = Evaluate.C(model=model, data=test, device=cfg.device)
        evaluate.tag("lr", lr)
        evaluate.submit(launcher=launcher, init_tasks=[trained])

    finish(helper)
    print_table(helper, task="evaluate", sort="accuracy")
