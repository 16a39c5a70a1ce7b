"""Bring your own: a model class of your own (mymodels.ResidualMLP) on a
folder of your own images (``folder``: one sub-folder per class), trained,
tuned and evaluated like the built-ins.

``prepare_image_folder`` checks the folder (empty, one class, unreadable
file: one-line errors before any job), decodes it once and fingerprints its
content: the jobs' IDs depend on the images, not on where the folder is.
Run it again (or after moving the folder): nothing is retrained.
"""

import attrs
from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from mymodels import ResidualMLP  # this folder is on the path (params.yaml: pythonpath)
from xpm_train import (
    Adam, Evaluate, Learn, find_launcher, prepare_image_folder, ImageFolderError, finish, fraction,
    positive, print_table, Categorical, Float, NoPruner, Space, Study, TPE, optimize,
)


@configuration()
class Configuration(ConfigurationBase):
    folder: str = ""
    """The image folder: <folder>/<class>/<image>.png (required)"""

    size: list[int] = attrs.field(factory=lambda: [16, 16])
    """[height, width] every image is resized to"""

    width: int = attrs.field(default=64, validator=positive)
    """Width of the residual MLP"""

    lr: float = attrs.field(default=3e-3, validator=positive)
    """Adam learning rate of the plain training"""

    epochs: int = attrs.field(default=10, validator=positive)
    """Training epochs"""

    batch_size: int = attrs.field(default=16, validator=positive)
    """Training batch size"""

    val_fraction: float = attrs.field(default=0.2, validator=fraction)
    """Share of the training split held out for validation"""

    n_trials: int = attrs.field(default=2, validator=positive)
    """Trials of the Tune study over the learning rate and the number of blocks"""

    seed: int = 0
    """Seed of initialisation and sample order"""

    launcher: str = "duration=10m & cpu(cores=1)"
    """Resource spec of every job, matched against launchers.yaml"""

    device: str = "auto"
    """Torch device of the jobs: auto (CUDA when present), cpu, cuda..."""


def run(helper: ExperimentHelper, cfg: Configuration):
    if not cfg.folder:
        raise ImageFolderError("give the image folder: -c folder=/path/to/images (one sub-folder per class)")
    launcher = find_launcher(cfg.launcher)
    images = prepare_image_folder(cfg.folder, size=tuple(cfg.size))
    model = ResidualMLP.C(width=cfg.width)
    learn = Learn.C(model=model, data=images.train, optimizer=Adam.C(lr=cfg.lr), epochs=cfg.epochs,
                    batch_size=cfg.batch_size, val_fraction=cfg.val_fraction, seed=cfg.seed, device=cfg.device)
    learn.tag("variant", "residual")
    trained = learn.submit(launcher=launcher)
    evaluation = Evaluate.C(model=model, data=images.test, predictions=True, device=cfg.device)
    evaluation.tag("variant", "residual")
    evaluation.submit(launcher=launcher, init_tasks=[trained])

    study = Study(label="byo-residual", base=learn, pruner=NoPruner.C(), sampler=TPE.C(seed=cfg.seed),
                  space=Space([Float("optimizer.lr", 1e-3, 3e-2, log=True), Categorical("model.blocks", [1, 2])]))
    result = optimize(study, n_trials=cfg.n_trials, launcher=launcher)
    best = Evaluate.C(model=result.best_learn.model, data=images.test, predictions=True, device=cfg.device)
    best.tag("variant", "tuned")
    best.submit(launcher=launcher, init_tasks=[result.task().submit(launcher=launcher)])
    finish(helper)
    print(f"study {study.name}: best {study.metric} {result.best_value:.4f}")  # noqa: T201
    print_table(helper, task="evaluate", sort="accuracy")
