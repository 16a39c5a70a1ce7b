"""The end of a Slurm job, from its folder (and ``sacct`` only for jobs that
wrote no marker), on the real Slurm (``XPM_TRAIN_SLURM=1``), and the parsing
pieces in-process."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from experimaestro import experiment
from experimaestro.scheduler.interfaces import JobFailureStatus, JobState

from xpm_train import jobfolder
from xpm_train.launchers import find_launcher
from xpm_train.launchers.slurmqueue import sacct_states
from xpm_train.launchers.slurmstate import marker_ending
from xpm_train.launchers.testing import RecordDevices, Square
from xpm_train.plan import failure_of

SPEC = "duration=10m & cpu(cores=1, mem=200M)"


def test_sacct_states_and_markers(tmp_path):
    assert sacct_states("12|CANCELLED by 1000|0:0\n13|COMPLETED|0:0\n\n") == {
        "12": "CANCELLED by 1000", "13": "COMPLETED"}
    folder = tmp_path / "jobs" / "pkg.square" / "abc"
    folder.mkdir(parents=True)
    assert marker_ending(folder) is None
    jobfolder.marker(folder, "failed").write_text("")  # experimaestro is writing it
    assert marker_ending(folder) is None
    jobfolder.marker(folder, "failed").write_text('{"code": 1, "reason": "failed"}')
    assert marker_ending(folder).code == 1
    jobfolder.marker(folder, "done").touch()
    assert marker_ending(folder).code == 0


@pytest.mark.slurm
@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_dependent_job_is_submitted_as_soon_as_its_dependency_ends(
        use_slurm_launcher, fresh_scheduler, tmp_path):
    """With ``poll_interval: 60`` (sacct polled every minute), the job after a
    1 s job is submitted within 2 s of its ``.done`` marker: the marker told."""
    use_slurm_launcher(poll_interval=60)
    with experiment(tmp_path / "xp", "chain", no_environmental_impact=True) as xp:
        launcher = find_launcher(SPEC)
        first = RecordDevices.C(index=0, hold=1).submit(launcher=launcher)
        second = RecordDevices.C(index=1, hold=0)
        second.add_dependencies(first.__xpm__.dependency())
        second.submit(launcher=launcher)
        xp.wait()
    first_job, second_job = first.__xpm__.job, second.__xpm__.job
    assert first_job.state == JobState.DONE and second_job.state == JobState.DONE
    ended = first_job.donepath.stat().st_mtime
    submitted = (second_job.path / f"{second_job.name}.sh").stat().st_mtime  # just before sbatch
    assert 0 < submitted - ended < 2, f"submitted {submitted - ended:.1f}s after the end"
    # the job's thread pools have the 1 CPU of --cpus-per-task, not the node's 2
    assert json.loads(first.record.read_text())["threads"] == "1"


def test_a_slurm_job_sizes_its_thread_pools_to_its_cpus_per_task(monkeypatch):
    """The job script's lines: ``SLURM_CPUS_PER_TASK`` (what Slurm gave each
    task) becomes ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``, unless the user set one."""
    import textwrap

    from xpm_train.launchers.slurmprocess import WatchedSlurmLauncher

    code = textwrap.dedent(WatchedSlurmLauncher("x", binpath="/usr/bin").launcher_info_code())
    code = code.replace("taskglobals.Env.instance().launcher_info =", "_info =")  # not this process's
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        # set, then delete: monkeypatch restores a variable only once it has
        # recorded it, and the job-script lines below write os.environ
        monkeypatch.setenv(variable, "recorded")
        monkeypatch.delenv(variable)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    exec(code, {})
    assert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == "3"
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("MKL_NUM_THREADS", "2")
    exec(code, {})
    assert os.environ["OMP_NUM_THREADS"] == "2"


@pytest.mark.slurm
@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_job_cancelled_by_slurm_fails_with_sacct_state(use_slurm_launcher, fresh_scheduler,
                                                         tmp_path):
    """A job cancelled while pending never writes a marker: squeue no longer
    lists it, sacct says why, and that is the failure the plan reports."""
    use_slurm_launcher(extra="sbatch: ['--begin=now+3600']")  # stays pending
    with experiment(tmp_path / "xp", "cancel", no_environmental_impact=True) as xp:
        task = Square.C(x=7).submit(launcher=find_launcher(SPEC))
        job = task.__xpm__.job
        deadline = time.monotonic() + 60
        # experimaestro writes the .pid before sbatch, without an ID; the job's
        # array batch (xpm_train/launchers/slurmarray.py) writes it again with one
        while not (job.pidpath.is_file() and json.loads(job.pidpath.read_text() or "{}").get("pid")):
            assert time.monotonic() < deadline, "never submitted"
            time.sleep(0.1)
        slurm_id = json.loads(job.pidpath.read_text())["pid"]
        subprocess.run(["scancel", str(slurm_id)], check=True, timeout=30)
        xp.wait()
    assert job.scheduler_state.failure_reason == JobFailureStatus.CANCELLED
    failed = json.loads(job.failedpath.read_text())
    assert failed["reason"] == "cancelled" and f"{slurm_id}: CANCELLED by" in failed["message"]
    assert jobfolder.state(job.path) == "failed"
    assert failure_of(job).startswith("not run (cancelled before it started")


def test_a_refusal_by_a_site_limit_names_it_and_max_submitted(tmp_path):
    """sbatch's refusal (a fake sbatch: no Slurm needed) is one line naming the
    limit and the launchers.yaml field that avoids it."""
    from xpm_train.launchers.slurmprocess import WatchedSlurmLauncher
    from xpm_train.launchers.slurmsubmit import SubmissionRefused

    sbatch = tmp_path / "sbatch"
    sbatch.write_text("#!/bin/sh\necho 'sbatch: error: QOSMaxSubmitJobPerUserLimit' >&2\n"
                      "echo 'sbatch: error: Batch job submission failed: Job violates "
                      "accounting/QOS policy (job submit limit)' >&2\nexit 1\n")
    sbatch.chmod(0o755)
    builder = WatchedSlurmLauncher("gpu", 50, binpath=str(tmp_path)).processbuilder()
    builder.command = [str(tmp_path / "job" / "task.sh")]
    with pytest.raises(SubmissionRefused) as refused:
        builder.start(True)
    message = str(refused.value)
    assert "\n" not in message and "'gpu'" in message
    assert "limit QOSMaxSubmitJobPerUserLimit was hit" in message
    assert "set max_submitted (now 50) in launchers.yaml" in message

    sbatch.write_text("#!/bin/sh\necho 'sbatch: error: invalid partition specified: x' >&2\n"
                      "exit 1\n")
    with pytest.raises(SubmissionRefused, match="invalid partition specified: x$"):
        builder.start(True)


def unfinished_slurm_jobs_under(folder) -> set[str]:
    """IDs of the jobs in ``squeue`` (pending or running) whose job folder is
    under ``folder`` and holds no marker yet (a job that wrote its ``.done`` is
    listed a moment longer, while its process exits)."""
    # -r: one row per array task (jobs ready together go out as one array, whose
    # tasks run in the array's folder and write their output through a link
    # into their job's folder: xpm_train/launchers/slurmarray.py)
    out = subprocess.run(["squeue", "-r", "-h", "-o", "%i|%Z|%o"], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    rows = [line.split("|", 2) for line in out.splitlines() if line.count("|") == 2]
    return {jobid for jobid, workdir, output in rows
            if workdir.startswith(str(folder)) and jobfolder.finished_state(job_folder(workdir, output)) is None}


def job_folder(workdir: str, output: str) -> Path:
    """The job folder of a squeue row: its working folder, or for an array task
    the folder its output link points into."""
    linked = Path(output)
    return linked.resolve().parent if linked.is_symlink() else Path(workdir)


@pytest.mark.slurm
@pytest.mark.integration
@pytest.mark.timeout(180)
def test_max_submitted_makes_jobs_wait_for_room(use_slurm_launcher, fresh_scheduler, tmp_path):
    """4 jobs, ``max_submitted: 2``: never more than 2 in squeue at once, all done."""
    import threading

    use_slurm_launcher(extra="max_submitted: 2")
    seen, stop = [], threading.Event()
    workdir = (tmp_path / "xp").resolve()

    def watch():
        while not stop.is_set():
            seen.append(unfinished_slurm_jobs_under(workdir))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    with experiment(workdir, "room", no_environmental_impact=True) as xp:
        watcher.start()
        tasks = [RecordDevices.C(index=i, hold=1).submit(launcher=find_launcher(SPEC))
                 for i in range(4)]
        xp.wait()
    stop.set()
    watcher.join()
    assert all(task.__xpm__.job.state == JobState.DONE for task in tasks)
    assert max(len(ids) for ids in seen) <= 2, seen
    assert len(set().union(*seen)) == 4, seen  # each was seen queued or running


def fake_slurm(folder: Path, **outputs: str) -> Path:
    """A binpath whose commands print ``outputs[name]`` and log their arguments to ``calls``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("squeue", "sacct", "scancel"):
        script = folder / name
        script.write_text(f"#!/bin/sh\necho {name} \"$@\" >> {folder}/calls\nprintf '%s' '{outputs.get(name, '')}'\n")
        script.chmod(0o755)
    return folder


