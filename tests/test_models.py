"""Every model builds a network for each image size and trains a step."""

import pytest
import torch

from xpm_train.models import CNN, MLP, ResNet, build


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize(
    "model",
    [MLP.C(hidden_dims=[16]), MLP.C(hidden_dims=[]), CNN.C(n_layers=2, hidden_dim=8, kernel_size=3)],
    ids=["mlp", "linear", "cnn"],
)
def test_output_shape(model, shape):
    net = build(model.instance(), shape, 10)
    assert net(torch.zeros(4, *shape)).shape == (4, 10)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_resnet_small_images(shape):
    net = build(ResNet.C().instance(), shape, 10)
    net.eval()
    assert net(torch.zeros(2, *shape)).shape == (2, 10)
    # the stem keeps the resolution (no stride, no max-pool), as for CIFAR
    assert net.conv1.stride == (1, 1) and isinstance(net.maxpool, torch.nn.Identity)


def test_resnet_depth_is_checked():
    with pytest.raises(ValueError, match="depth must be 18 or 34"):
        ResNet.C(depth=50).instance().module((3, 32, 32), 10)


def test_model_ids_differ_by_params_only():
    a = MLP.C(hidden_dims=[32]).__xpm__.identifier.all
    assert a == MLP.C(hidden_dims=[32]).__xpm__.identifier.all
    assert a != MLP.C(hidden_dims=[64]).__xpm__.identifier.all
