"""The warm start (forkclient + forkserver), with small job scripts: what a
forked job gets (environment, folder, stdio, exit code, threads, signals),
no orphans, the server's death, stale code, bad input and security."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from xpm_train.locks import held
from xpm_train.warm import forkclient
from xpm_train.warm.messages import PROTOCOL, read_frame, write_frame

CLIENT = forkclient.__file__
NORMAL = "xpm-train: normal start"


@pytest.fixture(scope="module")
def warm_env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("warm")
    env = {**os.environ, forkclient.DIR_ENV: str(folder / "s"), "XPM_TRAIN_WARM_IDLE_S": "120"}
    env.pop(forkclient.ENABLE_ENV, None)
    yield env
    files = forkclient.paths(forkclient.server_key(env), env)
    stop_server(files)


def stop_server(files) -> None:
    try:
        pid = int(Path(files["pid"]).read_text())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass


def files_of(env):
    return forkclient.paths(forkclient.server_key(env), env)


def ready(env, timeout: float = 240) -> dict:
    """A listening server for ``env`` (started here when there is none)."""
    files = files_of(env)
    deadline = time.monotonic() + timeout
    started = False
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_UNIX) as sock:
            try:
                sock.connect(files["sock"])
                return files
            except OSError:
                pass
        if not started and not held(files["lock"]):
            forkclient.start_server(forkclient.server_key(env), files, env)
            started = True
        time.sleep(0.2)
    pytest.fail(f"no warm server: {Path(files['log']).read_text()[-2000:]}")


def job_script(folder: Path, body: str, interpreter: str = sys.executable) -> Path:
    script = folder / "job.py"
    script.write_text(f"#!{interpreter}\nimport os, sys, time, signal\n"
                      f"if __name__ == '__main__':\n{textwrap.indent(textwrap.dedent(body), '    ')}")
    script.chmod(0o755)
    return script


def client(script: Path, env, threads: int = 1, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-S", CLIENT, "--threads", str(threads), "--", str(script)],
                            env=env, cwd=script.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, **kwargs)


def wait_for(path: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text()
        time.sleep(0.02)
    pytest.fail(f"{path} never written")


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "zombie" not in status.lower()


def gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_a_forked_job_gets_its_environment_folder_stdio_threads_and_exit_code(warm_env, tmp_path):
    files = ready(warm_env)
    script = job_script(tmp_path, """
        import torch
        print(json.dumps({"pid": os.getpid(), "cwd": os.getcwd(), "argv": sys.argv, "path0": sys.path[0],
                          "foo": os.environ.get("FOO"), "threads": torch.get_num_threads(),
                          "omp": os.environ.get("OMP_NUM_THREADS"), "main": __name__,
                          "cuda": torch.cuda.is_initialized()}))
        print("to stderr", file=sys.stderr)
        sys.exit(3)
    """.replace("import torch", "import json, torch"))
    process = client(script, {**warm_env, "FOO": "bar"}, threads=2)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 3, err
    assert NORMAL not in err and "to stderr" in err
    seen = json.loads(out)
    assert seen == {"pid": seen["pid"], "cwd": str(tmp_path), "argv": [str(script)], "path0": str(tmp_path),
                    "foo": "bar", "threads": 2, "omp": "2", "main": "__main__", "cuda": False}
    assert seen["pid"] != process.pid  # forked by the server, not exec'd
    assert f"pid {seen['pid']}" in Path(files["log"]).read_text()

    # a thread count the environment sets wins over the reservation (as in the job script)
    process = client(script, {**warm_env, "OMP_NUM_THREADS": "1"}, threads=2)
    out, _ = process.communicate(timeout=120)
    assert json.loads(out)["threads"] == 1


def test_signals_are_forwarded_and_sigkill_of_the_job_leaves_no_orphan(warm_env, tmp_path):
    ready(warm_env)
    script = job_script(tmp_path, f"""
        signal.signal(signal.SIGUSR1, lambda *_: open({str(tmp_path / 'usr1')!r}, "w").write("got\\n"))
        open({str(tmp_path / 'pid')!r}, "w").write(f"{{os.getpid()}}\\n")
        while True:
            time.sleep(0.05)
    """)
    process = client(script, warm_env)
    pid = int(wait_for(tmp_path / "pid"))
    assert pid != process.pid
    process.send_signal(signal.SIGUSR1)
    assert wait_for(tmp_path / "usr1") == "got\n"
    process.send_signal(signal.SIGTERM)  # no handler in the job: it dies of it, and so does the client
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGTERM and gone(pid)

    (tmp_path / "pid").unlink()
    process = client(script, warm_env)
    pid = int(wait_for(tmp_path / "pid"))
    process.kill()  # SIGKILL of what experimaestro started
    process.wait()
    assert gone(pid), "the forked job outlived its client"


def test_a_forked_job_killed_by_sigkill_is_reported_killed(warm_env, tmp_path):
    """The OOM killer (or a user) SIGKILLs the forked job itself: the client dies
    of SIGKILL too, as experimaestro would see a cold job die (found by the study
    chaos test: the client's ``signal.signal(SIGKILL, ...)`` raised, and the
    plan reported the job failed with "OSError: [Errno 22] Invalid argument")."""
    ready(warm_env)
    script = job_script(tmp_path, f"""
        open({str(tmp_path / 'pid')!r}, "w").write(f"{{os.getpid()}}\\n")
        while True:
            time.sleep(0.05)
    """)
    process = client(script, warm_env)
    pid = int(wait_for(tmp_path / "pid"))
    os.kill(pid, signal.SIGKILL)
    _, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, err
    assert "Traceback" not in err, err


def test_the_servers_death_kills_no_job_and_leaves_none_hanging(warm_env, tmp_path):
    files = ready(warm_env)
    server = int(Path(files["pid"]).read_text())
    script = job_script(tmp_path, f"""
        open({str(tmp_path / 'pid')!r}, "w").write(f"{{os.getpid()}}\\n")
        while not os.path.exists({str(tmp_path / 'go')!r}):
            time.sleep(0.05)
        print("finished")
        sys.exit(7)
    """)
    process = client(script, warm_env)
    pid = int(wait_for(tmp_path / "pid"))
    os.kill(server, signal.SIGKILL)
    assert gone(server)
    assert alive(pid)
    (tmp_path / "go").write_text("")
    out, err = process.communicate(timeout=60)
    assert (process.returncode, out) == (7, "finished\n"), err

    # the stale socket and pid file are replaced by the next server, which
    # the next job starts and waits for (a warm start, not a normal one)
    assert Path(files["sock"]).exists() and Path(files["pid"]).read_text() == f"{server}\n"
    (tmp_path / "pid").unlink()
    process = client(script, warm_env)
    pid = int(wait_for(tmp_path / "pid", timeout=240))
    (tmp_path / "go").write_text("")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 7 and NORMAL not in err, err
    assert "waiting for the warm server to start (started one" in err
    assert int(Path(files["pid"]).read_text()) not in (server, pid)


def test_a_job_waits_for_the_server_only_as_long_as_asked(warm_env, tmp_path):
    env = {**warm_env, forkclient.DIR_ENV: str(tmp_path / "s"), forkclient.WAIT_ENV: "0"}
    script = job_script(tmp_path, "print('ran')")
    process = client(script, env)
    out, err = process.communicate(timeout=120)
    assert (process.returncode, out) == (0, "ran\n")
    assert err.count(NORMAL) == 1 and "not listening after 0 s" in err
    ready(env)  # the server it started comes up for the next jobs
    stop_server(files_of(env))


def test_stale_server_after_a_code_change_refuses_and_is_replaced(warm_env, tmp_path):
    files = ready(warm_env)
    server = int(Path(files["pid"]).read_text())
    script = job_script(tmp_path, "print('ran')")
    module = Path(forkclient.__file__)  # imported by every server
    before = module.stat()
    os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))  # "edited"
    try:
        process = client(script, warm_env)
        out, err = process.communicate(timeout=120)
    finally:
        os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (process.returncode, out) == (0, "ran\n")
    assert err.count(NORMAL) == 1 and "stale" in err and "forkclient.py" in err
    assert gone(server), "the stale server did not exit"
    ready(warm_env)
    assert int(Path(files["pid"]).read_text()) != server


def test_another_interpreter_or_warm_start_off_is_a_normal_start(warm_env, tmp_path):
    ready(warm_env)
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\necho \"$$ $FOO\"\nexit 5\n")
    script.chmod(0o755)
    process = client(script, {**warm_env, "FOO": "x"})
    out, err = process.communicate(timeout=60)
    assert process.returncode == 5 and out == f"{process.pid} x\n"  # exec'd: same pid
    assert err.count(NORMAL) == 1 and "interpreter /bin/sh" in err

    script = job_script(tmp_path, "print(os.getpid())")
    process = client(script, {**warm_env, forkclient.ENABLE_ENV: "0"})
    out, err = process.communicate(timeout=120)
    assert int(out) == process.pid and NORMAL in err
    assert forkclient.warm_command(1) != [] and "-S" in forkclient.warm_command(1)


def test_forged_or_foreign_requests_run_nothing(warm_env, tmp_path):
    files = ready(warm_env)
    marker = tmp_path / "ran"
    script = job_script(tmp_path, f"open({str(marker)!r}, 'w').write('x')")
    request = {"protocol": PROTOCOL, "key": forkclient.server_key(warm_env),
               "script": str(script), "cwd": str(tmp_path), "env": warm_env, "threads": 1}
    for forged, fds in (({**request, "protocol": 99}, [0, 1, 2]), ({**request, "key": "0" * 16}, [0, 1, 2]),
                        (request, []), ({**request, "threads": "1; rm -rf /"}, [0, 1, 2])):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(files["sock"])
            write_frame(sock, forged, fds)
            answer, _ = read_frame(sock)
        assert "refused" in answer and "pid" not in answer
    assert not marker.exists()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
def test_another_user_cannot_reach_the_server(warm_env, tmp_path):
    files = ready(warm_env)
    marker = tmp_path / "ran"
    script = job_script(tmp_path, f"open({str(marker)!r}, 'w').write('x')")
    pid = os.fork()
    if pid == 0:  # as nobody
        code = 3
        try:
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(files["sock"])
                write_frame(sock, {"protocol": PROTOCOL, "script": str(script)}, [0, 1, 2])
            code = 1
        except PermissionError:
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "nobody reached the socket"
    assert not marker.exists()


def test_peer_credentials_of_another_uid_are_refused(warm_env, tmp_path):
    """A server that only accepts uid+1 (what a connection of another user looks
    like to it) closes the connection without reading it: nothing runs."""
    env = {**warm_env, forkclient.DIR_ENV: str(tmp_path / "s")}
    files = forkclient.paths("k" * 16, env)
    code = textwrap.dedent(f"""
        import os
        from xpm_train.warm import forkserver
        files = {files!r}
        server = forkserver.Server("k" * 16, files, 30.0, allowed_uid=os.getuid() + 1)
        server.listen(os.open(files["lock"], os.O_RDWR | os.O_CREAT))
        server.serve()
    """)
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not Path(files["pid"]).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        marker = tmp_path / "ran"
        script = job_script(tmp_path, f"open({str(marker)!r}, 'w').write('x')")
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(files["sock"])
            write_frame(sock, {"protocol": PROTOCOL, "key": "k" * 16, "script": str(script),
                                   "cwd": str(tmp_path), "env": {}, "threads": 1}, [0, 1, 2])
            answer, _ = read_frame(sock)
        assert answer is None and not marker.exists()
        time.sleep(0.5)
        assert f"refused a connection from uid {os.getuid()}" in (tmp_path / "server.log").read_text()
    finally:
        server.kill()
        server.wait()