@pytest.mark.parametrize("marker, squeue, sacct, reason, cancelled", [
    ("timeout", "", "7|CANCELLED by 0|0:15|n1\n", "cancelled", False),  # scancel: not to be resubmitted
    ("timeout", "PENDING\n", "", "timeout", True),  # requeued: Slurm's copy is cancelled, the plan resubmits
    ("cancelled", "PENDING\n", "", "timeout", True),  # (a 2nd SIGTERM reached experimaestro's handler)
    ("timeout", "", "7|FAILED|1:0|n1\n", "timeout", False),  # its time limit: resubmitted
])
def test_a_job_that_stopped_at_a_signal_is_settled_with_slurm(tmp_path, marker, squeue, sacct, reason,
                                                              cancelled):
    """The task saved a checkpoint and wrote a ``timeout`` marker: scancel sends
    that signal too (the job is then marked cancelled, with Slurm's word), and a
    requeued job would run again beside the one the plan submits."""
    from xpm_train.launchers.slurmstate import SlurmWatcher, Watched

    folder = tmp_path / "jobs" / "xpm_train.learn.learn" / "abc"
    folder.mkdir(parents=True)
    jobfolder.marker(folder, "failed").write_text(json.dumps({"code": 1, "reason": marker}))
    binpath = fake_slurm(tmp_path / "bin", squeue=squeue, sacct=sacct)
    ending = SlurmWatcher(str(binpath)).ended(Watched("7", folder, None))
    assert ending.code == 1 and ending.reason == reason
    failed = json.loads(jobfolder.marker(folder, "failed").read_text())
    assert failed["reason"] == reason
    if reason == "cancelled":
        assert failed["message"] == ("Slurm job 7: CANCELLED by 0 on n1 (sacct); its task saved a checkpoint: "
                                     "the next run of the plan resumes it")
    assert ("scancel 7" in (binpath / "calls").read_text()) == cancelled


