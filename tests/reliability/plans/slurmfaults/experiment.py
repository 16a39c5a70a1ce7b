"""One small Learn per fault case (seed = its index in CASES: distinct jobs), each
sent to the launcher tagged with the case; ``timelimit`` asks for one minute
and trains 5 epochs (40 steps), the others ten minutes and 4 epochs (32 steps);
each may be resubmitted 5 times (experimaestro's default: 3)."""

from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from slowmodel import SlowMLP
from xpm_train import SGD, Learn, Synthetic, find_launcher
from xpm_train.plan import finish


@configuration()
class Configuration(ConfigurationBase):
    cases: list[str] = ["timelimit"]
    """One Learn per case, on the launcher tagged with it"""

    pause: float = 0.0
    """Seconds each training step sleeps (Meta)"""


CASES = ["timelimit", "requeue", "preempt", "cancel", "nodeloss"]
"""Each case's seed is its index here: a run of some cases submits the same jobs"""


def run(helper: ExperimentHelper, cfg: Configuration):
    for case in cfg.cases:
        seed = CASES.index(case)
        learn = Learn.C(
            model=SlowMLP.C(hidden_dims=[32], dropout=0.1, pause=cfg.pause),
            data=Synthetic.C(split="train", num_samples=256, seed=3),
            optimizer=SGD.C(lr=0.05, momentum=0.9),
            epochs=5 if case == "timelimit" else 4, batch_size=32, seed=seed, device="cpu", log_interval=1,
        )
        learn.tag("case", case)
        duration = "1m" if case == "timelimit" else "10m"
        learn.submit(launcher=find_launcher(f"duration={duration} & cpu(cores=1, mem=400M)", tags=[case]),
                     max_retries=5)
    finish(helper)
