"""The forked job's side of the warm start: making a process forked from the
fork server (:mod:`.forkserver`) behave as the cold interpreter
``python JOB_SCRIPT`` would, then running the job script and reporting its
exit code to the client.

What keeps a forked job equivalent to a cold one, on this side of the fork:

* :func:`become_job`: a session of its own, signal dispositions as a cold
  interpreter's (Python's SIGINT handler unless SIGINT was ignored when the
  server started), the client's stdin/stdout/stderr and nothing of the
  server's open files (the server closes its own, called back), the job
  script's own logging configuration;
* :func:`run_job`: the client's working folder, environment, ``sys.argv``
  and ``sys.path[0]``; the job's thread count (:func:`apply_threads`, as
  ``OMP_NUM_THREADS`` would before torch is imported: the server runs with
  one thread and starts no pool); torch's, Python's and numpy's generators
  seeded from the OS and ``TMPDIR`` and ``TZ`` read again (:func:`refresh`);
  its GPUs are pinned by the script itself (the server never initialises
  CUDA: ``CUDA_VISIBLE_DEVICES`` still applies);
* :func:`leave`: the job ends as multiprocessing's forked children do
  (threads joined, exit handlers run, ``os._exit``).

What the job cannot reset (variables read when torch, matplotlib,
experimaestro... are imported, the locale, umask, signal mask, CPU affinity,
limits, cgroup) is part of the server's key
(:func:`.forkclient.server_key`): a job of other values gets its own server.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable

from .forkclient import THREAD_VARIABLES
from .messages import Exited, Request, send

SIGINT_AT_START = signal.getsignal(signal.SIGINT)
"""SIGINT's disposition when the server started: ignored when its client's was
(the server's key covers ignored signals), which a cold job would inherit"""


def become_job(fds: list[int], leave_server: Callable[[], None]) -> None:
    """In the forked child: leave everything of the server behind
    (``leave_server`` closes what the server holds) and take the client's
    stdin/stdout/stderr (``fds``)."""
    os.setsid()
    for signum in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    # Python installs its KeyboardInterrupt handler at start unless SIGINT
    # was ignored (a plan started with `&` from a script): as a cold job would.
    signal.signal(signal.SIGINT, signal.SIG_IGN if SIGINT_AT_START == signal.SIG_IGN
                  else signal.default_int_handler)
    leave_server()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    root = logging.getLogger()  # the job script configures logging itself
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)


def run_job(request: Request, conn: socket.socket) -> int:
    """Run the job script as ``python SCRIPT`` would, its exit code reported
    on ``conn``; its exit code."""
    import runpy
    import threading
    import traceback

    os.chdir(request.cwd)
    os.environ.clear()
    os.environ.update(request.env)
    apply_threads(request.threads)
    refresh()
    script = request.script
    sys.argv = [script]
    sys.path[0] = os.path.dirname(script)
    outcome = {"code": 1}

    def client_gone():  # SIGKILL of the client kills the job: no orphan
        try:
            while conn.recv(4096):
                pass
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGKILL)

    def report():  # last of the exit handlers (registered first)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        try:
            send(conn, Exited(outcome["code"]))
        except OSError:
            pass

    atexit.register(report)
    threading.Thread(target=client_gone, name="xpm-train-client-watch", daemon=True).start()
    try:
        runpy.run_path(script, run_name="__main__")
        outcome["code"] = 0
    except SystemExit as stop:
        outcome["code"] = exit_code(stop.code)
    except BaseException:  # noqa: BLE001  (as the interpreter would: traceback, code 1)
        traceback.print_exc()
        outcome["code"] = 1
    return outcome["code"]


def leave(code: int) -> None:
    """End the forked job as multiprocessing ends its forked children: wait for
    its threads, run its exit handlers (logging, experimaestro, the exit code
    for the client), then ``os._exit`` without tearing the interpreter down
    (which, in a copy-on-write child of a process holding torch, copies most
    of its memory and took seconds on a loaded host)."""
    import threading

    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def apply_threads(reserved: int) -> None:
    """The job's thread count, as its script would set it before importing torch."""
    threads = next(filter(None, map(os.environ.get, THREAD_VARIABLES)), "") \
        or str(reserved or len(os.sched_getaffinity(0)))
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, threads)
    import torch

    torch.set_num_threads(int(os.environ[THREAD_VARIABLES[0]]))


def refresh() -> None:
    """Draw and read anew what a cold interpreter draws or reads at start and
    the forked job would otherwise copy from the server: the seeds of torch's
    CPU generator, of Python's ``random`` and of numpy's global generator
    (from the OS, as a cold process seeds them: unseeded jobs draw other
    numbers), the temporary folder (``TMPDIR``) and the time zone (``TZ``).
    CUDA's generators are seeded from the OS when the job first uses CUDA (the
    server never initialises it). A job that seeds its generators itself draws
    what a cold job so seeded draws."""
    import random
    import tempfile

    import torch

    torch.default_generator.seed()  # not torch.seed(): it would give CUDA the same seed
    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()
    tempfile.tempdir = None
    time.tzset()


def exit_code(code) -> int:
    """The exit code of ``SystemExit(code)``, as the interpreter gives it
    (a message printed to stderr: 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
