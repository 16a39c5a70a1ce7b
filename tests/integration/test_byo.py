"""The bring-your-own plan, run for real: a user's model class (its own module
beside the plan) on an ImageFolder written here; accuracy checked on the saved
predictions; the model loads and exports like a built-in; a re-run, even
after moving the folder, starts no job."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers import REPO, run_experiment, what_ran, xpm_train

pytestmark = pytest.mark.integration
PARAMS = REPO / "experiments" / "byo" / "params.yaml"
QUICK = ("epochs=4", "n_trials=2", "size=[8,8]")


def write_images(folder, per_class=12):
    """Three classes of 10x10 RGB PNGs, told apart by their dominant channel."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(("red", "green", "blue")):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 80, size=(10, 10, 3))
            pixels[:, :, k] += 150
            Image.fromarray(pixels.astype(np.uint8)).save(folder / name / f"{i}.png")


def test_byo_plan(tmp_path, monkeypatch):
    from sklearn.metrics import accuracy_score

    from xpm_train import load

    folder = tmp_path / "images"
    write_images(folder)
    workdir = tmp_path / "ws"
    result = run_experiment(PARAMS, workdir, f"folder={folder}", *QUICK)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    evaluations = list((workdir / "jobs" / "xpm_train.evaluate.evaluate").iterdir())
    assert len(evaluations) == 2
    for job in evaluations:
        results = json.loads((job / "results.json").read_text())
        saved = np.load(job / "predictions.npz")
        assert results["accuracy"] == pytest.approx(accuracy_score(saved["targets"], saved["outputs"].argmax(1)))
        assert results["samples"] == 6  # round(20% of 12) = 2 per class, 3 classes
    learns = sorted((workdir / "jobs" / "xpm_train.learn.learn").iterdir())
    assert all(json.loads((p / "params.json").read_text()).get("objects") for p in learns)

    # The user's model loads and exports like a built-in (its module on the path, as for the plan)
    monkeypatch.syspath_prepend(str(REPO / "experiments" / "byo"))
    loaded = load(learns[0], workspace=workdir)
    assert type(loaded.config.model).__name__ == "ResidualMLP" and loaded.network is not None
    exported = xpm_train("export", learns[0].name[:12], "--to", str(tmp_path / "exported"), "--workdir", str(workdir))
    assert exported.returncode == 0, exported.stderr
    readme = (tmp_path / "exported" / "README.md").read_text()
    assert "classes ['blue', 'green', 'red']" in readme
    snippet = readme.split("```python\n")[1].split("```")[0] + "print(tuple(exported.predict(inputs).shape))\n"
    run = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ,
                              "PYTHONPATH": __import__("os").pathsep.join([str(REPO), str(REPO / "experiments" / "byo")])})
    assert run.returncode == 0 and run.stdout.split("\n")[-2] == "(1, 3)", run.stderr[-2000:]

    # Moving the folder keeps every ID: nothing runs again
    before = what_ran(workdir)
    moved = tmp_path / "elsewhere" / "images"
    shutil.move(str(folder), str(moved))
    again = run_experiment(PARAMS, workdir, f"folder={moved}", *QUICK)
    assert again.returncode == 0, again.stderr[-3000:]
    assert what_ran(workdir) == before


def test_bad_folders_fail_before_any_job(tmp_path):
    (tmp_path / "images" / "only").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "images" / "only" / "0.png")
    workdir = tmp_path / "ws"
    result = run_experiment(PARAMS, workdir, f"folder={tmp_path / 'images'}", *QUICK)
    assert result.returncode != 0
    assert "only one class ('only') has images" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert not list((workdir / "jobs").glob("*/*")) if (workdir / "jobs").exists() else True
