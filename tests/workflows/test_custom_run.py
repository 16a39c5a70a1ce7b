"""A training function run by the real scheduler, pruned by its trial as Tune
would do (the trial is Meta: the job ID is that of the unpruned run)."""

from __future__ import annotations

import json

import pytest

from helpers import REPO
from trials import PruneAfter

pytestmark = pytest.mark.integration


def test_pruned_by_its_trial(tmp_path, monkeypatch):
    from experimaestro import experiment

    monkeypatch.syspath_prepend(str(REPO / "experiments" / "custom"))
    from mytrain import train

    plain = train.C(lr=0.01, hidden=8, epochs=3, device="cpu")
    pruned = train.C(lr=0.01, hidden=8, epochs=3, device="cpu", trial=PruneAfter.C(epoch=0))
    assert pruned.__xpm__.identifier.all == plain.__xpm__.identifier.all

    with experiment(tmp_path / "ws", "prune", port=None) as xp:
        pruned.submit()
    folder = next((tmp_path / "ws" / "jobs" / "mytrain.train").iterdir())
    final = json.loads((folder / "final.json").read_text())
    events = [json.loads(line)["event"] for line in (folder / "events.jsonl").read_text().splitlines()]
    metrics = (folder / "metrics.jsonl").read_text().splitlines()
    assert final["pruned"] is True and "pruned" in events and len(metrics) == 1, (final, events)
    assert (folder / "checkpoints" / "best.pt").exists() and 0 <= final["objective"] <= 1


def test_tuned_by_a_study(tmp_path, monkeypatch):
    """Tune drives a training function like a Learn: its trials are cached jobs
    of the function, the study's objective is the function's Result."""
    from experimaestro import experiment

    from xpm_train.tune import Float, NoPruner, Space, Study, optimize

    monkeypatch.syspath_prepend(str(REPO / "experiments" / "custom"))
    from mytrain import train

    study = Study(label="custom", base=train.C(lr=0.01, hidden=8, epochs=1, device="cpu"),
                  space=Space([Float("lr", 1e-3, 1e-1, log=True)]), pruner=NoPruner.C(), metric="objective")
    with experiment(tmp_path / "ws", "tune-custom", port=None):
        result = optimize(study, n_trials=2)
    assert len(result.launched) == 2 and all(job.startswith("mytrain.train/") for job in result.launched)
    assert 0 <= result.best_value <= 1 and set(result.best_params) == {"lr"}
    folders = list((tmp_path / "ws" / "jobs" / "mytrain.train").iterdir())
    assert len(folders) == 2
    best = json.loads((tmp_path / "ws" / "jobs" / result.best_job / "final.json").read_text())
    assert best["objective"] == pytest.approx(result.best_value)


def test_sort_by_objective_follows_the_declared_direction(tmp_path, monkeypatch, capsys):
    """``results --sort objective`` and ``print_table(sort="objective")`` put the
    best first for a function declared ``direction="minimize"`` (the lowest
    objective), as ``--sort score`` does: the job's own direction, no guess."""
    from types import SimpleNamespace

    from experimaestro import experiment

    from helpers import xpm_train
    from xpm_train.plan import print_table

    monkeypatch.syspath_prepend(str(REPO / "tests" / "workflows"))
    from nomodel import fit_nothing

    with experiment(tmp_path / "ws", "sorted", port=None) as xp:
        for offset in (0.0, 2.0, -0.5):
            fit_nothing.C(offset=offset, device="cpu").submit()
        xp.wait()
        capsys.readouterr()
        print_table(SimpleNamespace(xp=xp), task="fit_nothing", sort="objective")
        table = capsys.readouterr().out
    header, *lines = table.splitlines()
    column = header.split().index("objective")
    objectives = [float(line.split()[column]) for line in lines]
    assert objectives == [0.5, 1.0, 3.0], table
    for column in ("objective", "score"):
        listing = xpm_train("results", "--workdir", str(tmp_path / "ws"), "--sort", column, "--format", "json")
        assert listing.returncode == 0, listing.stderr
        assert [row["objective"] for row in json.loads(listing.stdout)] == [0.5, 1.0, 3.0], column
