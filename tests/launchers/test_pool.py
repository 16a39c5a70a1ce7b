"""Slurm pools (:mod:`xpm_train.launchers.pool`): the ``pool:`` key and its
plan-time checks in-process, and one pooled study on the real Slurm
(``XPM_TRAIN_SLURM=1``) that several tests read: two plans at once, jobs as
steps of one shared allocation, which ends itself when idle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from unittest import mock

import pytest

from xpm_train.launchers.loader import load_file
from xpm_train.launchers.pool.allocations import batch_script
from xpm_train.launchers.pool.config import PoolError, check_cluster, check_job, partition_limits, \
    slurm_seconds
from xpm_train.launchers.pool.steps import free_slots
from xpm_train.launchers.yamlnodes import LaunchersConfigError

ENTRY = """\
launchers:
  - name: pooled
    type: slurm
    partition: debug
    cpu: {{cores: 2, memory: 2000MiB}}
    max_time: 1h
    binpath: {binpath}
    pool: {pool}
"""
SPEC = "duration=5m & cpu(cores=1, mem=200M)"


def pool_config(tmp_path, pool: str = "{time: 10m, idle: 5s}", binpath: str = "/usr/bin"):
    path = tmp_path / "launchers.yaml"
    path.write_text(ENTRY.format(pool=pool, binpath=binpath))
    return load_file(path).get("pooled")


def test_the_pool_key_is_read_and_checked_with_file_and_line(tmp_path):
    config = pool_config(tmp_path, "{time: 30m, nodes: 2, max_allocations: 4, idle: 1m, jobs_per_gpu: 2}")
    pool = config.pool
    assert (pool.time, pool.nodes, pool.max_allocations, pool.idle, pool.jobs_per_gpu) == (1800, 2, 4, 60, 2)
    assert pool_config(tmp_path, "{time: 10m}").pool.idle == 300
    with pytest.raises(LaunchersConfigError) as error:
        pool_config(tmp_path, "{time: 2h, jobs_per_gpu: 0}")
    message = str(error.value)
    assert "launchers.yaml:8: launchers[0].pool.jobs_per_gpu: must be a positive integer" in message
    with pytest.raises(LaunchersConfigError,
                       match=r"launchers.yaml:8: launchers\[0\].pool.time: 2h is longer than the "
                             r"launcher's max_time 1h \(fix: time: 1h or less\)"):
        pool_config(tmp_path, "{time: 2h}")
    with pytest.raises(LaunchersConfigError, match=r"pool: time: is required|pool.time: is required"):
        pool_config(tmp_path, "{idle: 5s}")


def fake_slurm(folder: Path, max_time: str = "30:00", nodes: int = 1, accounting: str = "slurmdbd"):
    """sinfo/scontrol answering a partition's limits; an sbatch recording calls."""
    folder.mkdir(exist_ok=True)
    for name, text in {"sinfo": f"echo '{max_time}|{nodes}'",
                       "scontrol": f"echo 'AccountingStorageType = accounting_storage/{accounting}'",
                       "sbatch": f"echo called >> {folder}/sbatch.calls; echo 1"}.items():
        (folder / name).write_text(f"#!/bin/sh\n{text}\n")
        (folder / name).chmod(0o755)
    partition_limits.cache_clear()
    return str(folder)


