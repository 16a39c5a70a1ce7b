"""Which launchers file is used: env var, project (up to the git root), user, default."""

import logging
from types import SimpleNamespace

import pytest

from xpm_train.launchers import load_launchers, lookup
from xpm_train.launchers.lookup import BUILTIN, locate

ONE = "launchers:\n  - {{name: {name}, type: local, cpu: {{cores: 1, memory: 1G}}, gpus: []}}\n"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty user config folder and a project tree: repo/.git, repo/sub/dir."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    (tmp_path / "repo" / "sub" / "dir").mkdir(parents=True)
    return tmp_path


def write(path, name):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ONE.format(name=name))
    return path


def names(config):
    return [launcher.name for launcher in config.launchers]


def test_project_file_found_from_a_subfolder_up_to_the_git_root(home, monkeypatch):
    write(home / "repo" / "launchers.yaml", "project")
    write(home / "launchers.yaml", "above-git-root")
    monkeypatch.chdir(home / "repo" / "sub" / "dir")
    assert names(load_launchers()) == ["project"]
    write(home / "repo" / "sub" / "launchers.yaml", "closer")
    assert names(load_launchers()) == ["closer"]


def test_not_searched_above_the_git_root(home, monkeypatch):
    write(home / "launchers.yaml", "above-git-root")
    write(home / "config" / "xpm-train" / "launchers.yaml", "user")
    monkeypatch.chdir(home / "repo" / "sub")
    assert names(load_launchers()) == ["user"]


def test_outside_git_only_the_start_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    write(tmp_path / "launchers.yaml", "parent")
    (tmp_path / "child").mkdir()
    monkeypatch.chdir(tmp_path / "child")
    assert locate(tmp_path / "child") is None  # the parent's file is not looked at
    assert names(load_launchers(tmp_path)) == ["parent"]


def test_environment_variable_wins(home, monkeypatch):
    write(home / "repo" / "launchers.yaml", "project")
    chosen = write(home / "elsewhere.yaml", "from-env")
    monkeypatch.setenv("XPM_TRAIN_LAUNCHERS", str(chosen))
    monkeypatch.chdir(home / "repo")
    assert names(load_launchers()) == ["from-env"]
    monkeypatch.setenv("XPM_TRAIN_LAUNCHERS", str(home / "missing.yaml"))
    with pytest.raises(FileNotFoundError, match="XPM_TRAIN_LAUNCHERS"):
        load_launchers()


def test_builtin_default_says_so(home, monkeypatch, caplog):
    monkeypatch.setenv("XPM_TRAIN_FAKE_GPUS", "2x24G")
    monkeypatch.chdir(home / "repo")
    with caplog.at_level(logging.INFO, logger="xpm_train.launchers"):
        config = load_launchers()
    assert config.source == BUILTIN and names(config) == ["local"]
    assert len(config.launchers[0].gpus) == 2
    assert "No launchers.yaml found" in caplog.text and "built-in default" in caplog.text


@pytest.fixture
def running_plan(home, monkeypatch):
    """An experiment running a plan of ``home/plans/p`` (outside the project
    tree, run from ``home/repo/sub``) in the workspace ``home/ws``; nothing
    logged yet by this process."""
    plan, workspace = home / "plans" / "p", home / "ws"
    plan.mkdir(parents=True)
    workspace.mkdir()
    xp = SimpleNamespace(_project_paths=[plan], workspace=SimpleNamespace(path=workspace))
    monkeypatch.setattr(lookup, "current_experiment", lambda: xp)
    monkeypatch.setattr(lookup, "_logged", set())
    monkeypatch.chdir(home / "repo" / "sub")
    return plan, workspace


def test_a_plan_finds_the_launchers_of_its_folder_first(home, running_plan):
    """In a running experiment: the plan's folder (and parents up to its git
    root), then the current folder's project, then the workspace's."""
    plan, workspace = running_plan
    write(workspace / "launchers.yaml", "workspace")
    assert names(load_launchers()) == ["workspace"]
    write(home / "repo" / "launchers.yaml", "project")
    assert names(load_launchers()) == ["project"]
    write(plan / "launchers.yaml", "plan")
    assert names(load_launchers()) == ["plan"]
    write(home / "shim" / "launchers.yaml", "hook")  # experimaestro's hook starts from its folder
    assert names(load_launchers(home / "shim")) == ["hook"]


def test_the_file_used_is_logged_once_with_why(home, running_plan, caplog):
    plan, _ = running_plan
    write(plan / "launchers.yaml", "plan")
    with caplog.at_level(logging.INFO, logger="xpm_train.launchers"):
        load_launchers()
        load_launchers()
    said = [r.getMessage() for r in caplog.records]
    assert said == [f"Launchers: {plan / 'launchers.yaml'} (found from the plan's folder {plan})"]


def test_none_found_says_where_it_looked_once(home, running_plan, monkeypatch, caplog):
    plan, workspace = running_plan
    monkeypatch.setenv("XPM_TRAIN_FAKE_GPUS", "")
    with caplog.at_level(logging.INFO, logger="xpm_train.launchers"):
        load_launchers()
        load_launchers()
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith("No launchers.yaml found ($XPM_TRAIN_LAUNCHERS unset; searched "
                           f"the plan's folder {plan}; the current folder {home / 'repo' / 'sub'}; "
                           f"the workspace {workspace}; {home / 'config' / 'xpm-train' / 'launchers.yaml'}): "
                           "using the built-in default, one local launcher with")
