"""Prefix budgets (:mod:`xpm_train.budget`): a Learn with a horizon and a
larger budget continues the done run of a smaller one, and ends with the very
weights of a straight run (CPU).

One plan (budgetplan: dropout, augmentation, momentum, a warm-up + cosine
schedule over horizon=6 epochs) runs with epochs=2 then epochs=5 in one
workspace, with epochs=5 alone in another, and with both at once in a third.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import REPO, run_experiment
from xpm_train import jobfolder

pytestmark = pytest.mark.integration
PARAMS = REPO / "tests" / "budgetplan" / "params.yaml"
LEARN = "xpm_train.learn.learn"


def learn_jobs(workdir: Path) -> dict[int, Path]:
    """The Learn folders of ``workdir`` by the epochs they ran."""
    return {json.loads((p / jobfolder.FINAL).read_text())["epochs"]: p for p in (workdir / "jobs" / LEARN).iterdir()}


def events(folder: Path, kind: str) -> list[dict]:
    from xpm_train.metrics import read_jsonl

    return [e for e in read_jsonl(folder / jobfolder.EVENTS) if e["event"] == kind]


def epoch_points(folder: Path) -> list[tuple]:
    """The train and val points of metrics.jsonl (no timings)."""
    from xpm_train.metrics import read_jsonl

    return [(p["epoch"], p["split"], p["loss"], p["accuracy"]) for p in read_jsonl(folder / jobfolder.METRICS)
            if p.get("split") in ("train", "val")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The Learn folders by epochs of the workspaces ``continued`` (a run with
    epochs=2, then one with epochs=5), ``straight`` (epochs=5) and
    ``together`` (one run submitting epochs=2, then 5)."""
    root = tmp_path_factory.mktemp("budget")
    plans = {"continued": ("[2]", "[5]"), "straight": ("[5]",), "together": ("[2, 5]",)}
    for name, budgets in plans.items():
        for epochs in budgets:
            result = run_experiment(PARAMS, root / name, f"epochs={epochs}")
            assert result.returncode == 0, result.stderr[-3000:]
    return {name: learn_jobs(root / name) for name in plans}


@pytest.mark.parametrize("workspace", ["continued", "together"])
def test_a_larger_budget_continues_the_done_smaller_one(runs, workspace):
    """Also when one plan run submits both: the longer job waits for the shorter."""
    short, long = runs[workspace][2], runs[workspace][5]
    (start,) = events(long, "start")
    assert start["continued_from"] == jobfolder.id_of(short) and (start["epoch"], start["step"]) == (2, 12)
    assert [e["epoch"] for e in events(long, "checkpoint")] == [3, 4, 5]  # trained 3 epochs, not 5
    assert json.loads((long / jobfolder.FINAL).read_text())["continued_from"] == jobfolder.id_of(short)
    assert "continued_from" not in json.loads((short / jobfolder.FINAL).read_text())


@pytest.mark.parametrize("workspace", ["continued", "together"])
def test_the_continued_run_ends_bit_identical_to_a_straight_run(runs, workspace):
    import torch

    from xpm_train import checkpoint

    continued, straight = runs[workspace][5], runs["straight"][5]
    assert continued.name == straight.name  # the same job (ID) in two workspaces
    assert [e["epoch"] for e in events(straight, "checkpoint")] == [1, 2, 3, 4, 5]
    for name in ("last.pt", "best.pt"):
        ours, theirs = (checkpoint.load(f / "checkpoints" / name) for f in (continued, straight))
        assert ours["model"].keys() == theirs["model"].keys()
        assert all(torch.equal(ours["model"][k], theirs["model"][k]) for k in ours["model"])
    ours, theirs = (checkpoint.load(f / "checkpoints" / "last.pt")["optimizer"]["state"] for f in (continued, straight))
    assert all(torch.equal(ours[k]["momentum_buffer"], theirs[k]["momentum_buffer"]) for k in ours)
    # the folder reads as a straight run's: every epoch's metrics, and the same summary
    assert epoch_points(continued) == epoch_points(straight) and len(epoch_points(straight)) == 10
    ours, theirs = (json.loads((f / jobfolder.FINAL).read_text()) for f in (continued, straight))
    timings = ("wall_time", "samples_per_s", "continued_from")
    assert {k: v for k, v in ours.items() if k not in timings} == {k: v for k, v in theirs.items() if k not in timings}
    assert theirs["horizon"] == 6 and theirs["epochs"] == 5


def test_a_budget_beyond_the_horizon_is_refused_in_the_plan(tmp_path):
    workdir = tmp_path / "ws"
    result = run_experiment(PARAMS, workdir, "epochs=[7]", timeout=120)
    assert result.returncode != 0
    assert "BudgetError: Learn: epochs=7 is beyond horizon=6" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not (workdir / "jobs").exists() or not any((workdir / "jobs").iterdir())


