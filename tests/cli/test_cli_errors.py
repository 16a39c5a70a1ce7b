"""The CLI package: one ``--workdir`` option, one error handler (a user error:
its message in a line or two, exit code 1; a usage error: click's, exit code 2;
any other exception: kept with its traceback)."""

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from helpers import REPO
from xpm_train import analysis
from xpm_train.cli import main


def commands(group: click.Group, prefix: str = ""):
    for name, command in group.commands.items():
        yield f"{prefix}{name}", command
        if isinstance(command, click.Group):
            yield from commands(command, f"{prefix}{name} ")


def test_every_workdir_is_the_one_option():
    options = {name: next((p for p in command.params if p.name == "workdir"), None)
               for name, command in commands(main)}
    with_workdir = {name: option for name, option in options.items() if option is not None}
    assert set(with_workdir) == {"run", "results", "show", "export", "reproduce", "plot", "mlflow ui",
                                 "mlflow sync", "tune list", "tune show", "doctor", "watch", "gc"}
    shapes = {(o.opts[0], o.default, o.help, o.show_default) for o in with_workdir.values()}
    assert len(shapes) == 1, shapes


def test_a_user_error_is_one_short_message(tmp_path):
    result = CliRunner().invoke(main, ["show", "--workdir", str(tmp_path / "none"), "abc"])
    assert result.exit_code == 1
    first, hint = result.output.strip().splitlines()
    assert first.startswith("Error: ") and "is not an experimaestro workspace" in first
    assert "fix" in first or "pass the folder" in first
    assert hint == "(run with --debug for the traceback)"


def test_a_usage_error_is_clicks(tmp_path):
    result = CliRunner().invoke(main, ["results", "--format", "xml"])
    assert result.exit_code == 2 and "'xml' is not one of" in result.output


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    (tmp_path / "jobs").mkdir()

    def broken(*args, **kwargs):
        raise ValueError("a bug, not the user's")

    monkeypatch.setattr(analysis, "results", broken)
    result = CliRunner().invoke(main, ["results", "--workdir", str(tmp_path)])
    assert isinstance(result.exception, ValueError) and "Error:" not in result.output


def test_debug_shows_the_traceback_of_a_user_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "xpm_train.cli", "--debug", "results", "--workdir",
                             str(tmp_path / "none")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "JobNotFound" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["tune", "show", "nope"], "no study 'nope'"),
    (["results", "--where", "tag"], "--where expects tag=value"),
])
def test_user_errors_of_the_command_modules(tmp_path, args, message):
    (tmp_path / "jobs").mkdir()
    result = CliRunner().invoke(main, [*args, "--workdir", str(tmp_path)])
    assert result.exit_code == 1 and message in result.output and result.exception is not None
    assert isinstance(result.exception, SystemExit)
