"""Which code made a result: every job records its provenance; a plan reusing a
job whose user code changed says so, one line per job, and retrains nothing.

One tiny plan (a user's model module beside it, in a git repository) runs
for real; the tests share it (module-scoped) and run it again."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from helpers import run_experiment, what_ran, xpm_train

pytestmark = pytest.mark.integration

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


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    """The plan (committed in its own git repository) and its workspace, run once."""
    root = tmp_path_factory.mktemp("provenance")
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


def test_every_job_records_its_provenance(plan):
    folder, workdir = plan
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True).stdout.strip()
    for job in learn_folders(workdir):
        recorded = json.loads((job / "provenance.json").read_text())
        assert recorded["python"].count(".") == 2 and recorded["torch"] and recorded["experimaestro"] == "2.7.0"
        assert recorded["xpm_train"] and recorded["host"]
        assert recorded["packages_sha256"] == hashlib.sha256("\n".join(recorded["packages"]).encode()).hexdigest()
        assert any(p.startswith("torch==") for p in recorded["packages"])
        assert recorded["git_commit"] == commit and recorded["git_diff_sha256"] == ""  # committed, clean
        # the user's module only: xpm_train's and experimaestro's code is in their versions
        assert recorded["code"] == {"usermodel": hashlib.sha256((folder / "usermodel.py").read_bytes()).hexdigest()}
        assert not list(job.glob(".provenance.json.tmp-*"))


def test_reused_job_with_changed_code_is_said_so_once_per_job(plan):
    folder, workdir = plan
    before = what_ran(workdir)
    ids = [job.name for job in learn_folders(workdir)]

    unchanged = run_experiment(folder / "params.yaml", workdir)
    assert unchanged.returncode == 0, unchanged.stderr[-3000:]
    assert "changed since it ran" not in unchanged.stdout + unchanged.stderr
    assert what_ran(workdir) == before

    (folder / "usermodel.py").write_text(MODEL.replace("nn.ReLU()", "nn.Tanh()"))
    edited = run_experiment(folder / "params.yaml", workdir)
    assert edited.returncode == 0, edited.stderr[-3000:]
    lines = [line for line in (edited.stdout + edited.stderr).splitlines() if "changed since it ran" in line]
    assert len(lines) == 2, lines
    assert all("code of usermodel changed" in line and "version: Constant" in line for line in lines)
    assert sorted(any(job_id in line for line in lines) for job_id in ids) == [True, True]
    assert what_ran(workdir) == before  # nothing retrained
    assert [job.name for job in learn_folders(workdir)] == ids  # same IDs


def test_show_prints_the_provenance(plan):
    _, workdir = plan
    job = learn_folders(workdir)[0]
    shown = xpm_train("show", job.name[:12], "--workdir", str(workdir))
    assert shown.returncode == 0, shown.stderr
    recorded = json.loads((job / "provenance.json").read_text())
    assert "provenance:" in shown.stdout
    assert f"torch: {recorded['torch']}" in shown.stdout
    assert f"git_commit: {recorded['git_commit']}" in shown.stdout
    assert f"code: usermodel {recorded['code']['usermodel'][:12]}" in shown.stdout


def test_record_start_completes_the_plans_part_atomically(tmp_path, monkeypatch):
    from xpm_train import provenance

    job = tmp_path / "job"
    provenance.write(job, provenance.Provenance(git_commit="abc", packages_sha256="p", code={"m": "1"}))
    monkeypatch.setattr(provenance, "_started", set())
    provenance.record_start(job, config=None)
    recorded = provenance.read(job)
    assert (recorded.git_commit, recorded.code, recorded.packages_sha256) == ("abc", {"m": "1"}, "p")
    assert recorded.python and recorded.host
    assert sorted(p.name for p in job.iterdir()) == ["provenance.json"]  # no temporary left

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(provenance, "_started", set())
    monkeypatch.setattr("xpm_train.atomic.os.fsync", full_disk)
    provenance.record_start(job, config=None)  # logged, never fails the job
    assert provenance.read(job) == recorded and sorted(p.name for p in job.iterdir()) == ["provenance.json"]


def test_environment_differences_name_what_changed():
    from xpm_train.provenance import Provenance, differences

    old = Provenance(torch="2.1", host="a", packages=["numpy==1", "torch==2.1"], code={"m": "1"})
    new = Provenance(torch="2.2", host="b", packages=["numpy==1", "torch==2.2"], code={"m": "2"})
    assert differences(old, new) == ["torch: 2.1 -> 2.2", "packages: -torch==2.1, +torch==2.2",
                                      "code changed: m"]
    assert differences(old, old) == []
