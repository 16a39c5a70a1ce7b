"""The MNIST plan (the experimaestro demo's CNN grid), offline: synthetic files
in the real IDX format, fetched through a `mirror` folder with an MD5SUMS file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import REPO, run_experiment

pytestmark = pytest.mark.integration
PARAMS = REPO / "experiments" / "mnist" / "params.yaml"
SMALL = ("epochs=1", "hidden_dim=[8]", "n_layers=[1]", "kernel_size=[3, 5]", "batch_size=64")


@pytest.fixture()
def mirror(tmp_path):
    from xpm_train.data import write_idx_dataset

    folder = tmp_path / "mirror"
    folder.mkdir()
    write_idx_dataset(folder, n_train=400, n_test=100)
    return folder


def test_cnn_grid_runs_tagged_from_a_mirror(tmp_path, mirror):
    workdir, data = tmp_path / "ws", tmp_path / "data"
    result = run_experiment(PARAMS, workdir, *SMALL, f"mirror={mirror}", f"data_root={data}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (data / "mnist").glob("*.gz")) == sorted(p.name for p in mirror.glob("*.gz"))
    results = [json.loads(p.read_text()) for p in (workdir / "jobs").glob("xpm_train.evaluate.evaluate/*/results.json")]
    assert len(results) == 2 and all(r["samples"] == 100 for r in results)
    listing = subprocess.run(
        [sys.executable, "-m", "experimaestro", "jobs", "--workdir", str(workdir), "list", "--tags",
         "--experiment", "mnist"], capture_output=True, text=True, timeout=120)
    done = [line for line in listing.stdout.splitlines() if line.startswith("DONE")]
    assert len(done) == 4 and sum("kernel_size=5" in line and "n_layers=1" in line for line in done) == 2


def test_launcher_spec_comes_from_params(tmp_path, mirror):
    result = run_experiment(PARAMS, tmp_path / "ws", *SMALL, f"mirror={mirror}", f"data_root={tmp_path / 'data'}",
                            "launcher=duration=1h & cpu(cores=4096)")
    assert result.returncode != 0
    assert "cores=4096" in result.stderr or "4096" in result.stderr, result.stderr[-2000:]
    assert not list((tmp_path / "ws" / "jobs").glob("*/*/*.done"))
