"""Knowledge distillation (Hinton et al. 2015) as an option of ``Learn``.

A :class:`Distillation` given as ``Learn.distill`` makes Learn train its
``model`` (the student) on the soft targets of a trained ``teacher`` besides
the labels. The teacher is the output of a finished ``Learn`` given as init
task, so that its training is one cached job shared by every student::

    teacher = MLP.C(hidden_dims=[256])
    trained_teacher = Learn.C(model=teacher, data=train, ...).submit()
    student = Learn.C(model=MLP.C(hidden_dims=[16]), data=train, optimizer=Adam.C(lr=3e-3),
                      distill=Distillation.C(teacher=teacher, temperature=4.0, alpha=0.5))
    trained_student = student.submit(init_tasks=[trained_teacher])

The init task is part of the job ID: a student of another teacher training is
another job. Everything else is Learn's (resume, preemption, augmentation,
mixed precision, pruning by Tune). The loss of a batch is::

    alpha * CE(student, y) + (1 - alpha) * T^2 * KL(softmax(teacher/T) || softmax(student/T))

and ``metrics.jsonl`` gets its ``ce`` and ``kl`` parts in the ``train`` records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, ClassVar

from experimaestro import Config, Param, field

from .checks import Positive, Range
from .directions import DISTILLATION
from .models import Model
from .summary import Direction

if TYPE_CHECKING:
    import torch

    from .objectives import Objective


class Distillation(Config):
    """Distil a trained ``teacher`` into the model a ``Learn`` trains."""

    directions: ClassVar[dict[str, Direction]] = {name: Direction.of(way) for name, way in DISTILLATION.items()}
    """Which way the parts of the loss it logs are better (as an objective's :attr:`directions`)"""

    teacher: Param[Model]
    """The teacher model; its trained weights come from the init task (the
    output of the Learn that trained it)"""

    temperature: Annotated[Param[float], Positive()] = field(default=4.0, ignore_default=True)
    """Softmax temperature T of the soft targets"""

    alpha: Annotated[Param[float], Range(0, 1, high_open=False)] = field(default=0.5, ignore_default=True)
    """Weight of the cross-entropy with the labels (1: no distillation)"""

    def loss(self, student_logits: "torch.Tensor", teacher_logits: "torch.Tensor", labels: "torch.Tensor"):
        """``(loss, ce, kl)`` of a batch (see :func:`distillation_loss`)."""
        return distillation_loss(student_logits, teacher_logits, labels, self.temperature, self.alpha)

    def wrap(self, objective: "Objective", teacher: "torch.nn.Module") -> "Distilled":
        """``objective`` trained with distillation from the ``teacher`` network
        (:meth:`teacher_network`, on the student's device)."""
        return Distilled(objective, self, teacher)

    def teacher_network(self, data) -> "torch.nn.Module":
        """The teacher network with its trained weights, frozen in eval mode.

        :raises ValueError: when no init task gave the teacher's weights
        """
        from .models import attached_weights, build

        if attached_weights(self.teacher) is None:
            raise ValueError(
                "Learn.distill.teacher has no trained weights: submit the Learn with the output of the "
                "Learn that trained this very teacher config as init task, e.g. "
                "Learn.C(distill=Distillation.C(teacher=teacher), ...)"
                ".submit(init_tasks=[Learn.C(model=teacher, ...).submit()])"
            )
        net = build(self.teacher, data)
        net.eval()
        for parameter in net.parameters():
            parameter.requires_grad_(False)
        return net

    def summary(self) -> dict:
        """What ``final.json`` records of the distillation."""
        return {"temperature": self.temperature, "alpha": self.alpha}


class Distilled:
    """An objective wrapped by distillation, what Learn's loop minimises when
    ``Learn.distill`` is set: a batch's training loss is :func:`distillation_loss`
    of the student's outputs and the frozen teacher's on the same inputs, its
    ``ce`` and ``kl`` parts summed for the ``train`` records; the rest (sums,
    metrics, score) is the objective's."""

    parts = ("ce", "kl")

    def __init__(self, objective: "Objective", distillation: Distillation, teacher: "torch.nn.Module"):
        self.objective, self.distillation, self.teacher = objective, distillation, teacher

    def __getattr__(self, name: str):
        if name == "objective":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.objective, name)

    def training_loss(self, outputs, target, inputs, parts):
        import torch

        with torch.no_grad():
            teacher_outputs = self.teacher(inputs)
        loss, ce, kl = self.distillation.loss(outputs, teacher_outputs, target)
        parts["ce"] += ce.detach() * len(target)
        parts["kl"] += kl.detach() * len(target)
        return loss


def distillation_loss(student_logits: "torch.Tensor", teacher_logits: "torch.Tensor",
                      labels: "torch.Tensor", temperature: float, alpha: float):
    """``(loss, ce, kl)`` of a batch: ``loss = alpha * ce + (1 - alpha) * T^2 * kl``
    with ``kl = KL(softmax(teacher/T) || softmax(student/T))`` averaged over
    the batch (the ``T^2`` factor keeps the gradients of the soft part at the
    scale of the hard part when ``T`` changes)."""
    import torch.nn.functional as F

    ce = F.cross_entropy(student_logits, labels)
    kl = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=1),
        F.log_softmax(teacher_logits / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return alpha * ce + (1 - alpha) * temperature**2 * kl, ce, kl