def learn_config(**values):
    from xpm_train import MLP, SGD, Cosine, Learn, Synthetic

    return Learn.C(model=MLP.C(hidden_dims=[8]), data=Synthetic.C(split="train"), optimizer=SGD.C(lr=0.1),
                   schedule=Cosine.C(), **values)


def test_the_plan_records_the_ids_of_the_smaller_budgets_init_tasks_included():
    from xpm_train import MLP, LoadWeights

    init = LoadWeights.C(model=MLP.C(hidden_dims=[8]), path=Path("/nowhere/best.pt"))

    def submitted(epochs):
        config = learn_config(epochs=epochs, horizon=6)
        config.__xpm__.set_init_tasks([init])
        return config

    learn = submitted(4)
    learn.__xpm__.validate()
    expected = [jobfolder.job_id(submitted(e)) for e in (3, 2, 1)]
    assert learn.prefixes == expected
    assert jobfolder.job_id(learn_config(epochs=3, horizon=6)) not in expected  # the init task counts


def test_without_a_horizon_nothing_is_continued_and_the_id_is_unchanged():
    plain, explicit = learn_config(epochs=4), learn_config(epochs=4, horizon=None)
    plain.__xpm__.validate()
    assert plain.prefixes is None
    assert jobfolder.job_id(plain) == jobfolder.job_id(explicit) != jobfolder.job_id(learn_config(epochs=4, horizon=4))


@pytest.mark.parametrize("horizon, message", [(0, "horizon=0 must be a positive number"),
                                              (3, "epochs=4 is beyond horizon=3")])
def test_a_bad_horizon_is_refused_when_submitted(horizon, message):
    from xpm_train.budget import BudgetError

    with pytest.raises(BudgetError, match=message):
        learn_config(epochs=4, horizon=horizon).__xpm__.validate()


class TwoRanks:
    """Rank 0 of two, the other rank holding ``other`` (what ``agreed`` exchanges)."""

    distributed, world_size, device = True, 2, "cpu"

    def __init__(self, mine: int, other: int):
        self.mine, self.other = mine, other

    def sum_(self, tensor):
        tensor += self.other

    def any(self, flag):
        return bool(flag) or self.mine != self.other  # the other rank's own check


@pytest.mark.parametrize("mine, other, same", [(2, 2, True), (2, 0, False), (0, 4, False), (0, 0, True)])
def test_ranks_continue_only_from_a_prefix_they_all_found(mine, other, same):
    from xpm_train.budget import agreed

    assert agreed(TwoRanks(mine, other), mine) is same


# --- training functions (@training_function(budget="epochs"))

FUNCTIONS = REPO / "tests" / "budgetplan" / "functions.yaml"
FUNCTION = "budgetfn.budgeted"


def function_jobs(workdir: Path) -> dict[int, Path]:
    """The job folders of budgetfn.budgeted in ``workdir`` by their budget."""
    return {json.loads((p / jobfolder.FINAL).read_text())["budget"]: p for p in (workdir / "jobs" / FUNCTION).iterdir()}


@pytest.fixture(scope="module")
def function_runs(tmp_path_factory):
    """As :func:`runs` for a training function: ``continued`` (epochs=2,
    then 4) and ``straight`` (epochs=4), horizon 4."""
    root = tmp_path_factory.mktemp("budget-functions")
    plans = {"continued": ("[2]", "[4]"), "straight": ("[4]",)}
    for name, budgets in plans.items():
        for epochs in budgets:
            result = run_experiment(FUNCTIONS, root / name, f"epochs={epochs}")
            assert result.returncode == 0, result.stderr[-3000:]
    runs = {name: function_jobs(root / name) for name in plans}
    runs["forgetful"] = run_experiment(FUNCTIONS, root / "forgetful", "epochs=[1, 2]", "forgetful=true"), \
        root / "forgetful"
    return runs


def test_a_functions_larger_budget_continues_the_done_smaller_one(function_runs):
    short, long = function_runs["continued"][2], function_runs["continued"][4]
    (start,) = events(long, "start")
    assert start["continued_from"] == jobfolder.id_of(short) and start["horizon"] == 4
    assert len(events(long, "checkpoint")) == 2  # trained epochs 2 and 3, not 4 epochs
    final = json.loads((long / jobfolder.FINAL).read_text())
    assert (final["continued_from"], final["horizon"], final["budget"]) == (jobfolder.id_of(short), 4, 4)


