"""Learn's loop in this process, without the scheduler: a run stopped by
SIGUSR1 (Slurm's preemption signal) mid-epoch and run again ends with the
weights of a straight run (the plan-level tests check the same through
experimaestro: tests/reliability/test_kill_resume.py)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from experimaestro import GracefulTimeout
from helpers import REPO

from xpm_train import Learn, MLP, SGD, Synthetic
from xpm_train.checkpoint import load_latest
from xpm_train.jobfolder import BEST, CHECKPOINTS, EVENTS, FINAL, LAST
from xpm_train.metrics import read_jsonl
from xpm_train.optim import Schedule

STOP_AT = {"step": None}
"""The step before which :class:`SignalAt` sends SIGUSR1 to this process (None: never)"""


class SignalAt(Schedule):
    """The constant rate; sends SIGUSR1 before optimizer step ``STOP_AT["step"]``
    (the schedule is asked for every step: a preemption landing mid-epoch)."""

    def decay(self, progress):
        return 1.0

    def factor(self, step, total_steps, steps_per_epoch):
        if step == STOP_AT["step"]:
            STOP_AT["step"] = None  # once
            os.kill(os.getpid(), signal.SIGUSR1)
        return super().factor(step, total_steps, steps_per_epoch)


def learn_config():
    """42 training samples: 6 steps of 8 (the last of 2) per epoch, 3 epochs (warm-up: the rate changes every step)."""
    return Learn.C(model=MLP.C(hidden_dims=[8]), data=Synthetic.C(split="train", num_samples=48),
                   optimizer=SGD.C(lr=0.05), schedule=SignalAt.C(warmup_epochs=1.0), epochs=3, batch_size=8,
                   val_fraction=0.125, device="cpu", log_interval=2)


def run(folder: Path, config) -> None:
    """Execute ``config`` in this process with its job folder ``folder`` (as a job process would)."""
    from experimaestro.taskglobals import Env
    from experimaestro.xpmutils import DirectoryContext

    folder.mkdir(parents=True, exist_ok=True)
    task = config.instance(DirectoryContext(folder))
    env = Env.instance()
    before = env.taskpath, env.current_task
    env.taskpath, env.current_task = folder, task
    try:
        task.execute()
    finally:
        env.taskpath, env.current_task = before


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A straight run, and a run stopped by SIGUSR1 before step 7 (epoch 1, batch 1) then run again."""
    root = tmp_path_factory.mktemp("learn")
    straight, stopped = root / "straight", root / "stopped"
    run(straight, learn_config())
    STOP_AT["step"] = 7
    with pytest.raises(GracefulTimeout, match="SIGUSR1 at step 8"):
        run(stopped, learn_config())
    assert STOP_AT["step"] is None, "the signal was not sent"
    interrupted = load_latest(stopped / CHECKPOINTS / LAST)
    run(stopped, learn_config())
    return straight, stopped, interrupted


def test_the_preempted_run_saved_where_it_stopped(runs):
    _, stopped, interrupted = runs
    assert (interrupted["run"]["epoch"], interrupted["run"]["batch"], interrupted["run"]["step"]) == (1, 2, 8)
    kinds = [event["event"] for event in read_jsonl(stopped / EVENTS)]
    assert kinds[:2] == ["start", "checkpoint"] and "preempted" in kinds and "resume" in kinds
    assert kinds[-1] == "end"


def test_a_resumed_run_ends_with_the_weights_of_a_straight_run(runs):
    straight, stopped, _ = runs
    for name in (LAST, BEST):
        ours, theirs = (load_latest(folder / CHECKPOINTS / name) for folder in (stopped, straight))
        assert ours["model"].keys() == theirs["model"].keys()
        for key, value in theirs["model"].items():
            assert torch.equal(ours["model"][key], value), (name, key)
    assert load_latest(stopped / CHECKPOINTS / LAST)["run"]["step"] == 18


def test_a_resumed_run_reports_the_metrics_of_a_straight_run(runs):
    import json

    straight, stopped, _ = runs
    ours, theirs = (json.loads((folder / FINAL).read_text()) for folder in (stopped, straight))
    assert ours["final"] == theirs["final"] and ours["best"] == theirs["best"]
    assert ours["epochs"] == theirs["epochs"] == 3


EARLY_SIGNAL = """
import os, signal, types
from xpm_train import distributed, learn as module
from xpm_train.learn import Learn, PreemptionFlag

class SetUp(Exception):
    pass

def start(device):  # the first step of the job's set-up
    os.kill(os.getpid(), signal.SIGUSR1)  # Slurm's warning, early
    raise SetUp

flags = []
class Recorded(PreemptionFlag):
    def __init__(self):
        super().__init__()
        flags.append(self)

distributed.start = start
module.PreemptionFlag = Recorded
learn = types.SimpleNamespace(device="cpu", gpu_memory_fraction=None, seed=0, deterministic=False)
learn._train = lambda stop: Learn._train(learn, stop)
try:
    Learn.execute(learn)
except SetUp:
    print("stopped by", flags[0].signal_name, "handler restored:",
          signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL)
"""


def test_a_preemption_signal_during_the_set_up_is_kept_not_fatal():
    """SIGUSR1 while the job loads its data (Slurm may send its warning up to a
    minute early): the process survives and the training knows it must stop."""
    done = subprocess.run([sys.executable, "-c", EARLY_SIGNAL], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.strip() == "stopped by SIGUSR1 handler restored: True"
