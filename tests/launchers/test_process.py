"""Local job processes: every waiter gets the real exit code.

experimaestro waits for a local job from the scheduler and from each counter
the job holds; with its own process class, all but the first get -1 (the
plan then logged ``ended with code -1`` for jobs that succeeded)."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from experimaestro.connectors.local import LocalProcess

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
