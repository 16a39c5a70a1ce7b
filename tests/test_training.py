"""xpm_train.training: Learn, training functions and LightningFit are
TrainingTasks, and a new adapter written in one file (tests/tinytrainer.py)
works with a Study, ``load(job).network`` and a multi-rank launcher without a
line of xpm-train naming it (issue 27 item 5)."""

import json
from types import SimpleNamespace

import pytest
from experimaestro import Param, Task

from xpm_train import Result, training_function
from xpm_train.training import RunsOnRanks, TrainingTask


@training_function(direction="minimize")
def fit(ctx, offset: float = 0.0) -> Result:
    """A training function (its task is a TrainingTask)."""
    return Result(objective=offset)


class Plain(Task):
    """A plain experimaestro task (no protocol)."""

    x: Param[int]
    """A value"""

    def execute(self):
        pass


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One TinyTrainer job run in this process: its folder and config."""
    from experimaestro.taskglobals import Env
    from experimaestro.xpmutils import DirectoryContext
    from tinytrainer import TinyTrainer

    folder = tmp_path_factory.mktemp("jobs") / "tinytrainer.tinytrainer" / ("ab" * 32)
    folder.mkdir(parents=True)
    config = TinyTrainer.C(lr=0.1)
    task = config.instance(DirectoryContext(folder))  # its generated paths in folder
    env = Env.instance()
    before = env.taskpath, env.current_task
    env.taskpath, env.current_task = folder, task  # what experimaestro sets in a job process
    try:
        task.execute()
    finally:
        env.taskpath, env.current_task = before
    (folder / "params.json").write_text(json.dumps({"objects": [  # as experimaestro writes it
        {"id": 1, "module": "tinytrainer", "type": "TinyTrainer", "typename": "tinytrainer.TinyTrainer",
         "identifier": folder.name, "fields": {"lr": 0.1}}]}))
    return folder, config


def test_the_built_in_training_tasks_implement_the_protocol():
    from xpm_train import MLP, Digits, Evaluate, Learn
    from xpm_train.lightning import LightningFit

    from tinytrainer import TinyTrainer

    data = Digits.C(split="train")
    for config in (Learn.C(model=MLP.C(), data=data), fit.C(), LightningFit.C(),
                   TinyTrainer.C()):
        assert isinstance(config, TrainingTask), type(config)
    evaluate = Evaluate.C(model=MLP.C(), data=data)
    assert isinstance(evaluate, RunsOnRanks) and not isinstance(evaluate, TrainingTask)
    assert not isinstance(Plain.C(x=1), RunsOnRanks)


def test_a_study_over_the_adapter_optimises_its_score():
    from tinytrainer import TinyTrainer

    from xpm_train.reporting import own_kind, reports
    from xpm_train.tune import Float, NoPruner, Space, Study

    base = TinyTrainer.C(hidden=8)
    assert reports(base) and own_kind(base) == "tiny"
    study = Study(label="tiny", base=base, space=Space([Float("lr", 1e-3, 1e-1, log=True)]), pruner=NoPruner.C())
    assert (study.metric, study.direction) == ("eval_perplexity", "minimize")


def test_a_launcher_with_ranks_asks_the_adapter():
    from tinytrainer import TinyTrainer

    from xpm_train.launchers.ranks import Layout, RanksSpecError, submit_check

    check = submit_check(Layout(processes=2))
    with pytest.raises(RanksSpecError, match="TinyTrainer runs on one process, not 2"):
        check(SimpleNamespace(config=TinyTrainer.C()))
    with pytest.raises(RanksSpecError, match="Plain does not run on several ranks"):
        check(SimpleNamespace(config=Plain.C(x=1)))


def test_load_rebuilds_the_adapters_network(trained):
    import torch

    from xpm_train import summary
    from xpm_train.trained import network, read_data

    folder, _ = trained
    final = summary.read(folder)
    assert final["score_metric"] == "eval_perplexity" and final["direction"] == "minimize"
    net = network(folder)
    assert not net.training and read_data(folder)["info"].outputs == 1
    assert net(torch.zeros(2, 3)).shape == (2, 1)


def test_a_job_without_network_gets_the_adapters_message(trained):
    from xpm_train.trained import NoTrainedModel, network

    folder, config = trained
    empty = folder.parent / ("cd" * 32)
    empty.mkdir()
    (empty / "params.json").write_text((folder / "params.json").read_text())
    with pytest.raises(NoTrainedModel, match=r"TinyTrainer cdcdcdcdcdcd kept no network: TinyTrainer saves it"):
        network(empty, config)
