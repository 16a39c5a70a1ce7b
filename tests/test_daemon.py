"""The daemon helper shared by the warm start's fork server and the MLflow
forwarder: started detached, one per lock, pid file beside it."""

import os
import time

from xpm_train import daemon
from xpm_train.locks import held


def test_claim_one_daemon_per_lock_with_its_pid_file(tmp_path):
    lock, pid = tmp_path / "d.lock", tmp_path / "d.pid"
    fd = daemon.claim(lock, 0o600, pid_file=pid)
    assert fd is not None and held(lock)
    assert pid.read_text() == f"{os.getpid()}\n"
    assert daemon.claim(lock, 0o600, pid_file=tmp_path / "other.pid") is None  # a second one exits
    assert not (tmp_path / "other.pid").exists()
    os.close(fd)
    assert not held(lock)


def test_start_runs_the_module_detached_with_its_output_in_the_log(tmp_path):
    log = tmp_path / "d.log"
    log.write_bytes(b"before\n")
    daemon.start("platform", [], log)
    deadline = time.monotonic() + 60
    while log.read_bytes() == b"before\n":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert log.read_text().startswith("before\n")  # appended, not truncated


def test_the_daemons_are_started_by_the_helper_only():
    """Detaching (a new session, output to a log) and taking the daemon's
    lock are not hand-built again by the fork server's or the forwarder's code."""
    from pathlib import Path

    import xpm_train

    package = Path(xpm_train.__file__).parent
    for name in ("warm/forkclient.py", "warm/forkserver.py", "warm/child.py", "warm/freshness.py",
                 "tracking/forwarder.py"):
        text = (package / name).read_text()
        assert "start_new_session" not in text and "flock" not in text, name
