"""A training adapter in one file (for tests/test_training.py): a task with
its own loop -- standing in for a Hugging Face ``Trainer`` -- that implements
``xpm_train.extend.TrainingTask``. Nothing else of xpm-train names it: a Study
tunes it, ``load(job).network`` rebuilds its network and a launcher asking
for several ranks asks it first."""

from pathlib import Path
from typing import ClassVar, Optional

from experimaestro import Meta, Param, PathGenerator, Task, field

import xpm_train
from xpm_train.extend import DataInfo, RanksSpecError, Trial, save_network


def tiny_net(hidden: int):
    """The network it trains: 3 features -> 1 value (its classes are torch's)."""
    from torch import nn

    return nn.Sequential(nn.Linear(3, hidden), nn.Tanh(), nn.Linear(hidden, 1))


class TinyTrainer(Task):
    """Fits y = x . (1, -2, 0.5) with its own loop; reports ``eval_perplexity``
    (a metric name xpm-train does not know the direction of)."""

    lr: Param[float] = field(default=0.1, ignore_default=True)
    """Learning rate"""

    hidden: Param[int] = field(default=4, ignore_default=True)
    """Hidden units"""

    trial: Meta[Optional[Trial]] = field(default=None, ignore_default=True)
    """The Optuna trial this run answers (set by Tune)"""

    final_path: Meta[Path] = field(default_factory=PathGenerator("final.json"))
    """Where ``xpm_train.report`` writes the summary (its folder is the job's)"""

    # --- The TrainingTask protocol
    training_kind: ClassVar[str] = "tiny"

    def study_score(self):
        return "eval_perplexity", "minimize"

    def no_network_message(self, folder, name):
        return f"{name} {folder.name[:12]} kept no network: TinyTrainer saves it at its last epoch"

    def check_ranks(self, world_size):
        raise RanksSpecError(f"TinyTrainer runs on one process, not {world_size}: drop processes=/nodes=")

    def execute(self):
        import torch

        torch.manual_seed(0)
        inputs = torch.randn(64, 3)
        targets = inputs @ torch.tensor([[1.0], [-2.0], [0.5]])
        net = tiny_net(self.hidden)
        for epoch in range(3):  # plain SGD (torch.optim's first use imports torch._dynamo: seconds)
            loss = torch.nn.functional.mse_loss(net(inputs), targets)
            net.zero_grad()
            loss.backward()
            with torch.no_grad():
                for parameter in net.parameters():
                    parameter -= self.lr * parameter.grad
            perplexity = float(loss.detach().exp())
            if self.trial is not None and self.trial.should_prune(epoch, perplexity):
                break
        save_network(self.final_path.parent, net, DataInfo(shape=(3,), outputs=1))
        xpm_train.report({"eval_perplexity": perplexity, "loss": float(loss.detach())}, score="eval_perplexity",
                         direction="minimize")
