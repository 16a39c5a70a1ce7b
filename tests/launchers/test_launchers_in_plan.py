"""A quickstart-size plan (Learn -> Evaluate) run with ``experimaestro
run-experiment`` through a local launcher and through a real Slurm."""

import pytest

from helpers import REPO, run_experiment, what_ran

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
PARAMS = REPO / "experiments" / "quickstart" / "params.yaml"
# 2 Learn (1 epoch) + 2 Evaluate, every job "duration=10m & cpu(cores=1)"
OVERRIDES = ("epochs=1", "hidden_dim=[32]", "lr=[0.001, 0.003]")


def test_quickstart_graph_runs_and_a_second_run_submits_nothing(launcher_kind, launchers_file,
                                                                tmp_path, request):
    workdir = tmp_path / "ws"
    result = run_experiment(PARAMS, workdir, *OVERRIDES)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = sorted((workdir / "jobs").glob("*/*"))
    assert [job.parent.name for job in jobs].count("xpm_train.learn.learn") == 2
    assert [job.parent.name for job in jobs].count("xpm_train.evaluate.evaluate") == 2
    assert all(list(job.glob("*.done")) for job in jobs)  # every job DONE

    if launcher_kind == "slurm":
        cluster = request.getfixturevalue("slurm_cluster")
        listed = cluster.sacct_jobs(workdir.resolve(), count=4)
        assert len(listed) == 4 and {j["state"] for j in listed} == {"COMPLETED"}, listed
        assert {j["workdir"] for j in listed} == {str(job.resolve()) for job in jobs}
        for job in jobs:  # the sbatch script and Slurm's output files are in the job folder
            name = job.parent.name.rsplit(".", 1)[-1]
            script = (job / f"{name}.sh").read_text()
            assert "#SBATCH --partition=" in script and "#SBATCH --signal=USR1@60" in script
            assert "#SBATCH --time=00:10:00" in script and "#SBATCH --cpus-per-task=1" in script
            assert (job / f"{name}.out").is_file() and (job / f"{name}.err").is_file()

    before = what_ran(workdir)
    again = run_experiment(PARAMS, workdir, *OVERRIDES)
    assert again.returncode == 0, again.stderr[-3000:]
    assert what_ran(workdir) == before
    if launcher_kind == "slurm":
        assert len(cluster.sacct_jobs(workdir.resolve(), count=4)) == 4  # nothing submitted


def test_bad_launchers_file_stops_the_plan_before_any_job(tmp_path, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text("launchers:\n  - name: here\n    type: local\n    cpu: {cores: -4}\n")
    monkeypatch.setenv("XPM_TRAIN_LAUNCHERS", str(bad))
    workdir = tmp_path / "ws"
    result = run_experiment(PARAMS, workdir, *OVERRIDES, timeout=120)
    assert result.returncode != 0
    assert f"{bad}:4: launchers[0].cpu.cores: must be a positive integer, got -4" in result.stderr
    assert not (workdir / "jobs").exists() or not any((workdir / "jobs").iterdir())


PLAN = '''
from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase

from xpm_train.launchers.testing import Square


@configuration()
class Configuration(ConfigurationBase):
    pass


def run(helper: ExperimentHelper, cfg: Configuration):
    Square.C(x=5).submit()  # no launcher=, no find_launcher call
    helper.xp.wait()
'''


def test_a_plan_outside_the_project_uses_the_launchers_of_its_folder(tmp_path):
    """A plan in its own folder, run from elsewhere (the repository, which has
    its own launchers.yaml): the plan's launchers.yaml is used and logged, and
    its task submitted without launcher= runs on its default_spec's launcher."""
    import os
    import subprocess
    import sys

    from helpers import REPO

    plan = tmp_path / "plan"
    plan.mkdir()
    (plan / "experiment.py").write_text(PLAN)
    (plan / "params.yaml").write_text("id: outside\nfile: experiment\npre_experiment: xpm_train.preflight\n")
    (plan / "launchers.yaml").write_text(
        'default_spec: "duration=10m & cpu(cores=1)"\n'
        "launchers:\n  - {name: planbox, type: local, cpu: {cores: 1, memory: 2G}, gpus: []}\n")
    env = {k: v for k, v in os.environ.items() if k != "XPM_TRAIN_LAUNCHERS"}
    result = subprocess.run([sys.executable, "-m", "experimaestro", "run-experiment", "--workdir",
                             str(tmp_path / "ws"), str(plan / "params.yaml")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    said = result.stdout + result.stderr
    assert f"Launchers: {plan / 'launchers.yaml'} (found from the plan's folder {plan})" in said
    assert "Tasks submitted without launcher= run on LocalLauncher(planbox, gpus=0" in said
    (job,) = (tmp_path / "ws" / "jobs").glob("*/*")
    assert (job / "result.json").is_file()
    assert "os.environ.setdefault(_name, _threads)" in next(job.glob("*.py")).read_text()