def test_a_continued_function_ends_bit_identical_to_a_straight_run(function_runs):
    import torch

    from xpm_train import checkpoint
    from xpm_train.metrics import read_jsonl

    continued, straight = function_runs["continued"][4], function_runs["straight"][4]
    assert continued.name == straight.name and len(events(straight, "checkpoint")) == 4
    ours, theirs = (checkpoint.load(f / jobfolder.CHECKPOINTS / jobfolder.LAST) for f in (continued, straight))
    assert ours["epoch"] == theirs["epoch"] == 3 and ours["accuracy"] == theirs["accuracy"]
    assert all(torch.equal(ours["model"][k], theirs["model"][k]) for k in theirs["model"])
    assert all(torch.equal(ours["optimizer"]["state"][k]["momentum_buffer"], theirs["optimizer"]["state"][k]["momentum_buffer"])
               for k in theirs["optimizer"]["state"])
    points = [[(p["epoch"], p["loss"], p["accuracy"]) for p in read_jsonl(f / jobfolder.METRICS)]
              for f in (continued, straight)]
    assert points[0] == points[1] and len(points[1]) == 4
    assert json.loads((continued / jobfolder.FINAL).read_text())["objective"] == \
        json.loads((straight / jobfolder.FINAL).read_text())["objective"]


def function_config(**values):
    import sys

    sys.path.insert(0, str(REPO / "tests" / "budgetplan"))
    from budgetfn import budgeted

    return budgeted.C(**values)


def test_a_functions_budget_beyond_its_horizon_is_refused_when_submitted():
    from xpm_train.budget import BudgetError

    with pytest.raises(BudgetError, match="budgeted: epochs=5 is beyond horizon=4") as error:
        function_config(epochs=5, horizon=4).__xpm__.validate()
    assert "\n" not in str(error.value)
    config = function_config(epochs=3, horizon=4)
    config.__xpm__.validate()
    assert config.prefixes == [jobfolder.job_id(function_config(epochs=e, horizon=4)) for e in (2, 1)]
    plain = function_config(epochs=3)
    plain.__xpm__.validate()
    assert plain.prefixes is None and jobfolder.job_id(plain) != jobfolder.job_id(config)


def test_a_function_without_a_budget_has_no_horizon_and_a_bad_budget_is_refused():
    from xpm_train import training_function
    from xpm_train.custom import make_task

    def train(ctx, lr: float = 0.1, epochs: int = 3) -> float:
        return lr

    train.__module__, train.__qualname__ = "mymodule", "train"
    plain = make_task(train, "1")
    assert plain.__xpm_train_budget__ is None and "horizon" not in plain.__annotations__
    for budget, message in (("steps", "budget='steps' must name an int parameter"),
                            ("lr", "budget='lr' must name an int parameter")):
        with pytest.raises(TypeError, match=message):
            training_function(train, budget=budget)


def test_a_function_that_never_resumes_fails_when_asked_to_continue(function_runs):
    """budgetfn.forgetful (budget="epochs", no ctx.load_checkpoint()) with
    epochs 1 then 2 in one plan run: the second job continues the first's run,
    ignores it, and fails instead of writing a folder with epoch 0 twice."""
    result, workdir = function_runs["forgetful"]
    assert result.returncode != 0
    jobs = {json.loads((p / "params.json").read_text())["objects"][-1]["fields"]["epochs"]: p
            for p in (workdir / "jobs" / "budgetfn.forgetful").iterdir()}
    assert jobfolder.is_done(jobs[1]) and not jobfolder.is_done(jobs[2])
    (error,) = events(jobs[2], "error")
    assert ("BudgetError: budgetfn.forgetful was given the run of budgetfn.forgetful/" in error["error"]
            and "never called ctx.load_checkpoint()" in error["error"]), error


def test_a_continued_job_resumed_after_a_stop_still_names_its_prefix(tmp_path):
    """A function's or LightningFit's job stopped after it continued a prefix,
    then resumed from its own checkpoint (no prefix then): its final.json still
    says which job it continued (the epoch counts of the bench and tests need it)."""
    from types import SimpleNamespace

    from xpm_train.budget import Prefix, summary_fields

    events = tmp_path / jobfolder.EVENTS
    task = SimpleNamespace(horizon=4, epochs=3, events_path=events)
    events.write_text('{"event": "start", "continued_from": "t/abc"}\n{"event": "checkpoint"}\n'
                      '{"event": "start"}\n')
    assert summary_fields(task, None) == {"horizon": 4, "budget": 3, "continued_from": "t/abc"}
    assert summary_fields(task, Prefix("t/def", tmp_path, {}, 2))["continued_from"] == "t/def"
    events.write_text('{"event": "start"}\n')
    assert summary_fields(task, None) == {"horizon": 4, "budget": 3}
    assert summary_fields(SimpleNamespace(horizon=None, epochs=3, events_path=events), None) == {}
