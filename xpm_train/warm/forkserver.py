"""The warm start: a per-user fork server that has imported torch, once.

``python -m xpm_train.warm.forkserver KEY`` (started on demand by
:mod:`.forkclient`, never by hand) imports torch, ``torch._dynamo`` (which
every ``torch.optim`` optimizer pulls in), experimaestro's job runner and
xpm_train's tasks, runs one optimizer step on a throw-away model (torch's lazy
imports) and then waits on a Unix socket. For each job it forks one process
that runs the job script as ``python JOB_SCRIPT`` would, with the client's
stdin/stdout/stderr, environment, working folder, ``sys.argv`` and
``sys.path[0]``; the job's thread count is applied (``torch.set_num_threads``)
before the script runs, its GPUs are pinned by the script itself (CUDA is
never initialised in the server: ``CUDA_VISIBLE_DEVICES`` still applies).

What keeps a forked job equivalent to a cold one:

* the server never starts a thread or a thread pool (it runs with one
  OpenMP/MKL/OpenBLAS thread and checks that it has a single thread before
  every fork) and never initialises CUDA; the child seeds torch's, Python's
  and numpy's generators from the OS, as a cold process does, and reads
  ``TMPDIR`` and ``TZ`` again (:func:`refresh`);
* what the job cannot reset (variables read when torch, matplotlib,
  experimaestro... are imported, the locale, umask, signal mask, CPU
  affinity, limits, cgroup) is part of the server's key
  (:func:`.forkclient.server_key`): a job of other values gets its own server;
* it never imports the user's plan modules: a job imports them after the
  fork, from disk;
* **stale code**: at start the server records the modification time and size
  of every file it has imported (about 2,500: xpm_train, experimaestro,
  torch...); before each fork it stats them again (a few ms). Any change (an
  edited xpm_train module, a ``pip install``) and it refuses the job (the
  client starts a fresh server and execs the job normally), stops listening
  and exits once its running jobs have ended.

Lifetime: one server per key (:func:`.forkclient.server_key`: interpreter,
package, start-up variables) holds ``KEY.lock`` while it listens; it exits
after ``XPM_TRAIN_WARM_IDLE_S`` seconds (default 600) without a job. A
socket or pid file left by a crashed server (lock not held) is replaced by
the next server. The death of the server kills no job: each forked job holds
its own end of the client's connection and reports its exit code there.
"""

from __future__ import annotations

import atexit
import logging
import os
import selectors
import signal
import socket
import sys
import time

from ..atomic import atomic_write_text
from . import forkclient
from .messages import Exited, Malformed, Refused, Request, Started, read_frame, send

logger = logging.getLogger("xpm_train.warm.forkserver")

SIGINT_AT_START = signal.getsignal(signal.SIGINT)
"""SIGINT's disposition when the server started: ignored when its client's was
(the server's key covers ignored signals), which a cold job would inherit"""

PRELOAD = ("torch", "torch._dynamo", "torch.optim", "experimaestro.run", "xpm_train.learn",
           "xpm_train.evaluate", "xpm_train.tracking.mlflow_sink", "optuna", "xpm_train.tune.trial",
           "xpm_train.tune.task", "matplotlib")
"""Modules imported once by the server (never the user's plan modules): what
Learn and Evaluate jobs import, and what a study's trials (optuna, to report
to the study) and its Tune job (optuna, matplotlib) add"""
IDLE_ENV = "XPM_TRAIN_WARM_IDLE_S"
DEFAULT_IDLE_S = 600.0


# --- In the server