def test_a_pool_the_partition_cannot_hold_is_one_line_at_plan_time(tmp_path):
    """Pool time beyond the partition's MaxTime, more nodes than it has, no
    accounting: one line naming the launcher, the field and the limit; no sbatch."""
    from experimaestro.launcherfinder.specs import HostSimpleRequirement  # noqa: F401

    from xpm_train.launchers.match import parse_spec

    requirement = parse_spec(SPEC).requirements[0]
    for limits, pool, expected in [
        (dict(max_time="5:00"), "{time: 10m}", r"'pooled' \(.*launchers.yaml:8\): pool.time 10m exceeds "
                                               r"partition 'debug''s MaxTime 5m \(fix: pool.time <= 5m\)"),
        (dict(nodes=1), "{time: 10m, nodes: 2}", "pool.nodes 2 exceeds the 1 node"),
        (dict(accounting="none"), "{time: 10m}", "keeps no accounting"),
    ]:
        binpath = fake_slurm(tmp_path / "bin", **limits)
        config = pool_config(tmp_path, pool, binpath)
        with pytest.raises(PoolError, match=expected) as error:
            config.launcher(requirement, layout=_layout())
        assert "\n" not in str(error.value)
    assert not (tmp_path / "bin" / "sbatch.calls").exists()
    partition_limits.cache_clear()


def test_a_job_that_cannot_fit_an_allocation_is_one_line_at_plan_time(tmp_path):
    from xpm_train.launchers.match import parse_spec

    config = pool_config(tmp_path, "{time: 10m}", fake_slurm(tmp_path / "bin"))
    for spec, expected in [("duration=20m & cpu(cores=1)", r"duration 20m > pool.time 10m"),
                           ("duration=5m & cpu(cores=1, mem=3G)", r"memory 3G > cpu.memory 2.1G")]:
        with pytest.raises(PoolError, match=f"launcher 'pooled': a job asking .* cannot fit its pool: {expected}"):
            check_job(config, parse_spec(spec).requirements[0])
    check_cluster(config)  # the fake cluster holds the pool
    partition_limits.cache_clear()


def _layout():
    from xpm_train.launchers.ranks import Layout

    return Layout()


def test_slurm_times_and_gpu_slots():
    assert [slurm_seconds(t) for t in ("infinite", "UNLIMITED", "1-00:00:00", "4:59", "1:00:00", "30")] == \
        [0, 0, 86400, 299, 3600, 1800]
    assert free_slots(4, 2, [], 1) == (0,)
    assert free_slots(4, 2, [0], 1) == (2,)  # the least used GPU
    assert free_slots(4, 2, [0, 2], 1) == (1,)
    assert free_slots(4, 2, [0, 1, 2, 3], 1) is None
    assert free_slots(4, 2, [0], 2) == (2, 3)  # a whole free GPU
    assert free_slots(2, 1, [0], 1) == (1,) and free_slots(2, 1, [0], 2) is None


def test_the_batch_script_holds_the_allocation_until_idle(tmp_path):
    script = batch_script(pool_config(tmp_path, "{time: 10m, idle: 30s}"), Path("/ws/pools"))
    assert "#SBATCH --job-name=xpm-pool-pooled" in script and "#SBATCH --time=00:10:00" in script
    assert "#SBATCH --output=/ws/pools/%x-%j.out" in script and "idle=30" in script
    # the time limit warns the batch shell, which passes the signal on to the jobs' steps
    assert "#SBATCH --signal=B:USR1@60" in script and "trap forward USR1" in script
    assert "#SBATCH --no-requeue" in script  # a preempted allocation ends: its jobs go to another
    done = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert done.returncode == 0, done.stderr


# --- one pooled study on the real Slurm

PLAN = textwrap.dedent("""\
    import sys
    from experimaestro import experiment
    from xpm_train.launchers import find_launcher
    from xpm_train.launchers.testing import RecordDevices
    with experiment(sys.argv[1], "pooled", no_environmental_impact=True) as xp:
        launcher = find_launcher(sys.argv[2])
        for i in range(int(sys.argv[3]), int(sys.argv[4])):
            RecordDevices.C(index=i, hold=1).submit(launcher=launcher)
        xp.wait()
""")


