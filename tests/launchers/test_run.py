"""Tasks sent through launchers for real: local processes and a real Slurm.

Tests taking ``launcher_kind`` run on both (the Slurm case only with
``XPM_TRAIN_SLURM=1``, see conftest.py); the others are about local GPU
pinning and host-wide limits.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from experimaestro import experiment
from experimaestro.scheduler.interfaces import JobState

from gpulocks import is_free
from xpm_train.launchers import find_launcher
from xpm_train.launchers.testing import RecordDevices, Square, read_record

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def run_squares(workdir: Path) -> list:
    with experiment(workdir, "squares", no_environmental_impact=True) as xp:
        launcher = find_launcher("duration=10m & cpu(cores=1, mem=200M)")
        tasks = [Square.C(x=x).submit(launcher=launcher) for x in range(3)]
        xp.wait()
    return tasks


def test_tasks_end_done_and_a_second_run_submits_nothing(
        launcher_kind, launchers_file, fresh_scheduler, tmp_path, request):
    workdir = tmp_path / "xp"
    tasks = run_squares(workdir)
    jobs = [task.__xpm__.job for task in tasks]
    assert all(job.state == JobState.DONE for job in jobs)
    results = [json.loads(Path(task.result).read_text()) for task in tasks]
    assert [r["square"] for r in results] == [0, 1, 4]
    finished = {job.donepath: job.donepath.stat().st_mtime_ns for job in jobs}

    if launcher_kind == "slurm":
        cluster = request.getfixturevalue("slurm_cluster")
        listed = cluster.sacct_jobs(workdir.resolve(), count=3)
        assert sorted(j["raw"] for j in listed) == sorted(r["slurm_job"] for r in results)
        assert {j["state"] for j in listed} == {"COMPLETED"}
        for job in jobs:  # Slurm's own output files stay in the job folder
            script = (job.path / f"{job.name}.sh").read_text()
            assert "#SBATCH --signal=USR1@60" in script and "#SBATCH --time=00:10:00" in script
            assert "#SBATCH --mem=191M" in script and "#SBATCH --cpus-per-task=1" in script
            assert (job.path / f"{job.name}.err").is_file()
    else:
        assert all(r["slurm_job"] is None for r in results)

    fresh_scheduler()  # as if a new process ran the same experiment
    again = run_squares(workdir)
    assert all(task.__xpm__.job.state == JobState.DONE for task in again)
    assert {d: d.stat().st_mtime_ns for d in finished} == finished  # nothing ran again
    if launcher_kind == "slurm":
        assert len(cluster.sacct_jobs(workdir.resolve(), count=3)) == 3  # nothing submitted


def stop_signal(job, launcher_kind: str) -> None:
    """Send SIGUSR1 to a running job: ``scancel --signal`` on Slurm (what
    ``--signal=USR1@60`` does before the time limit), ``kill`` locally."""
    spec = json.loads(job.pidpath.read_text())
    if launcher_kind == "slurm":
        subprocess.run(["scancel", "--signal=USR1", str(spec["pid"])], check=True, timeout=30)
    else:
        os.kill(int(spec["pid"]), signal.SIGUSR1)


def events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_stopped_learn_checkpoints_and_is_run_again(launcher_kind, launchers_file,
                                                     fresh_scheduler, tmp_path, request):
    """SIGUSR1 (Slurm's warning before the time limit or a preemption) makes
    Learn checkpoint and stop; the scheduler submits it again and it resumes."""
    from xpm_train import MLP, Adam, Digits, Learn

    workdir = tmp_path / "xp"
    with experiment(workdir, "preempt", no_environmental_impact=True) as xp:
        learn = Learn.C(model=MLP.C(hidden_dims=[16]), data=Digits.C(split="train"),
                        optimizer=Adam.C(lr=1e-3), epochs=2, batch_size=8, device="cpu",
                        log_interval=10)
        learn.submit(launcher=find_launcher("duration=10m & cpu(cores=1)"))
        job = learn.__xpm__.job
        deadline = time.monotonic() + 120
        while not (learn.metrics_path.is_file() and learn.metrics_path.read_text()):
            assert time.monotonic() < deadline and not job.state.finished(), "Learn never ran"
            time.sleep(0.1)
        stop_signal(job, launcher_kind)
        xp.wait()

    assert job.state == JobState.DONE
    kinds = [e["event"] for e in events(learn.events_path)]
    assert kinds[0] == "start" and kinds[-1] == "end", kinds
    assert "preempted" in kinds and kinds.index("preempted") < kinds.index("resume"), kinds
    assert next(e for e in events(learn.events_path)
                if e["event"] == "preempted")["signal"] == "SIGUSR1"
    final = json.loads((job.path / "final.json").read_text())
    assert final["epochs"] == 2
    if launcher_kind == "slurm":
        cluster = request.getfixturevalue("slurm_cluster")
        runs = cluster.sacct_jobs(job.path.resolve(), count=2)
        # submitted twice: stopped (exit 1 after the checkpoint), then resumed to the end
        assert [run["state"] for run in runs] == ["FAILED", "COMPLETED"], runs


def assert_exclusive(records: list[dict]):
    """No GPU is used by two jobs at the same time."""
    for device in {d for r in records for d in r["devices"].split(",")}:
        spans = sorted((r["start"], r["end"]) for r in records
                       if device in r["devices"].split(","))
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end, f"GPU {device} shared: {spans}"


@pytest.mark.parametrize("launcher_kind", ["local"])
def test_local_gpu_jobs_are_pinned_exclusively(launcher_kind, launchers_file, fresh_scheduler,
                                               tmp_path):
    """6 one-GPU jobs and a two-GPU job on 2 (fake) GPUs: each gets its own."""
    with experiment(tmp_path / "xp", "gpus", no_environmental_impact=True) as xp:
        one = find_launcher("cuda(mem=8G)*1")
        two = find_launcher("cuda(mem=8G)*2")
        singles = [RecordDevices.C(index=i, hold=0.5).submit(launcher=one) for i in range(6)]
        double = RecordDevices.C(index=6, hold=0.5).submit(launcher=two)
        cpu_only = RecordDevices.C(index=7, hold=0.1).submit(launcher=find_launcher("cpu(cores=1)"))
        xp.wait()
    records = [read_record(task) for task in singles + [double]]
    assert all(r["devices"] in ("0", "1") for r in records[:6])  # exactly one GPU each
    assert records[6]["devices"] == "0,1"
    assert read_record(cpu_only)["devices"] == ""
    assert_exclusive(records)
    assert is_free("0") and is_free("1")


@pytest.mark.parametrize("launcher_kind", ["local"])
def test_local_gpus_released_after_sigkill(launcher_kind, launchers_file, fresh_scheduler,
                                           tmp_path):
    with experiment(tmp_path / "xp", "kill", no_environmental_impact=True) as xp:
        both = find_launcher("cuda(mem=8G)*2")
        victim = RecordDevices.C(index=100, hold=120).submit(launcher=both)
        pidfile = Path(victim.record).with_name("pid")
        deadline = time.monotonic() + 60
        while not pidfile.is_file():
            assert time.monotonic() < deadline, "victim never started"
            time.sleep(0.05)
        assert not is_free("0") and not is_free("1")
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
        after = RecordDevices.C(index=101, hold=0.1).submit(launcher=both)
        xp.wait()
    assert victim.__xpm__.job.scheduler_state.is_error()
    assert read_record(after)["devices"] == "0,1"  # both GPUs (and tokens) came back
    assert is_free("0") and is_free("1")
    assert not Path(victim.record).exists()


EXPERIMENT = textwrap.dedent("""\
    import sys
    from pathlib import Path
    from experimaestro import experiment
    from xpm_train.launchers import find_launcher
    from xpm_train.launchers.testing import RecordDevices
    workdir, first, spec = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    with experiment(workdir, "host", no_environmental_impact=True) as xp:
        launcher = find_launcher(spec)
        for i in range(first, first + 3):
            RecordDevices.C(index=i, hold=0.4).submit(launcher=launcher)
        xp.wait()
    """)


@pytest.mark.parametrize("cores, memory, gpus, spec", [
    pytest.param(1, "8G", "", "cpu(cores=1)", id="cores"),
    pytest.param(4, "1G", "", "cpu(cores=1, mem=600M)", id="memory"),
    pytest.param(4, "8G", "1x80G", "cpu(cores=1) & cuda(mem=8G)*1", id="gpus"),
])
def test_local_limits_hold_across_experiments_of_the_host(cores, memory, gpus, spec, tmp_path,
                                                          use_local_launcher):
    """Two experiments (processes) at once, 3 jobs each, on a launcher with room
    for one such job (1 core, or 1G for 600M jobs, or 1 GPU): one job at a time in all."""
    use_local_launcher(cores, memory, gpus)
    script = tmp_path / "xp.py"
    script.write_text(EXPERIMENT)
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / f"xp{n}"), str(3 * n),
                               spec], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for n in range(2)]
    for proc in procs:
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, out.decode()[-3000:]
    records = [json.loads(p.read_text()) for p in tmp_path.glob("xp*/jobs/*/*/record.json")]
    assert sorted(r["index"] for r in records) == list(range(6))
    assert {r["devices"] for r in records} == {"0" if gpus else None}
    spans = sorted((r["start"], r["end"]) for r in records)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, f"two jobs ran at once although only one fits: {spans}"


def test_local_max_jobs_limits_jobs_at_a_time(tmp_path, monkeypatch, fresh_scheduler):
    """8 cores declared but ``max_jobs: 2``: six one-core jobs never run more than two at a time."""
    path = tmp_path / "launchers.yaml"
    path.write_text("launchers:\n  - name: box\n    type: local\n    cpu: {cores: 8, memory: 8G}\n"
                    "    max_jobs: 2\n")
    monkeypatch.setenv("XPM_TRAIN_LAUNCHERS", str(path))
    with experiment(tmp_path / "xp", "max-jobs", no_environmental_impact=True) as xp:
        launcher = find_launcher("cpu(cores=1)")
        tasks = [RecordDevices.C(index=i, hold=1.5).submit(launcher=launcher) for i in range(6)]
        xp.wait()
    records = [read_record(task) for task in tasks]
    events = sorted([(r["start"], 1) for r in records] + [(r["end"], -1) for r in records])
    running, most = 0, 0
    for _, change in events:  # an end before a start at the same instant
        running += change
        most = max(most, running)
    assert most <= 2, f"{most} jobs ran at once with max_jobs: 2"
