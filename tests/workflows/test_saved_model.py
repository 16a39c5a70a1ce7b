"""A training function that calls ctx.save_model gets Learn's outputs: Evaluate
follows it (init task), load(...).network and export work; one that saves
none gets one-line errors; Tune follows its direction."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from helpers import REPO

pytestmark = pytest.mark.integration


def test_saved_model_is_evaluated_loaded_and_exported(tmp_path, monkeypatch):
    import torch
    from experimaestro import experiment

    import xpm_train
    from xpm_train import Digits, Evaluate
    from xpm_train.export import export

    monkeypatch.syspath_prepend(str(REPO / "experiments" / "custom"))
    from mytrain import train

    with experiment(tmp_path / "ws", "saved", port=None):
        task = train.C(lr=0.01, hidden=8, epochs=2, device="cpu")
        output = task.submit()
        evaluation = Evaluate.C(model=task.saved_model(), data=Digits.C(split="test"), device="cpu")
        evaluation.submit(init_tasks=[output])
    results = json.loads((evaluation.__xpm__.job.path / "results.json").read_text())
    job = task.__xpm__.job
    loaded = xpm_train.load(job.path)
    test = Digits.C(split="test").instance().arrays()
    inputs = (test.images.float() / 255 - test.mean[0]) / test.std[0]
    with torch.no_grad():
        accuracy = (loaded.network(inputs).argmax(1) == test.labels).float().mean().item()
    assert accuracy == pytest.approx(results["accuracy"], abs=0.5 / len(test))

    target = export(job.path, tmp_path / "exported", workspace=tmp_path / "ws")
    assert {"model.pt", "network.pt", "data.json", "params.json", "README.md"} <= {p.name for p in target.iterdir()}
    shutil.rmtree(tmp_path / "ws")  # the export stands alone
    snippet = (target / "README.md").read_text().split("```python\n")[1].split("```")[0]
    run = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO / "experiments" / "custom")})
    assert run.returncode == 0 and "tensor(" in run.stdout, run.stderr[-2000:]


def test_a_function_without_model_gets_one_line_errors(tmp_path, monkeypatch):
    from experimaestro import experiment

    import xpm_train
    from xpm_train.export import ExportError, export
    from xpm_train.trained import NoTrainedModel
    from xpm_train.tune import NoPruner, Float, Space, Study, optimize

    monkeypatch.syspath_prepend(str(REPO / "tests" / "workflows"))
    from nomodel import fit_nothing

    base = fit_nothing.C(device="cpu")
    study = Study(label="nomodel", base=base, space=Space([Float("offset", 0.0, 1.0)]), pruner=NoPruner.C())
    assert (study.metric, study.direction) == ("score", "minimize")
    with experiment(tmp_path / "ws", "nomodel", port=None):
        result = optimize(study, n_trials=3)
    finals = [json.loads((p / "final.json").read_text()) for p in (tmp_path / "ws" / "jobs" / "nomodel.fit_nothing").iterdir()]
    assert result.best_value == pytest.approx(min(f["score"] for f in finals))  # minimised

    loaded = xpm_train.load(result.best_job, workspace=tmp_path / "ws")
    with pytest.raises(NoTrainedModel, match=r"fit_nothing saved no model.*ctx.save_model\(net\)"):
        loaded.network
    with pytest.raises(ExportError, match="ctx.save_model"):
        export(result.best_job, tmp_path / "out", workspace=tmp_path / "ws")
    assert not (tmp_path / "out").exists()
