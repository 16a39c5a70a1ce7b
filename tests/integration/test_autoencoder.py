"""The autoencoder plan, run for real: the reconstruction MSE checked against
scikit-learn on the saved predictions; a re-run starts no job."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import REPO, run_experiment, what_ran

pytestmark = pytest.mark.integration
PARAMS = REPO / "experiments" / "autoencoder" / "params.yaml"
QUICK = ("epochs=5", "bottleneck=[8,32]")


def test_autoencoder_plan(tmp_path):
    from scipy.special import expit
    from sklearn.metrics import mean_squared_error

    from xpm_train import Digits

    workdir = tmp_path / "ws"
    result = run_experiment(PARAMS, workdir, *QUICK)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    test = Digits.C(split="test").instance().arrays()
    pixels = test.images.numpy().reshape(len(test), -1) / 255  # the target: the input in [0, 1]
    errors = {}
    for folder in (workdir / "jobs" / "xpm_train.evaluate.evaluate").iterdir():
        results = json.loads((folder / "results.json").read_text())
        saved = np.load(folder / "predictions.npz")
        np.testing.assert_allclose(saved["targets"].reshape(len(test), -1), pixels, atol=1e-6)
        reconstruction = expit(saved["outputs"])  # bce: the outputs are logits
        assert results["mse"] == pytest.approx(mean_squared_error(pixels, reconstruction), rel=1e-4)
        errors[folder.name] = results["mse"]
    assert len(errors) == 2 and max(errors.values()) < pixels.var()  # better than the mean image

    before = what_ran(workdir)
    again = run_experiment(PARAMS, workdir, *QUICK)
    assert again.returncode == 0, again.stderr[-3000:]
    assert what_ran(workdir) == before
