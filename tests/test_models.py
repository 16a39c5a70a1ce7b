"""Every model builds a network for each image size and trains a step."""

import pytest
import torch

from xpm_train.data.base import DataInfo
from xpm_train.models import CNN, MLP, ResNet, build


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize(
    "model",
    [MLP.C(hidden_dims=[16]), MLP.C(hidden_dims=[]), CNN.C(n_layers=2, hidden_dim=8, kernel_size=3)],
    ids=["mlp", "linear", "cnn"],
)
def test_output_shape(model, shape):
    net = build(model.instance(), DataInfo(shape=shape, outputs=10, num_classes=10))
    assert net(torch.zeros(4, *shape)).shape == (4, 10)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_resnet_small_images(shape):
    net = build(ResNet.C().instance(), DataInfo(shape=shape, outputs=10, num_classes=10))
    net.eval()
    assert net(torch.zeros(2, *shape)).shape == (2, 10)
    # the stem keeps the resolution (no stride, no max-pool), as for CIFAR
    assert net.conv1.stride == (1, 1) and isinstance(net.maxpool, torch.nn.Identity)


def test_resnet_depth_is_checked():
    with pytest.raises(ValueError, match="depth must be 18 or 34"):
        ResNet.C(depth=50).instance().module(DataInfo(shape=(3, 32, 32), outputs=10))


def test_model_ids_differ_by_params_only():
    a = MLP.C(hidden_dims=[32]).__xpm__.identifier.all
    assert a == MLP.C(hidden_dims=[32]).__xpm__.identifier.all
    assert a != MLP.C(hidden_dims=[64]).__xpm__.identifier.all


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_cnn_pools_before_its_last_relu_with_the_demos_outputs_and_gradients(n_layers):
    """CNN applies its last ReLU after the max-pool (cheaper); the demo's order
    (ReLU, then pool) gives the same outputs, gradients and parameter names."""
    from torch import nn

    from xpm_train import CNN

    torch.manual_seed(0)
    net = CNN.C(n_layers=n_layers, hidden_dim=8, kernel_size=3).instance().module(DataInfo(shape=(3, 12, 12), outputs=5))
    convs = [m for m in net if isinstance(m, nn.Conv2d)]
    demo_layers: list[nn.Module] = []
    for conv in convs:
        demo_layers += [conv, nn.ReLU()]
    demo = nn.Sequential(*demo_layers, nn.MaxPool2d(2), nn.Flatten(), net[-1])
    assert list(net.state_dict()) == list(demo.state_dict())

    x = torch.randn(4, 3, 12, 12)
    ours = net(x)
    grads = torch.autograd.grad(ours.sum(), list(net.parameters()))
    theirs = demo(x)
    demo_grads = torch.autograd.grad(theirs.sum(), list(demo.parameters()))
    assert torch.equal(ours, theirs)
    assert all(torch.equal(a, b) for a, b in zip(grads, demo_grads))


def test_weights_travel_through_one_pair_of_functions(tmp_path):
    """attach_weights/attached_weights are the one writer and reader of the
    attachment: it leaves the ID alone, and no other module touches it."""
    from pathlib import Path

    import xpm_train
    from xpm_train.models import attach_weights, attached_weights

    model = MLP.C(hidden_dims=[8])
    before = model.__xpm__.identifier.all
    assert attached_weights(model) is None
    attach_weights(model, tmp_path / "best.pt")
    assert attached_weights(model) == tmp_path / "best.pt" and model.__xpm__.identifier.all == before
    package = Path(xpm_train.__file__).parent
    readers = sorted(str(p.relative_to(package)) for p in package.rglob("*.py")
                     if "_xpm_train_weights" in p.read_text())
    assert readers == ["models.py"]
