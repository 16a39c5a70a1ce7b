"""Ranks from Slurm, for real: a 2-task job on the CI's single-node cluster,
and 2 ranks on 2 nodes of a real 2-node cluster started for the test; both
end with the weights of the local 2-rank run.

The 2-node cluster replaces the single-node one for the duration of the
module (one slurm.conf per host) and the single-node one is started again
afterwards. Scripts: ``$XPM_TRAIN_SLURM_SCRIPTS``, default ``../shared/slurm``
beside the repository.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ddphelpers import PLAN, RUN, events, learn_folder, max_difference, weights
from helpers import REPO, run_experiment
from slurmhelpers import PARTITION_ENV, SLURM_ENV, Shape, cluster_shape, find_slurm

pytestmark = [pytest.mark.integration, pytest.mark.slurm]



def slurm_launchers(tmp_path: Path, cluster) -> dict[str, str]:
    path = tmp_path / "launchers.yaml"
    path.write_text("launchers:\n" + cluster.launcher_yaml("slurm", poll_interval=0.5))
    return {"XPM_TRAIN_LAUNCHERS": str(path), "XPM_TRAIN_DDP_TIMEOUT": "120"}


def run_on_slurm(tmp_path, cluster, spec: str) -> Path:
    result = run_experiment(PLAN, tmp_path / "ws", f"spec={spec}", *RUN, env=slurm_launchers(tmp_path, cluster))
    job = learn_folder(tmp_path / "ws")
    logs = "".join(p.read_text()[-2000:] for p in job.glob("*.err")) if job.exists() else ""
    assert result.returncode == 0, result.stderr[-3000:] + logs
    return job


def sbatch_lines(job: Path) -> list[str]:
    return [line for line in (job / "learn.sh").read_text().splitlines() if line.startswith(("#SBATCH", "srun"))]


@pytest.fixture(scope="module")
def single_node_cluster():
    """The CI's Slurm (skipped unless XPM_TRAIN_SLURM=1, failing if it does not answer)."""
    if os.environ.get(SLURM_ENV) != "1":
        pytest.skip(f"Slurm tests run only with {SLURM_ENV}=1")
    cluster = find_slurm(os.environ.get(PARTITION_ENV))
    if cluster is None:
        pytest.fail(f"{SLURM_ENV}=1 but no Slurm answers: run `source .ci/slurm.sh`")
    return cluster


def test_two_tasks_on_one_node(tmp_path, single_node_cluster, two_rank_reference):
    job = run_on_slurm(tmp_path, single_node_cluster, "duration=10m & cpu(cores=2) & processes=2")
    lines = sbatch_lines(job)
    assert "#SBATCH --ntasks-per-node=2" in lines and "#SBATCH --cpus-per-task=1" in lines, lines
    start, = [e for e in events(job) if e["event"] == "start"]
    assert start["ranks"] == 2
    difference = max_difference(weights(job), weights(two_rank_reference))
    print(f"Slurm 1 node x 2 tasks vs local 2 ranks: max |dw| = {difference:.2e}")
    assert difference < 1e-6


LIGHTNING_PLAN = REPO / "experiments" / "lightning" / "params.yaml"
LIGHTNING_RUN = ("hidden=[16]", "max_epochs=2", "batch_size=4", "n_trials=0", "tracking_uri=off", "accelerator=cpu")


def lightning_fit(workdir: Path, spec: str, env: dict) -> Path:
    result = run_experiment(LIGHTNING_PLAN, workdir, *LIGHTNING_RUN, f"launcher={spec}", env=env)
    (folder,) = (workdir / "jobs" / "xpm_train.lightning.fit.lightningfit").glob("*")
    logs = "".join(p.read_text()[-2000:] for p in folder.glob("*.err"))
    assert result.returncode == 0, result.stderr[-3000:] + logs
    return folder


