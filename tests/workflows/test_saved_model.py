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
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "experiments" / "custom")])})
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


BLOBS = '''
import numpy as np
from experimaestro import Param
from xpm_train.extend import Dataset, feature_arrays


class Blobs(Dataset):
    """Two classes of 4 float features (a user's dataset, in its own module)."""

    split: Param[str]
    """train or test"""

    def arrays(self):
        x = np.random.default_rng(0 if self.split == "train" else 1).normal(2, 3, size=(40, 4))
        return feature_arrays(x, (x[:, 0] > 2).astype(np.int64), x, num_classes=2)
'''


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One experiment: the three ways of savefns, an Evaluate of fit_local's
    network, and a Learn of a built-in MLP on a dataset of a module of the user's."""
    from experimaestro import experiment

    from xpm_train import MLP, Adam, Digits, Evaluate, Learn

    root = tmp_path_factory.mktemp("saved")
    (root / "code").mkdir()
    (root / "code" / "blobs_data.py").write_text(BLOBS)
    sys.path[:0] = [str(REPO / "tests" / "workflows"), str(root / "code")]
    try:
        from blobs_data import Blobs
        from savefns import LocalMLP, fit_loader, fit_local, fit_plain

        with experiment(root / "ws", "saved", port=None):
            tasks = {"local": fit_local.C(model=LocalMLP.C(), device="cpu"),
                     "loader": fit_loader.C(model=LocalMLP.C(width=4), device="cpu"),
                     "plain": fit_plain.C(device="cpu"),
                     "learn": Learn.C(model=MLP.C(hidden_dims=[8]), data=Blobs.C(split="train"),
                                      optimizer=Adam.C(), epochs=1, batch_size=8, device="cpu")}
            outputs = {name: task.submit() for name, task in tasks.items()}
            evaluation = Evaluate.C(model=tasks["local"].saved_model(), data=Digits.C(split="test"), device="cpu")
            evaluation.submit(init_tasks=[outputs["local"]])
    finally:
        del sys.path[:2]
    jobs = {name: task.__xpm__.job.path for name, task in tasks.items()}
    return root, jobs, evaluation.__xpm__.job.path


def run_snippet(export_folder, cwd, *path):
    """The README's snippet of an export, in a fresh Python whose path is ``path`` only."""
    snippet = (export_folder / "README.md").read_text().split("```python\n")[1].split("```")[0]
    return subprocess.run([sys.executable, "-c", snippet], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, [REPO, *path]))})


@pytest.mark.parametrize("name", ["local", "loader", "plain"])
def test_every_way_of_saving_reloads_the_same_network(saved, name, monkeypatch):
    """issue 26 item 6: a local nn.Module class (built from a Model parameter)
    and a loop over a DataLoader save; load(job).network gives the outputs
    the function's network gave."""
    import torch

    import xpm_train
    from xpm_train import checkpoint
    from xpm_train.trained import BEST

    monkeypatch.syspath_prepend(str(REPO / "tests" / "workflows"))
    root, jobs, _ = saved
    probe = torch.load(jobs[name] / "probe.pt")
    network = xpm_train.load(jobs[name], workspace=root / "ws").network
    with torch.no_grad():
        assert torch.equal(network(probe["inputs"]), probe["outputs"])
    state = checkpoint.load(jobs[name] / BEST)
    assert ("built" in state) == (name != "plain") and ("network" in state) == (name == "plain")


def test_load_predict_normalises_raw_inputs_as_the_training_did(saved):
    """issue 26 item 17: load(job).predict(raw) is the network on the inputs
    normalised as the function normalised them."""
    import torch

    import xpm_train
    from xpm_train import Digits

    root, jobs, _ = saved
    probe = torch.load(jobs["local"] / "probe.pt")
    raw = Digits.C(split="train").instance().arrays().images[:8]
    assert raw.dtype == torch.uint8
    predicted = xpm_train.load(jobs["local"], workspace=root / "ws").predict(raw)
    assert torch.allclose(predicted, probe["outputs"], atol=1e-6)


def test_the_local_class_network_is_evaluated(saved):
    _, jobs, evaluation = saved
    results = json.loads((evaluation / "results.json").read_text())
    assert 0 <= results["accuracy"] <= 1


def test_save_model_without_a_way_to_rebuild_says_how(tmp_path, monkeypatch):
    """A network that neither pickles nor comes from a Model parameter: one-line error at save time."""
    from xpm_train.context import Context, SaveModelError
    from xpm_train.extend import DataInfo

    monkeypatch.syspath_prepend(str(REPO / "tests" / "workflows"))
    from savefns import LocalMLP

    model = LocalMLP.C().instance()
    net = model.module(DataInfo(shape=(4,), outputs=2))
    (tmp_path / "checkpoints").mkdir()
    ctx = Context(device="cpu", job_folder=tmp_path, checkpoints=tmp_path / "checkpoints", log=None, seed=0,
                  params={"model": model})
    with pytest.raises(SaveModelError, match=r"cannot save Sequential whole.*build\(model, info\).*model=model"):
        ctx.save_model(net)
    with pytest.raises(SaveModelError, match="not a parameter of the training function"):
        ctx.save_model(net, DataInfo(shape=(4,), outputs=2), model=LocalMLP.C(width=3).instance())
    assert not (tmp_path / "checkpoints" / "best.pt").exists()


