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
        listed = cluster.sacct_jobs(workdir.resolve())
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
        assert len(cluster.sacct_jobs(workdir.resolve())) == 4  # nothing submitted


def test_bad_launchers_file_stops_the_plan_before_any_job(tmp_path, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text("launchers:\n  - name: here\n    type: local\n    cpu: {cores: -4}\n")
    monkeypatch.setenv("XPM_TRAIN_LAUNCHERS", str(bad))
    workdir = tmp_path / "ws"
    result = run_experiment(PARAMS, workdir, *OVERRIDES, timeout=120)
    assert result.returncode != 0
    assert f"{bad}:4: launchers[0].cpu.cores: must be a positive integer, got -4" in result.stderr
    assert not (workdir / "jobs").exists() or not any((workdir / "jobs").iterdir())
