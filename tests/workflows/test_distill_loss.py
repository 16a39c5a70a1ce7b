"""The distillation loss against a computation by hand, and the Distillation config."""

from __future__ import annotations

import math

import pytest
import torch

from xpm_train.distill import distillation_loss


def manual_loss(student, teacher, labels, temperature, alpha):
    """alpha * CE + (1 - alpha) * T^2 * KL(softmax(teacher/T) || softmax(student/T)), with loops."""
    n = len(labels)
    ce = kl = 0.0
    for s_row, t_row, y in zip(student.tolist(), teacher.tolist(), labels.tolist()):
        s_exp = [math.exp(v) for v in s_row]
        ce += -math.log(s_exp[y] / sum(s_exp))
        p = [math.exp(v / temperature) for v in t_row]
        q = [math.exp(v / temperature) for v in s_row]
        p = [v / sum(p) for v in p]
        q = [v / sum(q) for v in q]
        kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    ce, kl = ce / n, kl / n
    return alpha * ce + (1 - alpha) * temperature**2 * kl, ce, kl


@pytest.mark.parametrize("temperature, alpha", [(1.0, 0.5), (4.0, 0.3), (2.5, 0.0), (3.0, 1.0)])
def test_loss_matches_the_formula(temperature, alpha):
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(6, 5, generator=generator, dtype=torch.float64) * 3
    teacher = torch.randn(6, 5, generator=generator, dtype=torch.float64) * 3
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    loss, ce, kl = distillation_loss(student, teacher, labels, temperature, alpha)
    expected = manual_loss(student, teacher, labels, temperature, alpha)
    assert (loss.item(), ce.item(), kl.item()) == pytest.approx(expected, rel=1e-9)


def test_kl_vanishes_when_student_equals_teacher():
    logits = torch.randn(4, 3, dtype=torch.float64)
    loss, ce, kl = distillation_loss(logits, logits.clone(), torch.tensor([0, 1, 2, 0]), 4.0, 0.5)
    assert kl.item() == pytest.approx(0.0, abs=1e-12)
    assert loss.item() == pytest.approx(0.5 * ce.item())


def test_gradient_reaches_only_the_student():
    student = torch.randn(4, 3, requires_grad=True)
    teacher = torch.randn(4, 3, requires_grad=True)
    distillation_loss(student, teacher.detach(), torch.tensor([0, 1, 2, 0]), 2.0, 0.5)[0].backward()
    assert student.grad is not None and teacher.grad is None


def test_distill_params_and_checks():
    from xpm_train import MLP, Adam, Digits, Distillation, Learn

    common = dict(model=MLP.C(hidden_dims=[8]), data=Digits.C(split="train"), optimizer=Adam.C(lr=1e-3))
    teacher = MLP.C(hidden_dims=[64])

    def ident(distill=None, **meta):
        return Learn.C(**common, distill=distill, **meta).__xpm__.identifier.all

    base = ident(Distillation.C(teacher=teacher))
    assert ident(Distillation.C(teacher=teacher, temperature=4.0, alpha=0.5)) == base
    assert ident(Distillation.C(teacher=teacher, temperature=2.0)) != base
    assert ident(Distillation.C(teacher=MLP.C(hidden_dims=[32]))) != base
    assert ident(Distillation.C(teacher=teacher), device="cpu", gpu_memory_fraction=0.5) == base
    assert ident() != base
    # a plain Learn keeps its ID: distill=None is the ignored default
    assert ident() == Learn.C(**common).__xpm__.identifier.all
    with pytest.raises(ValueError, match="must be"):
        Distillation.C(teacher=teacher, alpha=1.5)
    with pytest.raises(ValueError, match="must be"):
        Distillation.C(teacher=teacher, temperature=0.0)


def test_a_teacher_without_weights_is_refused():
    from xpm_train import MLP, Distillation
    from xpm_train.data.base import DataInfo

    with pytest.raises(ValueError, match="init task"):
        Distillation.C(teacher=MLP.C(hidden_dims=[4])).instance().teacher_network(DataInfo(shape=(1, 8, 8), outputs=10))
