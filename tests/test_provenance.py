"""Which code made a result: every job records its provenance; a plan reusing a
job whose user code changed says so, one line per job, and retrains nothing.

One tiny plan (a user's model module beside it, in a git repository) runs
for real; the tests share it (``provenance_plan``, tests/provhelpers.py) and
run it again."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from helpers import run_experiment, what_ran, xpm_train
from provhelpers import MODEL, learn_folders

pytestmark = pytest.mark.integration

def test_every_job_records_its_provenance(provenance_plan):
    folder, workdir = provenance_plan
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True).stdout.strip()
    for job in learn_folders(workdir):
        recorded = json.loads((job / "provenance.json").read_text())
        assert recorded["python"].count(".") == 2 and recorded["torch"] and recorded["experimaestro"] == "2.7.0"
        assert recorded["xpm_train"] and recorded["host"]
        assert recorded["packages_sha256"] == hashlib.sha256("\n".join(recorded["packages"]).encode()).hexdigest()
        assert any(p.startswith("torch==") for p in recorded["packages"])
        assert recorded["git_commit"] == commit and recorded["git_diff_sha256"] == ""  # committed, clean
        assert recorded["plan"] == str(folder)
        # the user's module only: xpm_train's and experimaestro's code is in their versions
        assert recorded["code"] == {"usermodel": hashlib.sha256((folder / "usermodel.py").read_bytes()).hexdigest()}
        assert not list(job.glob(".provenance.json.tmp-*"))


def test_reused_job_with_changed_code_is_said_so_once_per_job(provenance_plan):
    folder, workdir = provenance_plan
    before = what_ran(workdir)
    ids = [job.name for job in learn_folders(workdir)]

    unchanged = run_experiment(folder / "params.yaml", workdir)
    assert unchanged.returncode == 0, unchanged.stderr[-3000:]
    assert "changed since it ran" not in unchanged.stdout + unchanged.stderr
    assert what_ran(workdir) == before

    (folder / "usermodel.py").write_text(MODEL.replace("nn.ReLU()", "nn.Tanh()"))
    try:
        edited = run_experiment(folder / "params.yaml", workdir)
    finally:
        (folder / "usermodel.py").write_text(MODEL)  # as recorded, for the other tests of the plan
    assert edited.returncode == 0, edited.stderr[-3000:]
    lines = [line for line in (edited.stdout + edited.stderr).splitlines() if "changed since it ran" in line]
    assert len(lines) == 2, lines
    assert all("code of usermodel changed" in line and "version: Constant" in line for line in lines)
    assert sorted(any(job_id in line for line in lines) for job_id in ids) == [True, True]
    assert what_ran(workdir) == before  # nothing retrained
    assert [job.name for job in learn_folders(workdir)] == ids  # same IDs


def test_show_prints_the_provenance(provenance_plan):
    _, workdir = provenance_plan
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
