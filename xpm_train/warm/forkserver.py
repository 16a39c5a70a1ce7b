"""The warm start's server: a per-user fork server that has imported torch, once.

``python -m xpm_train.warm.forkserver KEY`` (started on demand by
:mod:`.forkclient`, never by hand) imports torch, ``torch._dynamo`` (which
every ``torch.optim`` optimizer pulls in), experimaestro's job runner and
xpm_train's tasks and runs one optimizer step on a throw-away model
(:func:`.freshness.preload`), then waits on a Unix socket. For each job it
checks the peer (its uid), the request and its own freshness (stale code,
fork safety: :mod:`.freshness`), forks one process and reports that job's
exit. The forked process runs the job script as ``python JOB_SCRIPT`` would
(:mod:`.child`: the client's stdin/stdout/stderr, environment, working
folder, ``sys.argv`` and ``sys.path[0]``, the job's thread count, fresh
random seeds).

What keeps a forked job equivalent to a cold one, on the server's side:

* the server never starts a thread or a thread pool (it runs with one
  OpenMP/MKL/OpenBLAS thread and checks that it has a single thread before
  every fork) and never initialises CUDA;
* what the job cannot reset (variables read when torch, matplotlib,
  experimaestro... are imported, the locale, umask, signal mask, CPU
  affinity, limits, cgroup) is part of the server's key
  (:func:`.forkclient.server_key`): a job of other values gets its own server;
* it never imports the user's plan modules: a job imports them after the
  fork, from disk;
* **stale code** (:mod:`.freshness`): any change to a file it imported (an
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

import logging
import os
import selectors
import signal
import socket
import sys
import time

from ..atomic import atomic_write_text
from . import forkclient
from .child import become_job, leave, run_job
from .freshness import changed, fingerprint, fork_safety, preload
from .messages import Exited, Malformed, Refused, Request, Started, read_frame, send

logger = logging.getLogger("xpm_train.warm.forkserver")

IDLE_ENV = "XPM_TRAIN_WARM_IDLE_S"
DEFAULT_IDLE_S = 600.0


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
        """In the forked child: leave everything of the server behind
        (:func:`.child.become_job`)."""
        become_job(fds, self._close_in_job)

    def _close_in_job(self) -> None:
        """Close, in the forked job, the server's copies of what it holds."""
        self.selector.close()
        if self.listener is not None:
            self.listener.close()
        for other in self.jobs.values():
            other.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        if self.lock_fd is not None:
            os.close(self.lock_fd)

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
    """The size of ``SO_PEERCRED``'s answer (``struct ucred``: pid, uid, gid)."""
    import struct

    return struct.calcsize("3i")


def unpack_creds(data: bytes) -> tuple[int, int, int]:
    """``SO_PEERCRED``'s answer: the peer's (pid, uid, gid)."""
    import struct

    return struct.unpack("3i", data)


# --- Entry point


def main(argv: list[str]) -> None:
    """``python -m xpm_train.warm.forkserver KEY``: serve jobs of ``KEY``
    until idle or stopped; in a forked job, run it and exit with its code."""
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