# (before the 2-node tests: their cluster replaces this one until the module ends)
def test_a_lightning_fit_on_two_slurm_tasks_is_the_local_two_rank_fit(tmp_path, single_node_cluster,
                                                                        launchers_env):
    """Lightning's DDP adopts the 2 tasks Slurm started (SLURMEnvironment) and
    trains to the weights of the same fit on 2 local ranks."""
    pytest.importorskip("lightning.pytorch", reason="the Lightning extra is not installed: pip install -e '.[test]'")
    from xpm_train import checkpoint

    spec = "duration=10m & cpu(cores=2) & processes=2"
    job = lightning_fit(tmp_path / "slurm", spec, slurm_launchers(tmp_path, single_node_cluster))
    lines = [line for line in (job / "lightningfit.sh").read_text().splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --ntasks-per-node=2" in lines, lines
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in (job / "lightningfit.err").read_text()
    start, = [e for e in events(job) if e["event"] == "start"]
    assert start["ranks"] == 2
    local = lightning_fit(tmp_path / "local", spec, launchers_env)
    assert local.name == job.name  # ranks are resources: the same job ID
    difference = max_difference(*(checkpoint.load(f / "checkpoints" / "best.pt")["model"] for f in (job, local)))
    print(f"Lightning on Slurm 1 node x 2 tasks vs local 2 ranks: max |dw| = {difference:.2e}")
    assert difference < 1e-6


@pytest.fixture(scope="module")
def two_node_cluster():
    """A real 2-node Slurm (n1, n2, 1 CPU each) in place of the single-node one."""
    with cluster_shape(Shape(nodes=2)) as cluster:
        yield cluster


def allocation(cluster, job: Path) -> list[list[str]]:
    """[[nodes, state]] of the Slurm job that ran in ``job``, once Slurm has
    seen it end (the plan goes on when the job writes its marker, a moment
    before: tests/slurmhelpers.py)."""
    return [[row["nodes"], row["state"]] for row in cluster.sacct_jobs(job) if Path(row["workdir"]) == job]


def test_two_ranks_on_two_nodes(tmp_path, two_node_cluster, two_rank_reference):
    job = run_on_slurm(tmp_path, two_node_cluster, "duration=10m & cpu(cores=1) & nodes=2")
    lines = sbatch_lines(job)
    assert "#SBATCH --nodes=2" in lines and "#SBATCH --ntasks-per-node=1" in lines, lines
    # one rank per node: the job's allocation spans n1 and n2
    assert allocation(two_node_cluster, job) == [["n[1-2]", "COMPLETED"]]
    difference = max_difference(weights(job), weights(two_rank_reference))
    print(f"Slurm 2 nodes x 1 task vs local 2 ranks: max |dw| = {difference:.2e}; "
          f"training {json.loads((job / 'final.json').read_text())['wall_time']:.1f}s")
    assert difference < 1e-6


def test_a_lightning_fit_on_two_nodes_is_the_local_two_rank_fit(tmp_path, two_node_cluster, launchers_env):
    """One rank per node: Lightning's DDP sees num_nodes=2 and trains to the
    weights of the same fit on 2 local ranks."""
    pytest.importorskip("lightning.pytorch", reason="the Lightning extra is not installed: pip install -e '.[test]'")
    from xpm_train import checkpoint

    job = lightning_fit(tmp_path / "slurm", "duration=10m & cpu(cores=1) & nodes=2",
                        slurm_launchers(tmp_path, two_node_cluster))
    lines = [line for line in (job / "lightningfit.sh").read_text().splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --nodes=2" in lines and "#SBATCH --ntasks-per-node=1" in lines, lines
    assert allocation(two_node_cluster, job) == [["n[1-2]", "COMPLETED"]]
    local = lightning_fit(tmp_path / "local", "duration=10m & cpu(cores=2) & processes=2", launchers_env)
    difference = max_difference(*(checkpoint.load(f / "checkpoints" / "best.pt")["model"] for f in (job, local)))
    print(f"Lightning on Slurm 2 nodes x 1 task vs local 2 ranks: max |dw| = {difference:.2e}")
    assert difference < 1e-6
