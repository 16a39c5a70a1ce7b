"""Learning-rate schedules are pure functions of the step; optimizers validate."""

import pytest
import torch

from xpm_train.optim import SGD, Adam, AdamW, ConstantRate, Cosine, StepDecay


def factors(schedule, total=100, per_epoch=10):
    return [schedule.instance().factor(step, total, per_epoch) for step in range(total)]


def test_constant_with_warmup():
    values = factors(ConstantRate.C(warmup_epochs=1))
    assert values[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert set(values[10:]) == {1.0}


def test_cosine_goes_from_one_to_min():
    values = factors(Cosine.C(min_factor=0.1))
    assert values[0] == pytest.approx(1.0)
    assert values[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_step_decay_milestones():
    values = factors(StepDecay.C(milestones=[0.5, 0.75], gamma=0.1))
    assert values[49] == pytest.approx(1.0)
    assert values[50] == pytest.approx(0.1)
    assert values[75] == pytest.approx(0.01)


@pytest.mark.parametrize("config, kind", [(SGD.C(lr=0.1), torch.optim.SGD),
                                          (Adam.C(lr=0.1), torch.optim.Adam),
                                          (AdamW.C(lr=0.1), torch.optim.AdamW)])
def test_optimizers_create(config, kind):
    optimizer = config.instance().create([torch.nn.Parameter(torch.zeros(2))])
    assert isinstance(optimizer, kind)
    assert optimizer.param_groups[0]["lr"] == 0.1


@pytest.mark.parametrize("make", [lambda: Adam.C(lr=0.0), lambda: SGD.C(lr=-1.0),
                                  lambda: AdamW.C(weight_decay=-0.1), lambda: Cosine.C(min_factor=2.0)])
def test_bad_values_are_refused_when_built(make):
    with pytest.raises(ValueError, match="must be"):
        make()


@pytest.mark.parametrize("kind", [Adam, AdamW])
def test_fused_adam_is_the_default_and_trains_alike(kind):
    """``fused`` (default) selects torch's fused kernel; ``fused=False`` the
    for-loop implementation: another job ID, the same training up to rounding."""
    assert kind.C(lr=1e-3, fused=True).__xpm__.identifier.all == kind.C(lr=1e-3).__xpm__.identifier.all
    assert kind.C(lr=1e-3, fused=False).__xpm__.identifier.all != kind.C(lr=1e-3).__xpm__.identifier.all
    results = []
    for fused in (False, True):
        torch.manual_seed(0)
        net = torch.nn.Linear(8, 3)
        optimizer = kind.C(lr=1e-2, fused=fused).instance().create(net.parameters())
        assert optimizer.defaults["fused"] is (True if fused else None)
        x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
        for _ in range(20):
            loss = torch.nn.functional.cross_entropy(net(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        results.append(net.weight.detach().clone())
    assert torch.allclose(results[0], results[1], atol=1e-5)


def test_the_constant_schedule_renamed_keeps_its_identifier_and_old_name():
    import xpm_train
    from xpm_train.optim import Constant

    assert Constant is ConstantRate is xpm_train.Constant  # the params.json of older jobs name it
    assert "ConstantRate" in xpm_train.__all__ and "Constant" not in xpm_train.__all__  # experimaestro's name
    assert str(ConstantRate.C().__xpmtype__.identifier) == "xpm_train.optim.constant"
