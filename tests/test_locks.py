"""The lock probe: held while a live process holds the flock, free once it died."""

import signal
import subprocess
import sys
import time

from xpm_train.locks import held

HOLD = "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); " \
       "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)"


def test_held_while_the_holder_lives_and_not_after_sigkill(tmp_path):
    lock = tmp_path / "server.lock"
    assert not held(lock) and not lock.exists()  # the probe creates nothing
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert held(lock) and held(str(lock))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    deadline = time.monotonic() + 10
    while held(lock):  # the kernel drops the lock of a dead process
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert lock.exists()  # left behind, and free: it does not count


def test_the_warm_start_client_loads_the_probe_without_xpm_train(tmp_path):
    from xpm_train.warm import forkclient

    code = ("import runpy, sys; g = runpy.run_path(sys.argv[1]); "
            "print(g['held'].__module__, 'xpm_train' in sys.modules or 'xpm_train.locks' in sys.modules)")
    out = subprocess.run([sys.executable, "-S", "-c", code, forkclient.__file__], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["xpm_train.locks", "False"]


def test_take_holds_until_closed_and_refuses_while_held(tmp_path):
    import os

    from xpm_train.locks import take

    lock = tmp_path / "daemon.lock"
    fd = take(lock, 0o640)
    assert fd is not None and held(lock)
    assert (lock.stat().st_mode & 0o777) == 0o640 & ~_umask()
    assert take(lock) is None  # a second taker (another open file) does not wait
    os.close(fd)
    assert not held(lock)
    again = take(lock)
    assert again is not None
    os.close(again)


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_the_non_blocking_take_is_written_once():
    """fcntl's LOCK_NB is spelled in xpm_train/locks.py only: every holder of
    a "this process is alive" lock (fork server, MLflow forwarder, GPU pins,
    study drivers) takes it through locks.take."""
    from pathlib import Path

    import xpm_train

    package = Path(xpm_train.__file__).parent
    spelled = sorted(str(p.relative_to(package)) for p in package.rglob("*.py")
                     if p != package / "locks.py" and "LOCK_NB" in p.read_text())
    assert spelled == []
