"""experimaestro-demo's Learn, approximated on scikit-learn's digits (for the
tests): a plain ``experimaestro.Task`` with Params and an ``execute()`` that
trains with torch and prints. :class:`Learn` is the demo unchanged;
:class:`ReportingLearn` is the demo after the one-line change of
docs/extending.md (plus the ``reports`` declaration a Study needs). The task
processes load this module from this file."""

import torch
from experimaestro import Param, Task, field

import xpm_train


def train(task) -> tuple[float, float]:
    """A small MLP on digits: (accuracy, loss) on the last 297 images."""
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    inputs, labels = load_digits(return_X_y=True)
    inputs, labels = torch.tensor(inputs / 16.0, dtype=torch.float32), torch.tensor(labels)
    model = torch.nn.Sequential(torch.nn.Linear(64, task.hidden_dim), torch.nn.ReLU(),
                                torch.nn.Linear(task.hidden_dim, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=task.lr)
    for _ in range(task.epochs):
        for start in range(0, 1500, 100):
            loss = torch.nn.functional.cross_entropy(model(inputs[start:start + 100]), labels[start:start + 100])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        output = model(inputs[1500:])
        loss = torch.nn.functional.cross_entropy(output, labels[1500:]).item()
        accuracy = (output.argmax(1) == labels[1500:]).float().mean().item()
    return accuracy, loss


class Learn(Task):
    """Learn to classify digits (the demo's task: it only prints its result)"""

    hidden_dim: Param[int] = field(default=16, ignore_default=True)
    """Hidden units"""

    lr: Param[float] = field(default=1e-2, ignore_default=True)
    """Learning rate"""

    epochs: Param[int] = field(default=1, ignore_default=True)
    """Epochs"""

    def execute(self):
        accuracy, loss = train(self)
        print(f"accuracy {accuracy:.3f} loss {loss:.3f}")  # noqa: T201


class ReportingLearn(Learn):
    """The same, reporting its result to xpm-train"""

    reports = "accuracy"

    def execute(self):
        accuracy, loss = train(self)
        xpm_train.report({"accuracy": accuracy, "loss": loss}, score="accuracy")
