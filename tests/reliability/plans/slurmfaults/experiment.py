"""One small job per fault case (seed = its index in CASES: distinct jobs), each
sent to the launcher tagged with the case: Learns (``ddp-*``: on the ranks
``ddp`` asks for), a training function and a LightningFit. The time-limit
cases ask for one minute and train 40 steps, the others ten minutes and 32
steps; each may be resubmitted 5 times (experimaestro's default: 3)."""

from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from slowfn import slow_fit
from slowmodel import Points, SlowLinear, SlowMLP
from xpm_train import SGD, Learn, LightningFit, Synthetic, find_launcher
from xpm_train.plan import finish


@configuration()
class Configuration(ConfigurationBase):
    cases: list[str] = ["timelimit"]
    """One job per case, on the launcher tagged with it"""

    pause: float = 0.0
    """Seconds each training step sleeps (Meta)"""

    ddp: str = "cpu(cores=2, mem=800M) & processes=2"
    """Resources of the 2-rank cases (a resource: the same job ID on any ranks' layout)"""


CASES = ["timelimit", "requeue", "preempt", "cancel", "nodeloss", "function", "lightning", "ddp-timelimit",
         "ddp-nodeloss"]
"""Each case's seed is its index here: a run of some cases submits the same jobs"""
TIMELIMIT = ("timelimit", "function", "lightning", "ddp-timelimit")
"""The cases whose Slurm time limit (one minute) is shorter than their training"""


def job(case: str, pause: float):
    seed = CASES.index(case)
    model = SlowMLP.C(hidden_dims=[32], dropout=0.1, pause=pause)
    if case == "function":
        return slow_fit.C(model=model, epochs=20, seed=seed, device="cpu")
    if case == "lightning":
        return LightningFit.C(module=SlowLinear.C(pause=pause), datamodule=Points.C(), max_epochs=20, seed=seed,
                              accelerator="cpu")
    return Learn.C(
        model=model, data=Synthetic.C(split="train", num_samples=256, seed=3), optimizer=SGD.C(lr=0.05, momentum=0.9),
        epochs=5 if case in TIMELIMIT else 4, batch_size=32, seed=seed, device="cpu", log_interval=1,
    )


def run(helper: ExperimentHelper, cfg: Configuration):
    for case in cfg.cases:
        task = job(case, cfg.pause)
        task.tag("case", case)
        duration = "1m" if case in TIMELIMIT else "10m"
        resources = cfg.ddp if case.startswith("ddp-") else "cpu(cores=1, mem=400M)"
        task.submit(launcher=find_launcher(f"duration={duration} & {resources}", tags=[case]), max_retries=5)
    finish(helper)
