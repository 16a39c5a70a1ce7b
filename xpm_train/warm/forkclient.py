"""The warm start's client: the process experimaestro starts for a local job.

The local launcher (:class:`.process.LocalLauncher`) starts a job as::

    python -S .../xpm_train/warm/forkclient.py --threads N -- JOB_SCRIPT

instead of ``JOB_SCRIPT``. This file imports nothing but the standard library,
:mod:`xpm_train.locks` and :mod:`.messages` (stdlib only too, loaded from
their files; :mod:`xpm_train.daemon` too when it has to start the server), so
it starts in about 20 ms. It asks the user's fork server (:mod:`.forkserver`,
which has already imported torch, experimaestro and xpm_train) to fork one
process that runs ``JOB_SCRIPT``, hands it this
process's stdin/stdout/stderr, environment and working folder, and then stands
for the job towards experimaestro:

* it forwards SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGHUP and SIGQUIT to the job
  (preemption, cancellation);
* it exits with the job's exit code (or dies of the signal that killed it);
* when it dies itself (SIGKILL), the job sees its connection close and kills
  itself: no orphan.

When there is no server yet, it starts one and waits for it (up to
``XPM_TRAIN_WARM_WAIT_S`` seconds, default 60): importing torch once in the
server costs what the job would pay to import it itself, and the jobs that
follow fork at once (on a small machine, two jobs and a server importing
torch side by side would each take longer). Whenever the server cannot be
used it **execs the job script** in this very process (a normal start, same
pid, one line on stderr saying why): no server after that wait, or one that
died while starting, a server of another interpreter,
virtualenv, package or start-up environment (see :func:`server_key`), an
unsafe socket folder, a refused request, a stale server.

This module also owns the conventions the server shares: where the socket
lives, the server's key (what the two say is :mod:`.messages`). Security: the socket lives in a
folder only its user can open (mode 0700, checked), and the server checks
the peer's uid (``SO_PEERCRED``) before reading a request.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sys

ENABLE_ENV = "XPM_TRAIN_WARM_START"
"""``0``/``off``/``false``: local jobs start as plain processes"""
DIR_ENV = "XPM_TRAIN_WARM_DIR"
"""The servers' folder (default ``$XDG_RUNTIME_DIR/xpm-train-warm``, else
``/tmp/xpm-train-warm-<uid>``)"""
WAIT_ENV = "XPM_TRAIN_WARM_WAIT_S"
"""Seconds a job waits for a server that is starting (default 60; 0: a normal start at once)"""
DEFAULT_WAIT_S = 60.0
STARTING_GRACE_S = 5.0
"""How long a server just launched may take to take its lock (under load)"""
OFF = ("0", "off", "false", "no")
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2,
                     signal.SIGHUP, signal.SIGQUIT)
STARTUP_ENV_PREFIXES = ("PYTHON", "LD_", "OMP_", "KMP_", "GOMP_", "MKL_", "OPENBLAS_", "TORCH",
                        "LC_", "LANG", "MPL", "MATPLOTLIB", "NPY_", "NUMPY_", "HOME", "XDG_CONFIG_HOME",
                        "XPM_LOCK_TIMEOUT", "XPM_POLL_INTERVAL_MAX", "XPM_TRAIN_FORWARDER_IDLE_S")
"""Variables read when the interpreter or a preloaded module starts (before
any job code runs: the locale, matplotlib's backend and config folder,
numpy's, experimaestro's and the MLflow forwarder's timeouts; not every
``XPM_*``: a plan's own variables, read when used, would split servers for
nothing): a job whose values differ needs a server started with them. (``TMPDIR`` and ``TZ``, cached by the standard library,
are read again in the forked job.)"""
INHERITED_STATUS = ("Umask", "SigBlk", "SigIgn", "Cpus_allowed_list", "Mems_allowed_list")
"""Process attributes (``/proc/self/status``) that a job started cold
inherits from its client across ``exec`` and a forked one from its server"""
POOL_ENV = "XPM_TRAIN_WARM_POOL"
"""Set (to the allocation) in a Slurm pool's steps and fork servers (see :func:`inherited_attributes`)"""
POOL_STEP_STATUS = ("Cpus_allowed_list", "Mems_allowed_list")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""... except the thread counts, which the forked job applies itself"""
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""This installation of xpm_train (the folder of the package)"""


