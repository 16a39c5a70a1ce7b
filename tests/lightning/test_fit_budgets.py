"""Prefix budgets of LightningFit (``horizon``): a larger ``max_epochs``
continues the done run of a smaller one from its ``last.ckpt`` and ends, on
the CPU, with the weights, summary and metrics of a straight run.

tests/budgetplan/lightning.yaml (the digits example's module, a StepLR
schedule, 6 batches an epoch, horizon 3): one plan run submitting budgets 1
then 2 (the second waits for the first and continues it), and budget 2 alone
in another workspace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import REPO, run_experiment
from lighthelpers import TASK, events
from xpm_train import jobfolder

pytest.importorskip("lightning.pytorch", reason="the Lightning extra is not installed: pip install -e '.[test]'")
pytestmark = pytest.mark.integration
PLAN = REPO / "tests" / "budgetplan" / "lightning.yaml"


def by_budget(workdir: Path) -> dict[int, Path]:
    return {json.loads((p / jobfolder.FINAL).read_text())["epochs"]: p for p in (workdir / "jobs" / TASK).iterdir()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("lightning-budgets")
    for name, budgets in (("together", "[1, 2]"), ("straight", "[2]")):
        result = run_experiment(PLAN, root / name, f"max_epochs={budgets}")
        assert result.returncode == 0, result.stderr[-3000:]
    return {name: by_budget(root / name) for name in ("together", "straight")}


def test_a_larger_max_epochs_continues_the_done_smaller_one(runs):
    short, long = runs["together"][1], runs["together"][2]
    (start,) = [e for e in events(long) if e["event"] == "start"]
    assert start["continued_from"] == jobfolder.id_of(short) and start["horizon"] == 3
    assert [e["epoch"] for e in events(long) if e["event"] == "checkpoint"] == [1]  # trained epoch 1 only
    assert json.loads((long / jobfolder.FINAL).read_text())["continued_from"] == jobfolder.id_of(short)


def test_the_continued_fit_ends_bit_identical_to_a_straight_run(runs):
    import torch

    from xpm_train import checkpoint

    continued, straight = runs["together"][2], runs["straight"][2]
    assert continued.name == straight.name
    ours, theirs = (checkpoint.load(f / jobfolder.CHECKPOINTS / jobfolder.LAST_LIGHTNING) for f in (continued, straight))
    assert ours["state_dict"].keys() == theirs["state_dict"].keys()
    assert all(torch.equal(ours["state_dict"][k], theirs["state_dict"][k]) for k in theirs["state_dict"])
    assert ours["epoch"] == theirs["epoch"] and ours["global_step"] == theirs["global_step"] == 12
    summaries = [{k: v for k, v in json.loads((f / jobfolder.FINAL).read_text()).items()
                  if k not in ("wall_time", "continued_from")} for f in (continued, straight)]
    assert summaries[0] == summaries[1] and summaries[1]["epochs"] == 2 and summaries[1]["horizon"] == 3
    points = [[{k: v for k, v in json.loads(line).items() if k != "elapsed"}
               for line in (f / jobfolder.METRICS).read_text().splitlines()] for f in (continued, straight)]
    assert points[0] == points[1] and {p["epoch"] for p in points[1]} == {0, 1}


def test_a_max_epochs_beyond_the_horizon_is_refused_when_submitted(monkeypatch):
    from xpm_train import LightningFit
    from xpm_train.budget import BudgetError

    monkeypatch.syspath_prepend(str(REPO / "experiments" / "lightning"))
    from digits_configs import DigitsClassifier, DigitsData

    def fit(**values):
        return LightningFit.C(module=DigitsClassifier.C(), datamodule=DigitsData.C(), **values)

    with pytest.raises(BudgetError, match="LightningFit: max_epochs=4 is beyond horizon=3") as error:
        fit(max_epochs=4, horizon=3).__xpm__.validate()
    assert "\n" not in str(error.value)
    continued = fit(max_epochs=3, horizon=3)
    continued.__xpm__.validate()
    assert continued.prefixes == [jobfolder.job_id(fit(max_epochs=e, horizon=3)) for e in (2, 1)]
    assert jobfolder.job_id(fit(max_epochs=3)) != jobfolder.job_id(continued)
