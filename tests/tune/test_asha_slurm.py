"""ASHA (Study.scheduler) through a real Slurm launcher (issue 24 item 2):
the pause-and-promote driver of tests/tune/test_asha.py with its rung jobs
submitted with sbatch instead of run on this host.

One module-scoped workspace, as small as a ladder allows (each Slurm job is a
cold Python start, CI time): 2 trials side by side (n_parallel 2), rungs of 1
and 2 epochs (eta 2): the first trial done pauses until the second one fills
its rung, then the better one is promoted; then the same plan again. Only
the trials (final: false: no Tune task nor Evaluate after the study), every
job on Slurm (the launchers file has no other launcher).
"""

from __future__ import annotations

import os

import pytest
from test_asha import check_ladder, continued_chain, epochs_trained, trials_of
from tunehelpers import write_params

from helpers import run_experiment, what_ran
from slurmhelpers import PARTITION_ENV, SLURM_ENV, find_slurm

pytestmark = [pytest.mark.integration, pytest.mark.slurm, pytest.mark.timeout(600)]
RUNGS = [1, 2]
N_TRIALS = 2
PARAMS = {"asha": [1, 2, 2], "n_parallel": 2, "label": "asha-slurm", "n_trials": N_TRIALS, "final": False}


@pytest.fixture(scope="module")
def asha_on_slurm(tmp_path_factory):
    if os.environ.get(SLURM_ENV) != "1":
        pytest.skip(f"Slurm tests run only with {SLURM_ENV}=1")
    cluster = find_slurm(os.environ.get(PARTITION_ENV))
    if cluster is None:
        pytest.fail(f"{SLURM_ENV}=1 but no Slurm answers: run `source .ci/slurm.sh`")
    folder = tmp_path_factory.mktemp("asha-slurm")
    workdir = (folder / "ws").resolve()
    launchers = folder / "launchers.yaml"
    launchers.write_text("launchers:\n" + cluster.launcher_yaml("slurm", poll_interval=0.5))
    env = {"XPM_TRAIN_LAUNCHERS": str(launchers)}
    params = write_params(folder, **PARAMS)
    first = run_experiment(params, workdir, env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    learns = sorted((workdir / "jobs").glob("*/*"))
    assert {job.parent.name for job in learns} == {"xpm_train.learn.learn"}, learns
    snapshot = {"ran": what_ran(workdir), "trained": epochs_trained(workdir), "trials": trials_of(workdir),
                "learns": learns, "sacct": cluster.sacct_jobs(workdir, count=len(learns))}
    again = run_experiment(params, workdir, env=env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    snapshot["again"] = (again, what_ran(workdir), cluster.sacct_jobs(workdir, count=len(learns), settle=0))
    return workdir, snapshot


def test_every_rung_job_ran_on_slurm(asha_on_slurm):
    _, snapshot = asha_on_slurm
    listed, learns = snapshot["sacct"], snapshot["learns"]
    assert len(learns) == sum(len(t.intermediate_values) for t in snapshot["trials"]) == 3  # a job a rung
    assert sorted(row["workdir"] for row in listed) == [str(job) for job in learns], listed  # job folders, arrays mapped
    assert {j["state"] for j in listed} == {"COMPLETED"}, listed
    for job in learns:
        assert "#SBATCH --partition=" in (job / "learn.sh").read_text()


def test_trials_train_rung_by_rung_and_optunas_client_reads_each_rung(asha_on_slurm):
    _, snapshot = asha_on_slurm
    trials = snapshot["trials"]
    check_ladder(trials, snapshot["trained"], N_TRIALS, RUNGS)
    (best,) = [t for t in trials if t.state.name == "COMPLETE"]
    assert sorted(best.intermediate_values) == RUNGS and best.value == best.intermediate_values[2]
    (paused,) = [t for t in trials if t.state.name == "RUNNING"]
    assert paused.user_attrs["asha_epochs"] == max(paused.intermediate_values) == 1
    assert best.intermediate_values[1] >= paused.intermediate_values[1]  # the better one went on


def test_a_promotion_continues_its_paused_job(asha_on_slurm):
    workdir, snapshot = asha_on_slurm
    (best,) = [t for t in snapshot["trials"] if t.state.name == "COMPLETE"]
    (paused_job,) = continued_chain(workdir, best.user_attrs["job"])
    assert snapshot["trained"][best.user_attrs["job"].rsplit("/", 1)[-1]] == 1  # its 2 epochs less rung 1's
    assert snapshot["trained"][paused_job.rsplit("/", 1)[-1]] == 1


def test_a_rerun_on_slurm_trains_nothing(asha_on_slurm):
    _, snapshot = asha_on_slurm
    again, ran, listed = snapshot["again"]
    assert "LAUNCHED 0" in again.stdout, again.stdout[-2000:]
    assert ran == snapshot["ran"]
    assert len(listed) == len(snapshot["sacct"])  # nothing submitted to Slurm
