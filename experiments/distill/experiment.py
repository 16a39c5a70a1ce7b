"""Knowledge distillation: one teacher, students of two sizes trained with and
without distillation, every student evaluated on the test split.

    Learn(teacher) ──> Learn(student, seed, distill) ──> Evaluate
                       Learn(student, seed) ──────────> Evaluate     (the baseline)

The teacher is one cached job, whatever the number of students: its output is
the init task of every distilled student. The final table gives, per student size, the
mean test accuracy (and standard deviation) over the seeds of both methods.
"""

import attrs
from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from xpm_train import (
    MLP, Adam, Digits, Distillation, Evaluate, Learn, find_launcher, finish, fraction, grid,
    positive,
)


@configuration()
class Configuration(ConfigurationBase):
    teacher_hidden: list[int] = attrs.field(factory=lambda: [256], validator=positive)
    """Hidden layers of the teacher MLP"""

    teacher_epochs: int = attrs.field(default=30, validator=positive)
    """Training epochs of the teacher"""

    student_hidden: list[int] = grid([4, 8], positive)
    """Width of the students' hidden layer (grid axis)"""

    seeds: list[int] = grid([0, 1, 2])
    """Seeds of the students (grid axis): the table averages over them"""

    epochs: int = attrs.field(default=20, validator=positive)
    """Training epochs of each student"""

    lr: float = attrs.field(default=3e-3, validator=positive)
    """Adam learning rate (teacher and students)"""

    temperature: float = attrs.field(default=2.0, validator=positive)
    """Distillation temperature T"""

    alpha: float = attrs.field(default=0.5, validator=fraction)
    """Weight of the hard-label cross-entropy in the distillation loss"""

    batch_size: int = attrs.field(default=32, validator=positive)
    """Training batch size"""

    launcher: str = "duration=10m & cpu(cores=1)"
    """Resource spec of every job, matched against launchers.yaml"""

    device: str = "auto"
    """Torch device of the jobs: auto (CUDA when present), cpu, cuda..."""


def run(helper: ExperimentHelper, cfg: Configuration):
    launcher = find_launcher(cfg.launcher)
    train, test = Digits.C(split="train"), Digits.C(split="test")

    # --- The teacher: trained once, shared by every student
    teacher = MLP.C(hidden_dims=cfg.teacher_hidden)
    teacher_learn = Learn.C(model=teacher, data=train, optimizer=Adam.C(lr=cfg.lr),
                            epochs=cfg.teacher_epochs, batch_size=cfg.batch_size, device=cfg.device)
    # (not tagged: the tags of an init task pass on to every task that uses it)
    trained_teacher = teacher_learn.submit(launcher=launcher)
    evaluate(test, teacher, trained_teacher, launcher, cfg, role="teacher")

    # --- Students: plain training (baseline) and distillation, per size and seed
    for hidden in cfg.student_hidden:
        for seed in cfg.seeds:
            common = dict(data=train, optimizer=Adam.C(lr=cfg.lr), epochs=cfg.epochs,
                          batch_size=cfg.batch_size, seed=seed, device=cfg.device)
            student = MLP.C(hidden_dims=[hidden])
            plain = Learn.C(model=student, **common)
            tag(plain, role="student", method="plain", student=hidden, seed=seed)
            evaluate(test, student, plain.submit(launcher=launcher), launcher, cfg,
                     role="student", method="plain", student=hidden, seed=seed)

            student = MLP.C(hidden_dims=[hidden])
            distillation = Distillation.C(teacher=teacher, temperature=cfg.temperature, alpha=cfg.alpha)
            distill = Learn.C(model=student, distill=distillation, **common)
            tag(distill, role="student", method="distilled", student=hidden, seed=seed)
            trained = distill.submit(launcher=launcher, init_tasks=[trained_teacher])
            evaluate(test, student, trained, launcher, cfg,
                     role="student", method="distilled", student=hidden, seed=seed)

    finish(helper)
    print_comparison(helper)


def tag(config, **tags):
    for key, value in tags.items():
        config.tag(key, value)


def evaluate(test, model, trained, launcher, cfg, **tags):
    """Evaluate ``model`` with the weights of ``trained`` on the test split."""
    evaluation = Evaluate.C(model=model, data=test, device=cfg.device)
    tag(evaluation, **tags)
    evaluation.submit(launcher=launcher, init_tasks=[trained])


def print_comparison(helper):
    """Test accuracy per student size: mean and std over seeds of both methods."""
    from xpm_train import results

    frame = results(helper.xp.workspace.path, experiment=helper.xp.name)
    frame = frame[frame["task"].str.endswith("evaluate")]
    teacher = frame[frame["role"] == "teacher"]["accuracy"]
    students = frame[frame["role"] == "student"].astype({"student": int})
    table = students.pivot_table(index="student", columns="method", values="accuracy",
                                 aggfunc=["mean", "std", "count"])
    table.columns = [f"{method}_{stat}" for stat, method in table.columns]
    columns = [c for c in ("plain_mean", "distilled_mean", "plain_std", "distilled_std") if c in table]
    table = table[columns].assign(seeds=table.filter(like="_count").max(axis=1).astype(int))
    print(f"teacher test accuracy: {teacher.iloc[0]:.4f}")  # noqa: T201
    print("student test accuracy over seeds (mean, std):")  # noqa: T201
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))  # noqa: T201