def run_plan(workspace: Path, first: int, last: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PLAN, str(workspace), SPEC, str(first), str(last)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def records(workspace: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(workspace.glob("jobs/*/*/record.json"))]


@pytest.fixture(scope="module")
def pooled_study(slurm_cluster, tmp_path_factory):
    """Two plans at once (4 and 2 jobs of 1 core, 1 s each) on a pool of one
    2-core allocation that ends after 3 s idle; then the first plan again."""
    from xpm_train.launchers import tokens

    root = tmp_path_factory.mktemp("pool")
    launchers = root / "launchers.yaml"
    launchers.write_text("launchers:\n" + slurm_cluster.launcher_yaml(
        "pooled", extra="pool: {time: 10m, idle: 3s, max_allocations: 1}"))
    env = {"XPM_TRAIN_LAUNCHERS": str(launchers), "XPM_TRAIN_POOL_DIR": str(root / "registry"),
           "XPM_TRAIN_TOKENS_DIR": str(root / "tokens"),
           "XPM_TRAIN_WARM_WAIT_S": "300"}  # the node's server preloads slowly on a busy CI host
    with mock.patch.dict(os.environ, env):
        tokens._tokens.clear()
        first, second = run_plan(root / "a", 0, 4), run_plan(root / "b", 10, 12)
        outputs = [p.communicate(timeout=150)[0] for p in (first, second)]
        ran = records(root / "a")
        again = run_plan(root / "a", 0, 4)
        outputs.append(again.communicate(timeout=60)[0])
        codes = [p.returncode for p in (first, second, again)]
        jobs = slurm_cluster.sacct_jobs(root, count=1)
        allocations = [j for j in jobs if j["name"] == "xpm-pool-pooled"]
        deadline = time.monotonic() + 30  # the allocation ends itself 3 s after its last step
        while time.monotonic() < deadline and subprocess.run(
                ["squeue", "-h", "-n", "xpm-pool-pooled", "-o", "%i"], capture_output=True,
                text=True).stdout.strip():
            time.sleep(0.5)
        steps = subprocess.run(["sacct", "-n", "-P", "-j", ",".join(a["id"] for a in allocations),
                                "--format=JobID,JobName,State"], capture_output=True, text=True).stdout
    tokens._tokens.clear()
    return dict(root=root, codes=codes, outputs=outputs, ran=ran, again=records(root / "a"),
                other=records(root / "b"), allocations=allocations, steps=steps)


@pytest.mark.slurm
@pytest.mark.integration
def test_two_plans_share_one_allocation_and_each_job_is_a_step(pooled_study):
    assert pooled_study["codes"] == [0, 0, 0], pooled_study["outputs"]
    assert len(pooled_study["allocations"]) == 1, pooled_study["allocations"]
    allocation = pooled_study["allocations"][0]["id"]
    ran = pooled_study["ran"] + pooled_study["other"]
    assert sorted(r["index"] for r in ran) == [0, 1, 2, 3, 10, 11]
    assert {r["slurm_job"] for r in ran} == {allocation}
    step_names = [line.split("|")[1] for line in pooled_study["steps"].splitlines()
                  if "." in line.split("|")[0] and line.split("|")[0].split(".")[1].isdigit()]
    assert step_names.count("xpm-forkserver") == 1  # the node's warm server, for the allocation's life
    jobs = [name for name in step_names if name != "xpm-forkserver"]
    assert len(jobs) == 6 and all(name.startswith("recorddevices-") for name in jobs)


@pytest.mark.slurm
@pytest.mark.integration
def test_each_step_is_forked_by_the_nodes_warm_server(pooled_study):
    """No job started cold: each was forked by the fork server of its allocation."""
    root = pooled_study["root"]
    errors = [p.read_text() for p in sorted(root.glob("*/jobs/*/*/*.err"))]
    assert len(errors) == 6 and not any("normal start" in e for e in errors), errors
    servers = "".join(p.read_text() for p in root.glob("*/pools/*-xpm-forkserver-*.out"))
    assert sum(f"{r['pid']}" in servers for r in pooled_study["ran"] + pooled_study["other"]) == 6


@pytest.mark.slurm
@pytest.mark.integration
def test_jobs_never_exceed_the_allocation_cores(pooled_study):
    ran = pooled_study["ran"] + pooled_study["other"]
    for record in ran:  # 2 cores, 1 core a job: at most 2 at a time
        overlapping = [r for r in ran if r["start"] < record["end"] and record["start"] < r["end"]]
        assert len(overlapping) <= 2, overlapping


@pytest.mark.slurm
@pytest.mark.integration
def test_a_rerun_runs_nothing_again(pooled_study):
    assert pooled_study["again"] == pooled_study["ran"]


@pytest.mark.slurm
@pytest.mark.integration
def test_the_allocation_ends_itself_when_idle(pooled_study):
    states = dict(line.split("|")[::2] for line in pooled_study["steps"].splitlines())
    allocation = pooled_study["allocations"][0]["id"]
    assert states[allocation] == "COMPLETED", pooled_study["steps"]
    log = next((pooled_study["root"] / "a" / "pools").glob(f"*-{allocation}.out"), None) or \
        next((pooled_study["root"] / "b" / "pools").glob(f"*-{allocation}.out"))
    assert "idle for 3s: releasing the allocation" in log.read_text()


@pytest.mark.slurm
@pytest.mark.integration
@pytest.mark.timeout(60)
def test_pools_lists_an_allocation_and_stops_it(slurm_cluster, tmp_path):
    from click.testing import CliRunner

    from xpm_train.cli import main
    from xpm_train.launchers.pool.allocations import allocations, request

    launchers = tmp_path / "launchers.yaml"
    launchers.write_text("launchers:\n" + slurm_cluster.launcher_yaml(
        "listed", extra="pool: {time: 10m, idle: 1m}"))
    jobid = request(load_file(launchers).get("listed"), tmp_path / "pools")
    deadline = time.monotonic() + 30
    while not any(a.running for a in allocations(slurm_cluster.binpath, "listed")):
        assert time.monotonic() < deadline, "the allocation never ran"
        time.sleep(0.2)
    listed = CliRunner().invoke(main, ["pools", "--file", str(launchers)])
    assert listed.exit_code == 0, listed.output
    header, row = listed.output.splitlines()
    assert header.split() == ["LAUNCHER", "JOB", "ID", "STATE", "NODES", "TIME", "LEFT", "STEPS",
                              "IDLE", "SINCE"]
    name, shown_id, state, _nodes, left, steps, since = row.split()
    assert (name, shown_id, state, steps) == ("listed", jobid, "RUNNING", "0")
    assert left.startswith(("9m", "10m")) and since[:2] == "20"  # 10 min limit; idle since its start
    stopped = CliRunner().invoke(main, ["pools", "stop", "--file", str(launchers)])
    assert stopped.output == f"stopped allocation {jobid} of pool listed\n"
    deadline = time.monotonic() + 30
    while allocations(slurm_cluster.binpath, "listed"):
        assert time.monotonic() < deadline, "still listed after pools stop"
        time.sleep(0.2)


# --- packing on GPUs: 2 fake GPUs, jobs_per_gpu: 2 (another cluster shape)

GPU_SPEC = "duration=5m & cuda(mem=1G)*1 & cpu(cores=1, mem=100M)"
GPU_PLAN = PLAN.replace("hold=1", "hold=2")


@pytest.fixture(scope="module")
def packed_study(tmp_path_factory):
    """4 one-GPU jobs of 2 s on one node with 2 fake GPUs and ``jobs_per_gpu: 2``."""
    from slurmhelpers import Shape, cluster_shape

    from xpm_train.launchers import tokens

    root = tmp_path_factory.mktemp("packed")
    with cluster_shape(Shape(gpus=2, cpus=4)) as cluster:
        launchers = root / "launchers.yaml"
        launchers.write_text("launchers:\n" + cluster.launcher_yaml("packed", extra=(
            "gpus: {count: 2, memory: 16G}\npool: {time: 10m, idle: 2s, jobs_per_gpu: 2}")))
        env = {"XPM_TRAIN_LAUNCHERS": str(launchers), "XPM_TRAIN_POOL_DIR": str(root / "registry"),
               "XPM_TRAIN_TOKENS_DIR": str(root / "tokens")}
        with mock.patch.dict(os.environ, env):
            tokens._tokens.clear()
            plan = subprocess.run([sys.executable, "-c", GPU_PLAN, str(root / "ws"), GPU_SPEC, "0", "4"],
                                  capture_output=True, text=True, timeout=150)
        tokens._tokens.clear()
        jobs = cluster.sacct_jobs(root, count=1)
    return dict(code=plan.returncode, output=plan.stdout + plan.stderr, ran=records(root / "ws"),
                jobs=jobs)


@pytest.mark.slurm
@pytest.mark.integration
def test_jobs_per_gpu_packs_two_jobs_on_each_gpu(packed_study):
    assert packed_study["code"] == 0, packed_study["output"][-3000:]
    ran = packed_study["ran"]
    assert len(ran) == 4 and len({r["slurm_job"] for r in ran}) == 1  # one allocation
    assert all(r["devices"] in ("0", "1") and r["gpu_share"] == "0.5" for r in ran), ran
    for record in ran:  # never more than 2 jobs on a GPU at once
        same = [r for r in ran if r["devices"] == record["devices"]
                and r["start"] < record["end"] and record["start"] < r["end"]]
        assert len(same) <= 2, same
    assert len({r["devices"] for r in ran}) == 2  # both GPUs used


def test_a_pool_step_and_its_server_share_a_key_whatever_the_step_limits(monkeypatch):
    """In a pool (XPM_TRAIN_WARM_POOL) the key leaves out the step's CPUs,
    limits and cgroup, which Slurm sets per step; elsewhere they count."""
    from xpm_train.warm import forkclient

    plain = forkclient.inherited_attributes({})
    pooled = forkclient.inherited_attributes({forkclient.POOL_ENV: "12"})
    cgroup = open("/proc/self/cgroup").read()
    assert cgroup in plain and cgroup not in pooled
    assert len(pooled) == len(plain) - 4  # 2 status lines, limits, cgroup


def test_a_shared_gpu_share_comes_from_the_launcher(monkeypatch):
    from types import SimpleNamespace

    from xpm_train.launchers.gpus import GPU_SHARE_ENV
    from xpm_train.runtime import cap_gpu_memory

    monkeypatch.setenv(GPU_SHARE_ENV, "1.5")
    with pytest.raises(ValueError, match=r"gpu_memory_fraction must be in \(0, 1\], got 1.5"):
        cap_gpu_memory(SimpleNamespace(type="cpu"), None)
    cap_gpu_memory(SimpleNamespace(type="cpu"), 0.5)  # the task's own wins


def test_a_step_ending_before_its_job_fails_the_job_with_slurm_s_word(tmp_path):
    """srun exits 0 when the node of its step fails: without the job's marker
    the job is failed (not taken for done), with the allocation's sacct state."""
    from xpm_train import jobfolder
    from xpm_train.launchers.pool.steps import record_step_failure

    binpath = tmp_path / "bin"
    binpath.mkdir()
    (binpath / "sacct").write_text("#!/bin/sh\necho '41|NODE_FAIL|0:0|n3'\n")
    (binpath / "sacct").chmod(0o755)
    folder = tmp_path / "jobs" / "xpm_train.learn.learn" / "abc"
    folder.mkdir(parents=True)
    record_step_failure(str(binpath), "41", folder, 0)
    said = jobfolder.failure(folder)
    assert said["reason"] == "failed" and said["message"] == (
        "Slurm job 41: NODE_FAIL on n3 (sacct); the job's step in this pool allocation ended "
        "(srun exit code 0) before the job"), said
