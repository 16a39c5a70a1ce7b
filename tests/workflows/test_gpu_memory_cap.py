"""The Meta GPU memory cap of Learn, Distill and training functions."""

from __future__ import annotations

import pytest
import torch

from xpm_train.runtime import cap_gpu_memory


def test_cap_is_checked_and_ignored_on_cpu():
    cap_gpu_memory(torch.device("cpu"), None)
    cap_gpu_memory(torch.device("cpu"), 0.5)  # no CUDA call on CPU
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="gpu_memory_fraction"):
            cap_gpu_memory(torch.device("cpu"), bad)


def test_cap_does_not_change_ids():
    from xpm_train import MLP, Adam, Digits, Learn

    def ident(**meta):
        learn = Learn.C(model=MLP.C(), data=Digits.C(split="train"), optimizer=Adam.C(lr=1e-3), **meta)
        return learn.__xpm__.identifier.all

    assert ident(gpu_memory_fraction=0.25) == ident()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cap_is_applied_on_cuda():
    device = torch.device("cuda", 0)
    before = torch.cuda.get_per_process_memory_fraction(device)
    try:
        cap_gpu_memory(device, 0.25)
        assert torch.cuda.get_per_process_memory_fraction(device) == pytest.approx(0.25)
        total = torch.cuda.get_device_properties(device).total_memory
        with pytest.raises(torch.OutOfMemoryError):
            torch.empty(int(total * 0.3), dtype=torch.uint8, device=device)
    finally:
        torch.cuda.set_per_process_memory_fraction(before, device)
        torch.cuda.empty_cache()
