"""``xpm-train watch`` in a real terminal (tmux): rows update, it exits when
every job has ended, and q quits; ``--once`` and its one-line errors."""

import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest
from click.testing import CliRunner

from bench.watch import epoch_lines, make_job
from xpm_train.cli import main

TMUX = shutil.which("tmux")
needs_tmux = pytest.mark.skipif(TMUX is None and os.environ.get("CI") != "true",
                                reason="tmux is not installed (CI=true makes this a failure)")


def test_once_prints_one_frame_and_bad_names_are_one_line_errors(tmp_path):
    make_job(tmp_path, 1, "running", epochs_done=2)
    result = CliRunner().invoke(main, ["watch", "--workdir", str(tmp_path), "--once"])
    assert result.exit_code == 0, result.output
    assert "running" in result.output and "2/10" in result.output and "Traceback" not in result.output
    for option, name in (("--experiment", "nope"), ("--study", "nope")):
        result = CliRunner().invoke(main, ["watch", "--workdir", str(tmp_path), option, name])
        assert result.exit_code == 1 and f"'{name}'" in result.output and "Traceback" not in result.output
        assert len([line for line in result.output.splitlines() if line.startswith("Error")]) == 1


class Pane:
    """``xpm-train watch`` running in a detached tmux session."""

    def __init__(self, workspace, width=160):
        assert TMUX is not None, "tmux is not installed: CI=true needs it (apt-get install tmux)"
        self.name = f"xpm-watch-{uuid.uuid4().hex[:8]}"
        env = f"PYTHONPATH={os.environ.get('PYTHONPATH', '')} "
        command = (f"{env}{sys.executable} -m xpm_train.cli watch --workdir {workspace} --interval 0.2; "
                   "echo WATCH-EXITED $?; sleep 30")
        subprocess.run([TMUX, "new-session", "-d", "-s", self.name, "-x", str(width), "-y", "30", command],
                       check=True)

    def text(self) -> str:
        return subprocess.run([TMUX, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True).stdout

    def wait_for(self, what: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            if what in text:
                return text
            time.sleep(0.2)
        raise AssertionError(f"'{what}' never showed in the pane:\n{self.text()}")

    def close(self):
        subprocess.run([TMUX, "kill-session", "-t", self.name], capture_output=True)


@pytest.fixture
def pane_of():
    panes = []

    def start(workspace, **options):
        panes.append(Pane(workspace, **options))
        return panes[-1]

    yield start
    for pane in panes:
        pane.close()


@needs_tmux
def test_watch_updates_a_running_job_and_exits_when_every_job_ended(tmp_path, pane_of):
    make_job(tmp_path, 0, "done")
    running = make_job(tmp_path, 1, "running", epochs_done=1)
    pane = pane_of(tmp_path)
    pane.wait_for("1/10")
    with (running / "metrics.jsonl").open("a") as fp:
        fp.write(epoch_lines(1, 0.61))
    text = pane.wait_for("2/10")
    assert "80/400" in text and "0.6100" in text and "WATCH-EXITED" not in text
    (running / "learn.pid").unlink()
    (running / "learn.done").write_text("")
    text = pane.wait_for("WATCH-EXITED 0")
    assert "every job shown has ended" in text and "2 jobs: 2 done" in text


def keys(pane, *typed):
    subprocess.run([TMUX, "send-keys", "-t", pane.name, *typed], check=True)


@needs_tmux
def test_keys_sort_filter_and_q_quits(tmp_path, pane_of):
    make_job(tmp_path, 1, "running", epochs_done=1)
    make_job(tmp_path, 2, "done")
    pane = pane_of(tmp_path)
    pane.wait_for("sort: state")
    keys(pane, "s")
    pane.wait_for("sort: best")
    keys(pane, "/", "state=done", "Enter")
    text = pane.wait_for("filter: state=done ")
    assert " done " in text and " running " not in text.split("filter:")[1]
    keys(pane, "q")
    assert "Traceback" not in pane.wait_for("WATCH-EXITED 0")


@needs_tmux
def test_a_narrow_terminal_drops_columns(tmp_path, pane_of):
    make_job(tmp_path, 1, "running", epochs_done=1)
    pane = pane_of(tmp_path, width=40)
    text = pane.wait_for("running")
    assert "gpu util" not in text and "Traceback" not in text
    keys(pane, "q")
    assert "Traceback" not in pane.wait_for("WATCH-EXITED 0")
