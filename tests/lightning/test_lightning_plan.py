"""The real experiments/lightning plan: a grid and a short study of
LightningFit jobs; re-run starts nothing; results, load and export read the
jobs like Learn's; a trial told to prune stops the Trainer early."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import REPO, run_experiment, what_ran

pytest.importorskip("lightning.pytorch", reason="the Lightning extra is not installed: pip install -e '.[test]'")
pytestmark = pytest.mark.integration

EXAMPLE = REPO / "experiments" / "lightning"
PLAN = EXAMPLE / "params.yaml"
OVERRIDES = ("hidden=[16, 32]", "max_epochs=2", "n_trials=2", "tracking_uri=off")
TASK = "xpm_train.lightning.fit.lightningfit"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("lightning")
    result = run_experiment(PLAN, workdir, *OVERRIDES)
    assert result.returncode == 0, result.stderr[-4000:]
    (workdir / "first-run.out").write_text(result.stdout)
    return workdir


def finals(workdir):
    return {folder.name: json.loads((folder / "final.json").read_text())
            for folder in (workdir / "jobs" / TASK).iterdir()}


def test_the_grid_and_the_study_run_as_lightning_jobs(workdir):
    jobs = finals(workdir)
    assert len(jobs) == 4  # 2 grid points + 2 trials
    for final in jobs.values():
        assert final["monitor"] == "val_accuracy" and 0 <= final["best"]["val_accuracy"] <= 1
        if not final["pruned"]:
            assert final["epochs"] == 2 and set(final["test"]) == {"test_loss", "test_accuracy"}
        else:
            assert final["epochs"] < 2 and "test" not in final
    output = (workdir / "first-run.out").read_text()
    assert "study digits-lightning-" in output and "best.val_accuracy" in output
    assert output.count("COMPLETE") + output.count("PRUNED") >= 2
    for folder in (workdir / "jobs" / TASK).iterdir():
        points = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        assert {p["split"] for p in points} >= {"train", "val"}
        assert (folder / "checkpoints" / "last.ckpt").exists() and (folder / "checkpoints" / "best.pt").exists()


def test_second_run_starts_no_job(workdir):
    before = what_ran(workdir)
    result = run_experiment(PLAN, workdir, *OVERRIDES)
    assert result.returncode == 0, result.stderr[-4000:]
    assert what_ran(workdir) == before


def test_results_load_and_export_read_the_jobs(workdir, tmp_path, monkeypatch):
    import torch

    import xpm_train
    from xpm_train.export import export

    monkeypatch.syspath_prepend(str(EXAMPLE))
    frame = xpm_train.results(workdir, experiment="lightning", where={"hidden": 32})
    assert len(frame) == 1 and frame.iloc[0]["state"] == "done"
    assert 0 < frame.iloc[0]["best.val_accuracy"] <= 1 and "test.test_accuracy" in frame

    job = xpm_train.load(frame.iloc[0]["job"], workspace=workdir)
    assert type(job.network).__name__ == "DigitsClassifier" and not job.network.training
    data = job.config.datamodule.datamodule()
    data.setup("test")
    images, labels = data.test_set.tensors
    with torch.no_grad():
        accuracy = (job.network(images).argmax(1) == labels).float().mean().item()
    assert accuracy == pytest.approx(job.metrics["test"]["test_accuracy"], abs=1e-6)

    target = export(frame.iloc[0]["job"], tmp_path / "exported", workspace=workdir)
    weights = torch.load(target / "model.pt")
    assert all(torch.equal(weights[k], v) for k, v in job.network.state_dict().items())
    assert (target / "final.json").exists() and (target / "README.md").exists()
    # its README snippet runs in a fresh Python (no data.json: it prints the network)
    snippet = (target / "README.md").read_text().split("```python\n")[1].split("```")[0]
    run = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(EXAMPLE)])})
    assert run.returncode == 0 and "DigitsClassifier" in run.stdout, run.stderr[-3000:]


def test_a_pruned_trial_stops_the_trainer_early(tmp_path, monkeypatch):
    from experimaestro import experiment

    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.syspath_prepend(str(REPO / "tests" / "workflows"))
    from digits_configs import DigitsClassifier, DigitsData
    from trials import PruneAfter

    from xpm_train.lightning import LightningFit

    def fit(**meta):
        return LightningFit.C(module=DigitsClassifier.C(hidden=8), datamodule=DigitsData.C(), max_epochs=3,
                              accelerator="cpu", **meta)

    pruned = fit(trial=PruneAfter.C(epoch=0))
    assert pruned.__xpm__.identifier.all == fit().__xpm__.identifier.all  # the trial is Meta
    with experiment(tmp_path / "ws", "prune", port=None) as xp:
        xp.workspace.python_path.append(str(EXAMPLE))
        pruned.submit()
    folder = next((tmp_path / "ws" / "jobs" / TASK).iterdir())
    final = json.loads((folder / "final.json").read_text())
    events = [json.loads(line)["event"] for line in (folder / "events.jsonl").read_text().splitlines()]
    assert final["pruned"] is True and final["epochs"] == 1 and "pruned" in events, (final, events)
    epochs = {json.loads(line)["epoch"] for line in (folder / "metrics.jsonl").read_text().splitlines()}
    assert epochs == {0}
