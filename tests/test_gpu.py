"""The CUDA path (channels-last, bf16 autocast, data on the device). Skipped without a GPU."""

import pytest
import torch

from xpm_train.runtime import autocast_bf16, mixed_precision

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_amp_policy_on_cpu():
    cpu = torch.device("cpu")
    assert autocast_bf16("auto", cpu) is False  # bf16 is slower than float32 on such CPUs
    assert autocast_bf16("off", cpu) is False
    assert autocast_bf16("bf16", cpu) is True
    with pytest.raises(ValueError, match="amp='fp8'"):
        autocast_bf16("fp8", cpu)


def test_mixed_precision_context():
    """bf16 when asked (the forward pass runs in bf16); no autocast at all otherwise."""
    cpu = torch.device("cpu")
    linear = torch.nn.Linear(4, 2)
    with mixed_precision(True, cpu):
        assert linear(torch.ones(1, 4)).dtype == torch.bfloat16
    with mixed_precision(False, cpu):
        assert not torch.is_autocast_enabled("cpu")
        assert linear(torch.ones(1, 4)).dtype == torch.float32


@pytest.mark.gpu
@cuda
def test_cuda_step_channels_last_bf16():
    from xpm_train import CNN, Synthetic
    from xpm_train.models import build
    from xpm_train.objectives import Classification
    from xpm_train.pipeline import DeviceData

    device = torch.device("cuda")
    arrays = Synthetic.C(split="train", num_samples=256, channels=3, height=32, width=32).instance().arrays()
    data = DeviceData(arrays, device, channels_last=True)
    assert data.resident and data.images.is_cuda
    net = build(CNN.C(n_layers=2, hidden_dim=16, kernel_size=3).instance(), Classification.C().describe(arrays))
    net = net.to(device).to(memory_format=torch.channels_last)
    images, labels = next(data.batches(64))
    assert images.is_contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast_bf16("auto", device)):
        loss = torch.nn.functional.cross_entropy(net(images), labels)
    loss.backward()
    assert torch.isfinite(loss)
