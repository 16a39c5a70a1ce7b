"""``max_submitted``: a job's unit of room is given back once Slurm dropped the job
(in-process, a fake ``squeue``; on the real Slurm: tests/launchers/test_slurmstate.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from experimaestro.locking import EventLoopThread, JobDependencyLocks

from xpm_train.launchers import slurmqueue, tokens
from xpm_train.launchers.slurmprocess import WatchedSlurmLauncher, WatchedSlurmProcess


def held_unit(tmp_path: Path, monkeypatch, squeue: str):
    """A launcher with ``max_submitted: 1`` (``binpath``: an ``squeue`` printing
    ``squeue``'s text while the file ``queued`` exists), a job holding its unit,
    and the unit's lock, acquired."""
    monkeypatch.setenv(tokens.TOKENS_DIR_ENV, str(tmp_path / "tokens"))
    monkeypatch.setattr(tokens, "_tokens", {})
    monkeypatch.setattr(slurmqueue, "_queued", {})
    binpath = tmp_path / "bin"
    binpath.mkdir()
    (binpath / "squeue").write_text(f"#!/bin/sh\n[ -e {tmp_path}/queued ] && printf '{squeue}'\nexit 0\n")
    (binpath / "squeue").chmod(0o755)
    (tmp_path / "queued").touch()
    launcher = WatchedSlurmLauncher("grid", max_submitted=1, binpath=str(binpath), interval=60)
    folder = tmp_path / "jobs" / "t" / "abc"
    folder.mkdir(parents=True)
    job = SimpleNamespace(dependencies=set(), task_id="t", identifier="abc", basepath=folder, path=folder)
    launcher._hold_a_submission(job)
    (dependency,) = job.dependencies
    dependency.target = job
    lock = dependency._create_lock()
    asyncio.run(lock.aio_acquire())
    return launcher, dependency, lock, folder


def test_the_job_process_leaves_its_unit_to_the_plan(tmp_path, monkeypatch):
    """The job's own process (its task just returned) does not give the unit back:
    experimaestro's counter lock deletes its lock file there, before the job's
    marker, while Slurm still counts the job."""
    _, dependency, lock, _ = held_unit(tmp_path, monkeypatch, "7\\n")
    lock_file = lock.lock_file_path
    assert lock_file.is_file()
    job_side = JobDependencyLocks.from_json([json.loads(json.dumps(lock.to_json()))])
    with job_side.dependency_locks():
        pass  # the task runs
    assert lock_file.is_file()
    assert dependency.token.available == 0


@pytest.mark.timeout(60)
def test_the_plan_gives_the_unit_back_once_slurm_dropped_the_job(tmp_path, monkeypatch):
    """The job ended (its marker) but ``squeue`` still lists it (completing): its
    unit is given back only once ``squeue`` no longer does."""
    launcher, dependency, lock, folder = held_unit(tmp_path, monkeypatch, "7\\n8_3\\n")
    process = WatchedSlurmProcess(launcher, "7", folder)

    async def scenario():
        await lock.aio_job_started(SimpleNamespace(), process)
        release = asyncio.ensure_future(lock.aio_release())
        await asyncio.sleep(1.5)
        still = not release.done() and dependency.token.available == 0
        (tmp_path / "queued").unlink()  # Slurm dropped it
        await asyncio.wait_for(release, 10)
        return still

    # on the loop where experimaestro runs its locks
    assert EventLoopThread.instance().run_coroutine(scenario()).result(30), "the unit was given back while squeue still listed the job"
    assert dependency.token.available == 1
    assert not lock.lock_file_path.exists()
