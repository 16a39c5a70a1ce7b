"""Local job processes: every waiter gets the real exit code.

experimaestro waits for a local job from the scheduler and from each counter
the job holds; with its own process class, all but the first get -1 (the
plan then logged ``ended with code -1`` for jobs that succeeded)."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import time

import pytest
from experimaestro.connectors.local import LocalProcess
from experimaestro.scheduler.interfaces import JobState

from xpm_train.launchers.process import JobConnector, SharedWaitProcess


async def wait_from_four(process) -> list[int]:
    return list(await asyncio.gather(*(process.aio_wait() for _ in range(4))))


@pytest.mark.parametrize("code", [0, 3])
def test_every_waiter_gets_the_exit_code(code):
    process = SharedWaitProcess(subprocess.Popen(["sh", "-c", f"sleep 0.2; exit {code}"]))
    assert asyncio.run(wait_from_four(process)) == [code] * 4


def test_experimaestros_process_gives_minus_one_to_later_waiters():
    # what the class above works around (if experimaestro fixes it, drop the workaround)
    codes = asyncio.run(wait_from_four(LocalProcess(subprocess.Popen(["sh", "-c", "sleep 0.2"]))))
    assert 0 in codes and -1 in codes


def test_local_launchers_start_shared_wait_processes(tmp_path):
    builder = JobConnector.instance().processbuilder()
    builder.command = ["true"]
    process = builder.start()
    assert isinstance(process, SharedWaitProcess)
    assert asyncio.run(wait_from_four(process)) == [0] * 4


def test_a_job_another_experiment_has_just_started_is_adopted(use_local_launcher, fresh_scheduler, tmp_path,
                                                               caplog):
    """The race of two experiments submitting one job (experimaestro 2.7): this
    experiment waits on the job's lock while the other starts the job's process;
    once it has the lock, it must wait for that process, not rewrite the script
    the process is reading nor start the job a second time."""
    import sys
    import threading

    from experimaestro import experiment
    from experimaestro.locking import create_file_lock

    from xpm_train.launchers import find_launcher
    from xpm_train.launchers.testing import Square

    use_local_launcher(gpus="")
    workdir = tmp_path / "xp"
    task = Square.C(x=7)
    folder = workdir / "jobs" / str(Square.__xpmtype__.identifier) / task.__xpm__.identifier.all.hex()
    folder.mkdir(parents=True)
    script = folder / "square.py"
    locked, errors = threading.Event(), []

    def the_other_experiment():
        """Holds the job's lock while "starting" the job's process: alive, it
        ends the job itself (as a job process would) with a result the real
        task cannot give."""
        try:
            lock = create_file_lock(str(folder / "square.lock"))
            lock.acquire()
            locked.set()
            deadline = time.monotonic() + 60  # until this experiment has submitted the job
            while task.__xpm__.job is None and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.0)  # ... and waits on the lock
            script.write_text("# the other experiment's script, being read by its process\n")
            other = subprocess.Popen([sys.executable, "-c", (
                "import json, pathlib, time; time.sleep(3); f = pathlib.Path(%r); "
                "(f / 'result.json').write_text(json.dumps({'square': -1})); (f / 'square.done').touch()"
            ) % str(folder)])
            (folder / "square.pid").write_text(json.dumps({"type": "local", "pid": other.pid}))
            lock.release()
            other.wait(60)
        except Exception as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    caplog.set_level(logging.INFO, logger="xpm_train.launchers")
    helper = threading.Thread(target=the_other_experiment, daemon=True)
    helper.start()
    assert locked.wait(30)
    with experiment(workdir, "adopt", no_environmental_impact=True) as xp:
        task.submit(launcher=find_launcher("duration=10m & cpu(cores=1, mem=200M)"))
        xp.wait()
    helper.join(60)
    assert not errors, errors
    assert task.__xpm__.job.path == folder
    assert script.read_text().startswith("# the other experiment's script")  # left alone
    assert json.loads((folder / "result.json").read_text()) == {"square": -1}  # not run a second time
    assert task.__xpm__.job.state == JobState.DONE
    assert any("started by another experiment" in r.getMessage() for r in caplog.records)