def from_file(name: str):
    """xpm_train's stdlib-only module ``name`` (dotted below xpm_train)
    loaded from its file: run as a script under python -S, xpm_train is not
    importable (and its __init__ must not run here)."""
    import importlib.util

    path = os.path.join(PACKAGE, *name.split(".")) + ".py"
    spec = importlib.util.spec_from_file_location(f"xpm_train.{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __package__:
    from ..locks import held
    from . import messages
else:
    held = from_file("locks").held
    messages = from_file("warm.messages")


class Unavailable(Exception):
    """The warm start cannot be used for this job (the message says why)."""


def enabled(environ=os.environ) -> bool:
    return environ.get(ENABLE_ENV, "").strip().lower() not in OFF


def warm_command(cores: int) -> list[str]:
    """What the local launcher runs, before the job script's path (``[]``:
    the script itself, when the warm start is off in the plan's environment)."""
    if not enabled():
        return []
    return [sys.executable, "-S", os.path.abspath(__file__), "--threads", str(cores), "--"]


def server_key(environ=os.environ, executable: str = sys.executable) -> str:
    """What a forked job must share with its server: the interpreter (its path
    names the virtualenv), this xpm_train package, the start-up variables and
    this process's inherited attributes. Jobs of another venv or worktree get
    another key, hence another server."""
    startup = sorted((k, v) for k, v in environ.items()
                     if k.startswith(STARTUP_ENV_PREFIXES) and k not in THREAD_VARIABLES)
    text = json.dumps([executable, PACKAGE, startup, inherited_attributes(environ)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def inherited_attributes(environ=os.environ) -> list[str]:
    """What this process would pass across ``exec`` to a cold job besides its
    environment, and a forked job takes from its server instead: umask,
    blocked and ignored signals, allowed CPUs and memory nodes, resource
    limits, niceness and cgroup (a server is started by a client, so it has
    its client's). In a Slurm pool's job step (``XPM_TRAIN_WARM_POOL`` set by
    :mod:`.pool`) the step's own CPUs, limits and cgroup are left out: the job
    runs in the allocation's, those of its node's fork server."""
    pooled = bool(environ.get(POOL_ENV))
    with open("/proc/self/status") as fp:
        status = dict(line.rstrip("\n").split(":", 1) for line in fp if ":" in line)
    found = [status.get(name, "").strip() for name in INHERITED_STATUS
             if not (pooled and name in POOL_STEP_STATUS)]
    for name in () if pooled else ("limits", "cgroup"):
        with open(f"/proc/self/{name}") as fp:
            found.append(fp.read())
    return found + [str(os.getpriority(os.PRIO_PROCESS, 0))]


def server_dir(environ=os.environ) -> str:
    """The user's folder of fork servers, created 0700; refused when another
    user owns it or others can open it."""
    folder = environ.get(DIR_ENV) or (
        os.path.join(environ["XDG_RUNTIME_DIR"], "xpm-train-warm") if environ.get("XDG_RUNTIME_DIR")
        else f"/tmp/xpm-train-warm-{os.getuid()}")
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(folder)
    import stat

    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise Unavailable(f"{folder} is not a folder of uid {os.getuid()} with mode 0700 "
                          f"(mode {oct(info.st_mode & 0o777)}, uid {info.st_uid}): remove it")
    return folder


def paths(key: str, environ=os.environ) -> dict[str, str]:
    """Socket, lock (held by the live server), pid and log files of one server."""
    base = os.path.join(server_dir(environ), key)
    return {name: f"{base}.{name}" for name in ("sock", "lock", "pid", "log")}


def wait_for_server(key: str, files: dict[str, str], error: OSError) -> socket.socket:
    """A connection to the server of ``key``, started here unless it is
    starting already, once it listens. :raises Unavailable: not within
    ``XPM_TRAIN_WARM_WAIT_S``, or the server died while starting."""
    import time

    try:
        wait_s = float(os.environ.get(WAIT_ENV) or DEFAULT_WAIT_S)
    except ValueError:
        wait_s = DEFAULT_WAIT_S
    started = not held(files["lock"])  # a live server (starting or serving) holds its lock
    if started:
        start_server(key, files)
    what = "started one" if started else "one was starting"
    sys.stderr.write(f"xpm-train: waiting for the warm server to start ({what}; log: {files['log']})\n")
    sys.stderr.flush()
    launched = time.monotonic()
    while time.monotonic() - launched < wait_s:
        time.sleep(0.05)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(files["sock"])
            return sock
        except OSError:
            sock.close()
        if time.monotonic() - launched > STARTING_GRACE_S and not held(files["lock"]):
            raise Unavailable(f"no warm server ({type(error).__name__}): {what}, and it exited "
                              f"(log: {files['log']})")
    raise Unavailable(f"no warm server ({type(error).__name__}): {what}, not listening after "
                      f"{wait_s:g} s ({WAIT_ENV}; log: {files['log']})")


def start_server(key: str, files: dict[str, str], environ=os.environ) -> None:
    """Start the server of ``key`` in the background (its own session; it
    loses nothing when this process ends)."""
    env = {k: v for k, v in environ.items() if k not in THREAD_VARIABLES}
    if __package__:
        from ..daemon import start
    else:
        start = from_file("daemon").start
    start("xpm_train.warm.forkserver", [key], files["log"], env)


def interpreter_of(script: str) -> str:
    with open(script, "rb") as fp:
        first = fp.readline().decode(errors="replace").strip()
    return first[2:].strip() if first.startswith("#!") else ""


def connect(script: str, threads: int) -> tuple[socket.socket, int]:
    """Have the server fork the job; its pid. :raises Unavailable: why not."""
    if not enabled():
        raise Unavailable(f"{ENABLE_ENV}={os.environ.get(ENABLE_ENV)}")
    interpreter = interpreter_of(script)
    if interpreter != sys.executable:
        raise Unavailable(f"the job's interpreter {interpreter or '?'} is not {sys.executable}")
    key = server_key()
    files = paths(key)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(files["sock"])
    except OSError as error:
        sock.close()
        sock = wait_for_server(key, files, error)
    request = messages.Request(key=key, script=os.path.abspath(script), cwd=os.getcwd(),
                               env=dict(os.environ), threads=threads)
    try:
        messages.send(sock, request, [0, 1, 2])
        answer = messages.receive_reply(sock)
    except OSError as error:
        sock.close()
        raise Unavailable(f"the warm server did not answer ({error})") from None
    if isinstance(answer, messages.Started):
        return sock, answer.pid
    sock.close()
    if isinstance(answer, messages.Refused):
        if answer.stale:
            start_server(key, files)
        raise Unavailable(answer.refused)
    raise Unavailable("the warm server closed the connection")


def wait(sock: socket.socket, pid: int) -> int:
    """Forward signals to the job until it ends; its exit code (negative: a signal)."""
    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    # The job reports its exit code from its last exit handler; the server
    # reports it again once the process is gone (its files, locks and GPUs
    # released): wait for that, or for the connection to close (no holder left)
    code = None
    while True:
        message = messages.receive_reply(sock)
        if message is None:
            return 1 if code is None else code  # no word at all: the job was killed
        if code is None:
            code = message.exit if isinstance(message, messages.Exited) else 1
        if isinstance(message, messages.Exited) and message.reaped:
            return code


def main(argv: list[str]) -> None:
    threads = 0
    if argv[:1] == ["--threads"]:
        threads, argv = int(argv[1]), argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    script = argv[0]
    try:
        sock, pid = connect(script, threads)
    except (Unavailable, OSError, ValueError) as why:
        sys.stderr.write(f"xpm-train: normal start (warm start not used: {why})\n")
        sys.stderr.flush()
        os.execv(script, [script, *argv[1:]])
    code = wait(sock, pid)
    if code < 0:  # die of the job's signal, as the job did
        if -code != signal.SIGKILL:  # SIGKILL's action cannot be set (nor caught: no need)
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