@pytest.mark.parametrize("squeue, sacct, said", [
    ("", "7|NODE_FAIL|1:0|n[1,3]\n", "Slurm job 7: NODE_FAIL on n[1,3] (sacct); its task failed first (see its log)"),
    ("", "7|FAILED|1:0|n1\n", "ValueError: bad"),  # Slurm says no more than the task
    ("RUNNING\n", "", None),  # not yet: another rank still runs, or its node is not yet declared down
])
def test_a_job_whose_task_failed_is_settled_with_slurm(tmp_path, squeue, sacct, said):
    """Rank 0 of a 2-node job fails at once when the other rank's node dies
    (its marker: the task's error); Slurm ends the job NODE_FAIL only once it
    declares the node down: the marker then says so, for the plan's summary."""
    from xpm_train.launchers.slurmstate import SlurmWatcher, Watched

    folder = tmp_path / "jobs" / "xpm_train.learn.learn" / "abc"
    folder.mkdir(parents=True)
    jobfolder.marker(folder, "failed").write_text(json.dumps({"code": 1, "reason": "failed",
                                                              "message": "ValueError: bad"}))
    binpath = fake_slurm(tmp_path / "bin", squeue=squeue, sacct=sacct)
    ending = SlurmWatcher(str(binpath)).ended(Watched("7", folder, None))
    if said is None:
        assert ending is None and "sacct" not in (binpath / "calls").read_text()
        return
    assert ending.code == 1 and ending.reason == "failed"
    assert json.loads(jobfolder.marker(folder, "failed").read_text())["message"] == said


