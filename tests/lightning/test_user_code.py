"""Common Lightning code hosted by LightningFit: Trainer limits, your own
callbacks and loggers, ``self.logger.experiment``, your own ModelCheckpoint,
per-step validation points across a resume, predict, precision on a CPU.

One tiny job (tinylit.py) killed inside its second epoch and resumed, and
the same job uninterrupted in another workspace, serve most tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lighthelpers import TASK, events, job_folder

pytest.importorskip("lightning.pytorch", reason="the Lightning extra is not installed: pip install -e '.[test]'")

HERE = Path(__file__).resolve().parent
# 5 batches of 4 per epoch, 2 validation batches, 12 steps: epochs of 5, 5 and 2 steps
LIMITS = dict(max_epochs=3, max_steps=12, limit_train_batches=5, limit_val_batches=2)


def tiny_fit(**kwargs):
    from tinyconfigs import Csv, HalveLr, LrMonitor, Tiny, TinyData

    from xpm_train.lightning import LightningFit

    options = dict(LIMITS, callbacks=[HalveLr.C()], observers=[LrMonitor.C()], loggers=[Csv.C()],
                   accelerator="cpu", log_every_n_steps=1)
    return LightningFit.C(module=Tiny.C(), datamodule=TinyData.C(), **{**options, **kwargs})


def submit(workdir: Path, kill: bool = False) -> None:
    """Run the tiny job in ``workdir`` (``kill``: with KillOnce, which SIGKILLs
    it once at the 3rd batch of epoch 1)."""
    from experimaestro import experiment
    from tinyconfigs import KillOnce, LrMonitor

    observers = [LrMonitor.C()] + ([KillOnce.C(marker=workdir / "killed")] if kill else [])
    with experiment(workdir, "tiny", port=None, no_environmental_impact=True) as xp:
        xp.workspace.python_path.append(str(HERE))
        tiny_fit(observers=observers).submit()


def run(workdir: Path, kill: bool = False) -> subprocess.CompletedProcess:
    """:func:`submit` in a process of its own (experimaestro's scheduler would
    take the same job of another workspace, submitted by this process, as this one)."""
    code = (f"import sys; sys.path[:0] = [{str(HERE)!r}, {str(HERE.parent)!r}]\n"
            f"from test_user_code import submit; submit(__import__('pathlib').Path({str(workdir)!r}), {kill})")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


def points(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("reference")
    result = run(workdir)
    assert events(job_folder(workdir))[-1]["event"] == "end", result.stderr[-3000:]
    return job_folder(workdir)


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> Path:
    """The job SIGKILLed at its 3rd batch of epoch 1 (after epoch 0's checkpoint), then run again."""
    workdir = tmp_path_factory.mktemp("resumed")
    run(workdir, kill=True)
    killed = job_folder(workdir)
    assert (workdir / "killed").exists() and events(killed)[-1]["event"] == "checkpoint", events(killed)
    result = run(workdir, kill=True)
    assert events(job_folder(workdir))[-1]["event"] == "end", result.stderr[-3000:]
    return job_folder(workdir)


def test_limits_steps_and_callbacks_are_params_observers_and_loggers_meta():
    from tinyconfigs import Csv, HalveLr, LrMonitor

    from xpm_train.checks import InvalidValue

    def ident(**kwargs):
        return tiny_fit(**kwargs).__xpm__.identifier.all

    base = ident()
    assert ident(observers=[], loggers=[]) == base and ident(observers=[LrMonitor.C(), LrMonitor.C()]) == base
    assert ident(loggers=[Csv.C(), Csv.C()]) == base
    for changed in (dict(max_steps=11), dict(limit_train_batches=4), dict(limit_val_batches=0.5),
                    dict(callbacks=[]), dict(callbacks=[HalveLr.C(), HalveLr.C()])):
        assert ident(**changed) != base, changed
    assert ident(limit_train_batches=5.0) == base  # one spelling of 5 batches, one ID
    for bad in (dict(limit_train_batches=0), dict(limit_train_batches=1.5), dict(limit_val_batches=-1),
                dict(max_steps=0)):
        with pytest.raises(InvalidValue):
            tiny_fit(**bad)


def test_the_limits_and_max_steps_bound_the_run(reference):
    final = json.loads((reference / "final.json").read_text())
    assert final["steps"] == 12 and final["epochs"] == 3
    train = [p for p in points(reference) if p["split"] == "train" and "loss_step" in p]
    assert [sum(p["epoch"] == e for p in train) for e in range(3)] == [5, 5, 2]
    val = [p for p in points(reference) if p["split"] == "val" and "loss_step" in p]
    # Lightning validates no epoch that max_steps cut short: final.json keeps the last validation
    assert [sum(p["epoch"] == e for p in val) for e in range(3)] == [2, 2, 0]


def test_user_callbacks_and_loggers_run(reference):
    """HalveLr (a Param) halves the rate every epoch, LearningRateMonitor (Meta)
    logs it, the CSVLogger writes in <job>/loggers."""
    rates = {p["epoch"]: p["lr-SGD"] for p in points(reference) if "lr-SGD" in p}
    assert rates == {0: 0.1, 1: 0.025, 2: 0.00625}  # and the module's StepLR halves it too
    assert list((reference / "loggers" / "csv").glob("version_*/metrics.csv"))


def test_self_logger_experiment_writes_into_the_jobs_metrics(reference):
    rows = points(reference)
    norms = [(p["epoch"], p["step"]) for p in rows if "weight_norm" in p]
    assert norms == [(e, s) for e, steps in ((0, range(5)), (1, range(5, 10)), (2, range(10, 12))) for s in steps]
    seen = [(p["epoch"], p["epoch_seen"]) for p in rows if "epoch_seen" in p]
    assert seen == [(0, 0), (1, 1), (2, 2)]


def test_validation_step_points_keep_their_epoch_and_step_after_a_resume(resumed, reference):
    kinds = [e["event"] for e in events(resumed)]
    assert kinds.count("resume") == 1 and kinds[-1] == "end", kinds
    assert all(p["epoch"] >= 0 and p["step"] >= 0 for p in points(resumed))
    val = {(p["epoch"], p["step"]) for p in points(resumed) if p["split"] == "val" and "loss_step" in p}
    assert val == {(0, 5), (1, 10)}  # the trainer's epoch and global step at each validation
    assert val == {(p["epoch"], p["step"]) for p in points(reference) if p["split"] == "val" and "loss_step" in p}


def test_a_user_model_checkpoint_writes_apart_and_the_job_resumes_identically(resumed, reference):
    import torch

    from xpm_train import checkpoint

    saved = {}
    for folder in (resumed, reference):
        assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["best.pt", "last.ckpt",
                                                                             "last.ckpt.prev"]
        assert not (folder / "xpm-train").exists()  # where Lightning would have put them
        saved[folder] = {path.name: torch.load(path, weights_only=False)["global_step"]  # Lightning's format
                         for path in (folder / "user-checkpoints").iterdir()}
    # the resumed job's ModelCheckpoint went on from its saved state: the same best, no last-v1.ckpt
    # (its save_last writes last.ckpt again when a resumed run ends: Lightning's rule)
    assert saved[resumed].keys() == saved[reference].keys() == {"epoch=0-step=5.ckpt", "last.ckpt"}, saved
    expected, actual = (checkpoint.load(f / "checkpoints" / "last.ckpt")["state_dict"] for f in (reference, resumed))
    assert all(torch.equal(expected[k], actual[k]) for k in expected)


def test_predict_runs_the_trained_module(reference):
    import torch

    import xpm_train
    from xpm_train import lightning_predict

    job = xpm_train.load(reference, workspace=reference.parents[3])
    outputs = lightning_predict(job)
    data = job.config.datamodule.datamodule()
    with torch.no_grad():
        assert torch.equal(torch.cat(outputs), job.network(data.x[:10]))


def test_16_mixed_on_a_cpu_is_refused_not_run_as_bf16():
    from xpm_train.lightning import PrecisionError
    from xpm_train.lightning.options import trainer_precision_problem

    with pytest.raises(PrecisionError, match="bf16-mixed"):
        tiny_fit(precision="16-mixed").__xpm__.validate()  # at submit
    tiny_fit(precision="bf16-mixed").__xpm__.validate()

    import lightning.pytorch as pl
    import torch

    if torch.cuda.is_available():
        pytest.skip("accelerator='auto' picks the GPU here")
    # accelerator="auto" on a CPU host: known only in the task, refused there
    with pytest.warns(UserWarning, match="bf16"):
        trainer = pl.Trainer(accelerator="auto", precision="16-mixed", logger=False, enable_progress_bar=False)
    assert "16-mixed" in trainer_precision_problem(trainer, "16-mixed")
    assert trainer_precision_problem(pl.Trainer(accelerator="auto", precision="bf16-mixed", logger=False),
                                     "bf16-mixed") is None
