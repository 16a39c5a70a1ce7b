"""The tiny plan of the provenance and reproduce tests: two Learns of a user's
model (its own module beside the plan), committed in a git repository."""

from __future__ import annotations

import subprocess

from helpers import run_experiment

MODEL = '''"""A user's model, beside the plan."""
from experimaestro import Param, field
from xpm_train.extend import DataInfo, Model


class Tiny(Model):
    width: Param[int] = field(default=8, ignore_default=True)
    """Hidden width"""

    def module(self, data: DataInfo):
        from torch import nn
        return nn.Sequential(nn.Flatten(), nn.Linear(data.features, self.width), nn.ReLU(),
                             nn.Linear(self.width, data.outputs))
'''

PLAN = '''from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from usermodel import Tiny
from xpm_train import SGD, Learn, Synthetic, find_launcher, finish


@configuration()
class Configuration(ConfigurationBase):
    epochs: int = 1
    """Training epochs"""


def run(helper: ExperimentHelper, cfg: Configuration):
    data = Synthetic.C(split="train", num_samples=64, height=4, width=4, num_classes=3, seed=1)
    for width in (4, 8):
        Learn.C(model=Tiny.C(width=width), data=data, optimizer=SGD.C(lr=0.1), epochs=cfg.epochs,
                batch_size=16, seed=3, device="cpu").submit(launcher=find_launcher("duration=10m & cpu(cores=1)"))
    finish(helper)
'''

PARAMS = "id: provenance\nfile: experiment\npythonpath: [.]\npre_experiment: xpm_train.preflight\n"


def git(folder, *args):
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=folder, check=True,
                   capture_output=True)


def run_plan(root):
    """Write the plan in ``root/plan`` (committed), run it in ``root/ws``: both folders."""
    folder = root / "plan"
    folder.mkdir()
    (folder / "usermodel.py").write_text(MODEL)
    (folder / "experiment.py").write_text(PLAN)
    (folder / "params.yaml").write_text(PARAMS)
    git(folder, "init", "-q")
    git(folder, "add", ".")
    git(folder, "commit", "-q", "-m", "plan")
    workdir = root / "ws"
    result = run_experiment(folder / "params.yaml", workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder, workdir


def learn_folders(workdir):
    return sorted((workdir / "jobs" / "xpm_train.learn.learn").iterdir())