def preload() -> None:
    """Import what every job imports, and warm torch's lazy imports, without
    leaving a thread, a CUDA context or a used RNG behind."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    import torch

    state = torch.random.get_rng_state()
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.zeros(1, 2)).sum().backward()
    optimizer.step()
    torch.random.set_rng_state(state)


def fingerprint() -> dict[str, tuple[int, int]]:
    """``{file: (mtime ns, size)}`` of every module file imported so far."""
    found = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and os.path.isabs(path):
            try:
                info = os.stat(path)
            except OSError:
                continue
            found[path] = (info.st_mtime_ns, info.st_size)
    return found


def changed(recorded: dict[str, tuple[int, int]]) -> str | None:
    """The first imported file that changed since ``recorded`` (None: none)."""
    for path, (mtime, size) in recorded.items():
        try:
            info = os.stat(path)
        except OSError:
            return path
        if (info.st_mtime_ns, info.st_size) != (mtime, size):
            return path
    return None


def fork_safety() -> str | None:
    """Why forking now would give a job a broken process (None: safe)."""
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        return f"the server has {threads} threads"
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return "CUDA is initialised in the server"
    return None


class Server:
    """The accept loop: check the peer, fork the job, report its exit."""

    def __init__(self, key: str, files: dict[str, str], idle_s: float, allowed_uid: int | None = None):
        self.key = key
        self.files = files
        self.idle_s = idle_s
        self.allowed_uid = os.getuid() if allowed_uid is None else allowed_uid
        self.server_pid = os.getpid()
        self.jobs: dict[int, socket.socket] = {}
        """pid -> connection of each running job"""
        self.recorded = fingerprint()
        self.listener: socket.socket | None = None
        self.lock_fd: int | None = None
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)

    def listen(self, lock_fd: int) -> None:
        """Replace a stale socket and pid file, then listen."""
        self.lock_fd = lock_fd
        try:
            os.unlink(self.files["sock"])
        except FileNotFoundError:
            pass
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.files["sock"])
        os.chmod(self.files["sock"], 0o600)
        self.listener.listen(64)
        atomic_write_text(self.files["pid"], f"{os.getpid()}\n")
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "child")
        signal.signal(signal.SIGCHLD, lambda *_: self._wake())
        signal.signal(signal.SIGTERM, lambda *_: self._wake(b"t"))
        logger.info("warm server %s ready (pid %d, %d files watched)", self.key, os.getpid(),
                    len(self.recorded))

    def _wake(self, byte: bytes = b"c") -> None:
        try:
            os.write(self.wake_w, byte)
        except BlockingIOError:
            pass

    def stop_listening(self) -> None:
        """Let the next server take over (socket removed, lock released)."""
        if self.listener is None:
            return
        self.selector.unregister(self.listener)
        self.listener.close()
        self.listener = None
        for name in ("sock", "pid"):
            try:
                os.unlink(self.files[name])
            except FileNotFoundError:
                pass
        os.close(self.lock_fd)

    def serve(self) -> tuple[Request, socket.socket] | None:
        """Run until idle or stopped (returns None), or, in a forked job,
        return its request and its connection to the client (the caller runs it)."""
        last_activity = time.monotonic()
        while self.listener is not None or self.jobs:
            timeout = None
            if self.listener is not None and not self.jobs:
                timeout = max(0.0, last_activity + self.idle_s - time.monotonic())
                if timeout == 0.0:
                    logger.info("idle for %g s: exiting", self.idle_s)
                    self.stop_listening()
                    break
            for selected, _ in self.selector.select(timeout):
                what = selected.data
                if what == "accept":
                    last_activity = time.monotonic()
                    job = self._accept()
                    if job is not None:
                        return job
                elif what == "child":
                    if b"t" in os.read(self.wake_r, 4096):
                        self.stop_listening()
                    self._reap()
                else:  # a client's connection closed (or sent more): it died
                    self._client_gone(what)
            last_activity = time.monotonic() if self.jobs else last_activity
        return None

    def _accept(self) -> tuple[Request, socket.socket] | None:
        conn, _ = self.listener.accept()
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct_size())
        peer_pid, peer_uid, _ = unpack_creds(creds)
        if peer_uid != self.allowed_uid:
            logger.warning("refused a connection from uid %d (pid %d)", peer_uid, peer_pid)
            conn.close()
            return None
        try:
            conn.settimeout(10)
            data, fds = read_frame(conn, with_fds=3)
            conn.settimeout(None)
        except (OSError, ValueError) as error:
            logger.warning("bad request from pid %d: %s", peer_pid, error)
            conn.close()
            return None
        if data is None:  # connected and left (a probe)
            conn.close()
            return None
        try:
            request = self._check(data, fds)
            if isinstance(request, Refused):
                logger.warning("refused a job of pid %d: %s", peer_pid, request.refused)
                try:
                    send(conn, request)
                except OSError:
                    pass
                conn.close()
                if request.stale:
                    self.stop_listening()
                return None
            for fd in fds[3:]:
                os.close(fd)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                self._become_job(conn, fds[:3])
                return request, conn
            self.jobs[pid] = conn
            self.selector.register(conn, selectors.EVENT_READ, pid)
            try:
                send(conn, Started(pid))
            except OSError:
                pass  # the client is gone: its job sees it too and ends
            logger.info("job %s: pid %d", request.script, pid)
            return None
        finally:
            if os.getpid() == self.server_pid:  # the job closed its copies itself
                for fd in fds:
                    try:
                        os.close(fd)
                    except OSError:
                        pass

    def _check(self, data, fds: list[int]) -> Request | Refused:
        """The request read (``data``), or the refusal of one this server must not run."""
        try:
            request = Request.from_wire(data)
        except Malformed as error:
            return Refused(str(error))
        if request.key != self.key:
            return Refused("another server's key")
        if len(fds) < 3:
            return Refused("incomplete request")
        if forkclient.interpreter_of(request.script) != sys.executable:
            return Refused(f"the job's interpreter is not {sys.executable}")
        stale = changed(self.recorded)
        if stale is not None:
            return Refused(f"the warm server is stale ({stale} changed since it started)", stale=True)
        unsafe = fork_safety()
        if unsafe is not None:
            return Refused(unsafe)
        return request

    def _become_job(self, conn: socket.socket, fds: list[int]) -> None:
        """In the forked child: leave everything of the server behind."""
        os.setsid()
        for signum in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        # Python installs its KeyboardInterrupt handler at start unless SIGINT
        # was ignored (a plan started with `&` from a script): as a cold job would.
        signal.signal(signal.SIGINT, signal.SIG_IGN if SIGINT_AT_START == signal.SIG_IGN
                      else signal.default_int_handler)
        self.selector.close()
        if self.listener is not None:
            self.listener.close()
        for other in self.jobs.values():
            other.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        if self.lock_fd is not None:
            os.close(self.lock_fd)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        root = logging.getLogger()  # the job script configures logging itself
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        root.setLevel(logging.WARNING)

    def _reap(self) -> None:
        """Report the end of every child that ended (the exit code its client takes)."""
        while self.jobs:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.jobs.pop(pid, None)
            if conn is None:
                continue
            self._unwatch(conn)
            try:
                send(conn, Exited(os.waitstatus_to_exitcode(status), reaped=True))
            except OSError:
                pass
            conn.close()

    def _unwatch(self, conn: socket.socket) -> None:
        try:
            self.selector.unregister(conn)
        except (KeyError, ValueError):
            pass

    def _client_gone(self, pid: int) -> None:
        """The client of job ``pid`` died (its connection closed): kill the job
        (the job also does it itself, should this server be gone)."""
        conn = self.jobs.get(pid)
        try:
            data = conn.recv(1, socket.MSG_PEEK)
        except OSError:
            data = b""
        if data:
            conn.recv(4096)  # a client sends nothing after its request: ignore
            return
        self._unwatch(conn)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def struct_size() -> int:
    import struct

    return struct.calcsize("3i")


def unpack_creds(data: bytes) -> tuple[int, int, int]:
    import struct

    return struct.unpack("3i", data)


# --- In the forked job


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
    threads = next(filter(None, map(os.environ.get, forkclient.THREAD_VARIABLES)), "") \
        or str(reserved or len(os.sched_getaffinity(0)))
    for name in forkclient.THREAD_VARIABLES:
        os.environ.setdefault(name, threads)
    import torch

    torch.set_num_threads(int(os.environ[forkclient.THREAD_VARIABLES[0]]))


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
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


# --- Entry point


def main(argv: list[str]) -> None:
    from ..daemon import claim

    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s warm[{os.getpid()}] %(message)s")
    key = argv[0]
    if forkclient.server_key() != key:
        logger.error("this interpreter/environment is not the one of key %s: exiting", key)
        sys.exit(2)
    files = forkclient.paths(key)
    lock_fd = claim(files["lock"], 0o600)  # pid file: written once listening (Server.listen)
    if lock_fd is None:
        sys.exit(0)  # another server of this key is starting or serving
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"  # no thread pool in the server (each job sets its own)
    started = time.monotonic()
    preload()
    unsafe = fork_safety()
    if unsafe is not None:
        logger.error("cannot serve: %s", unsafe)
        sys.exit(3)
    server = Server(key, files, float(os.environ.get(IDLE_ENV) or DEFAULT_IDLE_S))
    server.listen(lock_fd)
    logger.info("preloaded in %.1f s", time.monotonic() - started)
    forked = server.serve()
    if forked is None:
        return
    leave(run_job(*forked))


if __name__ == "__main__":
    main(sys.argv[1:])
