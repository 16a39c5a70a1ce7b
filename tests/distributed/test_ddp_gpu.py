"""Two ranks on two GPUs (nccl): skipped unless this host has 2 CUDA GPUs; runs
as is on such a host (local launcher with ``gpus: auto``)."""

from __future__ import annotations

import pytest

from ddphelpers import GPUS, PLAN, RUN, cuda_devices, events, learn_folder, max_difference, weights
from helpers import run_experiment

pytestmark = [pytest.mark.integration, pytest.mark.gpu]

@pytest.mark.skipif(cuda_devices() < 2, reason="needs 2 CUDA GPUs")
def test_two_ranks_on_two_gpus(tmp_path):
    path = tmp_path / "launchers.yaml"
    path.write_text(GPUS)
    env = {"XPM_TRAIN_LAUNCHERS": str(path), "XPM_TRAIN_GPU_LOCK_DIR": str(tmp_path / "locks")}
    folders = {}
    for name, spec in (("one", "cuda(mem=1G)*1"), ("two", "cuda(mem=1G)*2 & processes=2")):
        result = run_experiment(PLAN, tmp_path / name, f"spec={spec}", "device=auto", *RUN, env=env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        folders[name] = learn_folder(tmp_path / name)
    start, = [e for e in events(folders["two"]) if e["event"] == "start"]
    assert start["ranks"] == 2 and start["device"] == "cuda:0"
    # nccl's sums are not bitwise those of one GPU: float32 tolerance
    assert max_difference(weights(folders["one"]), weights(folders["two"])) < 1e-4