def test_a_submission_waits_for_an_unreachable_controller(tmp_path, monkeypatch, caplog):
    """sbatch's connection refused (slurmctld restarting) submitted nothing: it
    is tried again, and the job is submitted once the controller answers."""
    from xpm_train.launchers import slurmsubmit
    from xpm_train.launchers.slurmprocess import WatchedSlurmLauncher

    sbatch = tmp_path / "sbatch"
    sbatch.write_text(f"#!/bin/sh\necho x >> {tmp_path}/tries\n"
                      f"if [ $(wc -l < {tmp_path}/tries) -lt 3 ]; then\n"
                      "  echo 'sbatch: error: Batch job submission failed: Unable to contact slurm "
                      "controller (connect failure)' >&2; exit 1\nfi\necho 42\n")
    sbatch.chmod(0o755)
    monkeypatch.setattr(slurmsubmit.time, "sleep", lambda seconds: None)
    builder = WatchedSlurmLauncher("gpu", binpath=str(tmp_path)).processbuilder()
    builder.command = [str(tmp_path / "job" / "task.sh")]
    with caplog.at_level("WARNING", logger="xpm_train.launchers"):
        process = builder.start(True)
    assert process.jobid == "42"
    assert (tmp_path / "tries").read_text().count("x") == 3
    assert sum("controller does not answer" in r.getMessage() for r in caplog.records) == 2


def test_a_later_plan_follows_a_queued_job_of_an_earlier_one(tmp_path, monkeypatch):
    """The ``.pid`` of a job still queued (an array task pending: ``squeue -r``
    lists ``7_3``, ``sacct`` only ``7_[3-4]``) gives a process the later plan
    waits for; one gone from the queue without a marker gives none (submitted again)."""
    import asyncio

    from experimaestro.connectors import Process
    from experimaestro.connectors.local import LocalConnector

    from xpm_train.launchers import slurmqueue
    from xpm_train.launchers.slurmprocess import WatchedSlurmLauncher, WatchedSlurmProcess

    monkeypatch.setattr(slurmqueue, "_queued", {})
    binpath = fake_slurm(tmp_path / "bin", squeue="7_3\n", sacct="7_[3-4]|PENDING|0:0|None assigned\n")
    folder = tmp_path / "jobs" / "t" / "abc"
    folder.mkdir(parents=True)
    launcher = WatchedSlurmLauncher("grid", binpath=str(binpath), interval=60)
    spec = json.loads(json.dumps(WatchedSlurmProcess(launcher, "7_3", folder).tospec()))
    process = Process.fromDefinition(LocalConnector.instance(), spec)
    assert isinstance(process, WatchedSlurmProcess), process
    assert (process.jobid, process.folder) == ("7_3", folder)
    assert asyncio.run(process.aio_isrunning())
    assert Process.fromDefinition(LocalConnector.instance(), {**spec, "pid": "7_4"}) is None
