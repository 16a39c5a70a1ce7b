"""A forked job starts as fresh as a cold one: what a new interpreter would
draw or read anew (RNG seeds, temporary folder, time zone, process
attributes, variables read at import) it gets anew, not the server's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from test_forkserver import NORMAL, client, files_of, job_script, ready, stop_server, warm_env  # noqa: F401

from xpm_train.warm import forkclient

COLD = {forkclient.ENABLE_ENV: "0"}

RANDOM = """
    import json, random, numpy, torch
    {seed}
    print(json.dumps({{"initial_seed": torch.initial_seed(), "torch": torch.rand(1).item(),
                      "random": random.random(), "numpy": numpy.random.rand(),
                      "cuda_initialised": torch.cuda.is_initialized()}}))
"""

PROBE = """
    import json, locale, resource, signal, tempfile, threading, time
    fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{fd}"))
    catchable = [s for s in signal.Signals if s not in (signal.SIGKILL, signal.SIGSTOP)]
    umask = os.umask(0)
    os.umask(umask)
    print(json.dumps({
        "inheritable_fds": [fd for fd in fds if os.get_inheritable(fd)],
        "other_fds": [os.readlink(f"/proc/self/fd/{fd}").split(":")[0] for fd in fds if not os.get_inheritable(fd)],
        "ignored": [s.name for s in catchable if signal.getsignal(s) == signal.SIG_IGN],
        "handled": [s.name for s in catchable if callable(signal.getsignal(s))],
        "blocked": sorted(s.name for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
        "umask": umask, "affinity": sorted(os.sched_getaffinity(0)), "nice": os.nice(0),
        "limits": [resource.getrlimit(getattr(resource, name)) for name in dir(resource) if name.startswith("RLIMIT_")],
        "cwd": os.getcwd(), "tempdir": tempfile.gettempdir(), "tzname": list(time.tzname),
        "encoding": locale.getpreferredencoding(False),
        "threads": [t.name for t in threading.enumerate() if t.name != "xpm-train-client-watch"],
        "env": {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")},
    }))
"""


def run(script, env, **kwargs) -> tuple[dict, str]:
    process = client(script, env, **kwargs)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return json.loads(out), err


def test_forked_jobs_draw_fresh_random_numbers_and_a_seeded_job_repeats(warm_env, tmp_path):
    """Unseeded jobs: torch, random and numpy draw other numbers in each job,
    as in cold processes (they were byte-identical in every forked job: a
    variance over repeated runs collapsed to 0); a job that seeds itself draws
    what a cold job seeded so draws."""
    ready(warm_env)
    script = job_script(tmp_path, RANDOM.format(seed=""))
    warm = [run(script, warm_env) for _ in range(3)]
    assert all(NORMAL not in err for _, err in warm)
    cold, err = run(script, {**warm_env, **COLD})
    assert NORMAL in err
    for name in ("initial_seed", "torch", "random", "numpy"):
        values = [seen[name] for seen, _ in warm] + [cold[name]]
        assert len(set(values)) == 4, f"{name}: {values}"
        assert {type(value) for value in values} == {type(cold[name])}
    assert all(0 <= seen["initial_seed"] < 2**64 and not seen["cuda_initialised"] for seen, _ in warm)

    seeded = job_script(tmp_path, RANDOM.format(
        seed="torch.manual_seed(3); random.seed(3); numpy.random.seed(3)"))
    runs = [run(seeded, warm_env)[0] for _ in range(2)] + [run(seeded, {**warm_env, **COLD})[0]]
    assert runs[0] == runs[1] == runs[2] and runs[0]["initial_seed"] == 3


def test_a_forked_job_gets_what_a_cold_one_gets(warm_env, tmp_path):
    """File descriptors (only stdio inheritable, plus its own connection to
    the client), signal dispositions and mask, umask, CPU affinity, niceness,
    resource limits, folder, temporary folder, time zone, locale encoding,
    threads (but the connection's watcher) and environment: those of a cold
    start of the same script by the same client."""
    ready(warm_env)
    script = job_script(tmp_path, PROBE)
    warm, err = run(script, warm_env)
    assert NORMAL not in err
    cold, err = run(script, {**warm_env, **COLD})
    assert NORMAL in err
    cold["env"].pop(forkclient.ENABLE_ENV)
    assert warm["other_fds"] == ["socket"] and cold["other_fds"] == []
    warm.pop("other_fds"), cold.pop("other_fds")
    assert warm == cold


def test_a_client_that_ignores_sigint_gets_a_job_that_ignores_it(warm_env, tmp_path):
    """A plan started with `&` from a script runs with SIGINT ignored: a cold
    job inherits that (Python installs its KeyboardInterrupt handler only when
    SIGINT is not ignored), and so must a forked one (it was handled: seen in
    the whole suite, after a test left SIGINT ignored in pytest's process)."""
    import signal

    env = {**warm_env, forkclient.DIR_ENV: str(tmp_path / "servers")}  # a server started by such a client
    script = job_script(tmp_path, PROBE)
    ignore = {"preexec_fn": lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)}
    warm, err = run(script, env, **ignore)
    assert NORMAL not in err, err
    cold, err = run(script, {**env, **COLD}, **ignore)
    assert NORMAL in err
    assert "SIGINT" in cold["ignored"] and "SIGINT" not in cold["handled"]
    assert (warm["ignored"], warm["handled"]) == (cold["ignored"], cold["handled"])
    stop_server(files_of(env))


def test_a_forked_job_reads_its_own_tmpdir_and_time_zone(warm_env, tmp_path):
    """The server's cached temporary folder (``tempfile.tempdir``) and time
    zone (``time.tzname``) are read again from the job's environment."""
    ready(warm_env)
    (tmp_path / "tmp").mkdir()
    script = job_script(tmp_path, """
        import json, tempfile, time
        print(json.dumps([tempfile.gettempdir(), list(time.tzname), time.timezone]))
    """)
    env = {**warm_env, "TMPDIR": str(tmp_path / "tmp"), "TZ": "EST+05EDT,M3.2.0,M11.1.0"}
    warm, err = run(script, env)
    assert NORMAL not in err
    assert warm == [str(tmp_path / "tmp"), ["EST", "EDT"], 5 * 3600]


@pytest.mark.parametrize("name, value", [
    ("MPLBACKEND", "svg"), ("LC_ALL", "C"), ("LANG", "C"), ("XPM_LOCK_TIMEOUT", "5"),
    ("NPY_PROMOTION_STATE", "weak"), ("HOME", "/elsewhere"), ("XDG_CONFIG_HOME", "/elsewhere"),
    ("XPM_POLL_INTERVAL_MAX", "5"), ("XPM_TRAIN_FORWARDER_IDLE_S", "5"),
])
def test_variables_read_at_import_by_the_server_key_it(name, value):
    """Variables the preloaded modules read when imported (matplotlib's
    backend and config folder, the locale, experimaestro's timeouts, numpy):
    a job with other values gets another server, started with them."""
    base = {k: v for k, v in os.environ.items() if k != name}
    assert forkclient.server_key({**base, name: value}) != forkclient.server_key(base)
    for other in ("FOO", "XPM_TRAIN_LAUNCHERS", "XPM_TRAIN_TOKENS_DIR"):  # read when used: one server
        assert forkclient.server_key({**base, other: "x"}) == forkclient.server_key(base)


def test_a_job_of_another_umask_or_affinity_gets_a_server_of_its_own(warm_env, tmp_path):
    """What a process inherits across exec besides its environment (umask,
    CPU affinity, resource limits, signal mask, cgroup...) is the client's in
    a cold job: a client with other values is served by a server that has them."""
    ready(warm_env)
    script = job_script(tmp_path, """
        open("made", "w").close()
        print(oct(os.stat("made").st_mode & 0o777), sorted(os.sched_getaffinity(0)))
    """)
    cpu = min(os.sched_getaffinity(0))

    def restricted():
        os.umask(0o077)
        os.sched_setaffinity(0, {cpu})

    process = client(script, warm_env, preexec_fn=restricted)
    out, err = process.communicate(timeout=300)
    try:
        assert process.returncode == 0, err
        assert out == f"0o600 [{cpu}]\n"
    finally:
        code = f"import os; os.umask(0o077); os.sched_setaffinity(0, {{{cpu}}}); " \
               "from xpm_train.warm import forkclient as f; print(f.server_key())"
        key = subprocess.run([sys.executable, "-c", code], env=warm_env, capture_output=True,
                             text=True, check=True).stdout.strip()
        assert key != forkclient.server_key(warm_env)
        stop_server(forkclient.paths(key, warm_env))