@pytest.mark.parametrize("name", ["local", "loader", "plain", "learn"])
def test_exports_stand_alone(saved, name, tmp_path):
    """issue 26 item 7: an export needs the model's code only (not the
    dataset's), its README snippet runs for every kind of job, and its files
    have the umask's usual modes."""
    import stat

    from xpm_train.export import export

    root, jobs, _ = saved
    if name == "learn":  # the dataset's module is gone: export and load_export do not need it
        shutil.rmtree(root / "code")
        sys.modules.pop("blobs_data", None)
    umask = os.umask(0o022)
    try:
        target = export(jobs[name], tmp_path / "exported", workspace=root / "ws")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in target.iterdir()} == {0o644}
    assert (target / "model.json").exists() == (name != "plain") and (target / "network.pt").exists() == (name == "plain")
    run = run_snippet(target, tmp_path, REPO / "tests" / "workflows")
    assert run.returncode == 0, run.stderr[-3000:]
    assert ("tensor(" in run.stdout) == (name != "plain") and run.stdout.strip()


def test_an_export_whose_model_module_is_missing_is_a_one_line_error(saved, tmp_path):
    from xpm_train import load_export
    from xpm_train.errors import CodeNotFound
    from xpm_train.export import export

    root, jobs, _ = saved
    for name in ("local", "plain"):
        target = export(jobs[name], tmp_path / name, workspace=root / "ws")
        if name == "local":  # the model's config names a module that exists nowhere
            definition = json.loads((target / "model.json").read_text())
            for entry in definition["objects"]:
                entry["module"], entry["typename"] = "savefns_gone", "savefns_gone.LocalMLP"
                entry.pop("file", None)
            (target / "model.json").write_text(json.dumps(definition))
            with pytest.raises(CodeNotFound) as raised:
                load_export(target)
            message = str(raised.value)
            assert "module 'savefns_gone'" in message and "PYTHONPATH" in message and "\n" not in message
        else:  # the file params.json records for the network's module is not on this machine
            params = json.loads((target / "params.json").read_text())
            for entry in params["objects"]:
                entry["file"] = "/elsewhere/savefns.py"
            (target / "params.json").write_text(json.dumps(params))
        # in a Python without tests/workflows on its path: one line, not a traceback through pickle/experimaestro
        run = subprocess.run([sys.executable, "-c", f"import xpm_train; xpm_train.load_export({str(target)!r})"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
        assert run.returncode == 1 and "CodeNotFound" in run.stderr.splitlines()[-1], run.stderr[-2000:]
        assert len(run.stderr.splitlines()) <= 10, run.stderr


def test_exporting_a_job_whose_model_module_is_missing_is_a_one_line_error(saved, tmp_path):
    """xpm-train export of a job (a copy whose params.json names a module that
    exists nowhere): the CLI's one line, no traceback, nothing written."""
    from helpers import xpm_train

    root, jobs, _ = saved
    copy = tmp_path / "ws" / "jobs" / jobs["local"].parent.name / jobs["local"].name
    shutil.copytree(jobs["local"], copy)
    params = json.loads((copy / "params.json").read_text())
    for entry in params["objects"]:
        if entry["module"] == "savefns":
            entry["module"], entry["typename"] = "savefns_gone", entry["typename"].replace("savefns", "savefns_gone")
            entry.pop("file", None)
    (copy / "params.json").write_text(json.dumps(params))
    result = xpm_train("export", str(copy), "--to", str(tmp_path / "out"), "--workdir", str(tmp_path / "ws"))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "module 'savefns_gone'" in result.stderr and "PYTHONPATH" in result.stderr
    assert not (tmp_path / "out").exists()


def test_tune_then_evaluate_over_a_training_function(tmp_path, monkeypatch):
    """issue 26 item 17 (docs/tune.md "A training function as the base"): the
    Tune task's output is the best function's network, evaluated by Evaluate
    with the best task's saved_model()."""
    from experimaestro import experiment

    import xpm_train
    from xpm_train import Digits, Evaluate, Int, NoPruner, Space, Study, optimize

    monkeypatch.syspath_prepend(str(REPO / "tests" / "workflows"))
    from savefns import LocalMLP, fit_local

    study = Study(label="fn-eval", base=fit_local.C(model=LocalMLP.C(), device="cpu"),
                  space=Space([Int("model.width", 4, 6)]), pruner=NoPruner.C())
    with experiment(tmp_path / "ws", "fn-eval", port=None):
        result = optimize(study, n_trials=2)
        best_model = result.task().submit()
        evaluate = Evaluate.C(model=result.best_learn.saved_model(), data=Digits.C(split="test"), device="cpu")
        evaluate.submit(init_tasks=[best_model])
    accuracy = json.loads((evaluate.__xpm__.job.path / "results.json").read_text())["accuracy"]
    test = Digits.C(split="test").instance().arrays()
    best = xpm_train.load(result.best_job, workspace=tmp_path / "ws")
    assert accuracy == pytest.approx((best.predict(test.images).argmax(1) == test.labels).float().mean().item(),
                                     abs=0.5 / len(test))
    assert best.config.model.width == result.best_params["model.width"]


def test_a_network_saved_whole_is_loaded_with_its_recorded_module(saved, tmp_path):
    """A class of the function's top-level module: loaded from the file params.json records."""
    from helpers import xpm_train

    root, jobs, _ = saved
    exported = xpm_train("export", str(jobs["plain"]), "--to", str(tmp_path / "plain"), "--workdir", str(root / "ws"))
    assert exported.returncode == 0, exported.stderr[-3000:]
    run = subprocess.run([sys.executable, "-c", f"import xpm_train; print(xpm_train.load_export({str(tmp_path / 'plain')!r}).network)"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0 and "TopLevelNet" in run.stdout, run.stderr[-3000:]
