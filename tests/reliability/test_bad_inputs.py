"""The bad-input catalogue: each malformed input gives a short message saying
what is wrong and how to fix it, exits non-zero, prints no traceback (unless
--debug), and leaves nothing half-written in the workspace.

One table, one row per input. Kinds:

- ``params``: a params.yaml importing the quickstart's, plus the given lines,
  run with ``experimaestro run-experiment``;
- ``run``: the same file run with ``xpm-train run``;
- ``override``: the quickstart run with ``-c`` overrides;
- ``cli``: an ``xpm-train`` command (``{ws}``: a workspace holding finished
  jobs, ``{tmp}``: the test's temporary folder);
- ``tune``: an entry of the tune plan's search space;
- ``tune_override``: ``-c key=value`` overrides of the tune plan;
- ``launchers``: a launchers.yaml with the given content, checked by
  ``xpm-train launchers list --file`` and used by the quickstart plan through
  ``XPM_TRAIN_LAUNCHERS`` (nothing may be submitted).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, run_experiment

pytestmark = pytest.mark.integration
QUICKSTART = REPO / "experiments" / "quickstart" / "params.yaml"
MNIST = REPO / "experiments" / "mnist" / "params.yaml"
TUNE = REPO / "experiments" / "tune" / "params.yaml"

CATALOGUE = [
    # --- params.yaml
    ("unknown key", "params", "epcohs: 3", "unknown key 'epcohs' (did you mean 'epochs'?)"),
    ("unknown nested-looking key", "params", "optimizer: adam", "unknown key 'optimizer'"),
    ("wrong type", "params", "epochs: abc", "key 'epochs'"),
    ("float for int", "params", "batch_size: 3.5", "key 'batch_size'"),
    ("negative epochs", "params", "epochs: -1", "'epochs' must be > 0"),
    ("zero batch size", "params", "batch_size: 0", "'batch_size' must be > 0"),
    ("zero learning rate", "params", "lr: [0.0]", "'lr' must be > 0"),
    ("negative learning rate", "params", "lr: [-0.1]", "'lr' must be > 0"),
    ("empty grid", "params", "hidden_dim: []", "'hidden_dim' is an empty list"),
    ("scalar for a grid", "params", "hidden_dim: 32", "key 'hidden_dim': Input should be a valid list"),
    ("validation fraction of 1.5", "params", "val_fraction: 1.5", "'val_fraction' must be in [0, 1)"),
    # experimaestro itself reads the YAML before any hook runs (its traceback):
    # `xpm-train run` checks the file first
    ("invalid YAML", "run", "epochs: [1, 2", "is not valid YAML"),
    ("bad launcher spec", "params", "launcher: 'duration=2h & cpu(cores=)'", "is not a valid resource spec"),
    ("spec no launcher fits", "params", "launcher: 'duration=1h & cpu(cores=100000)'", "100000"),
    # --- command-line overrides
    ("override unknown key", "override", ["epcohs=3"], "unknown key 'epcohs'"),
    ("override wrong type", "override", ["epochs=ten"], "key 'epochs'"),
    ("override empty grid", "override", ["lr=[]"], "'lr' is an empty list"),
    ("override bad list", "override", ["lr=[0.1, oops"], "key 'lr'"),
    ("override unknown device", "override", ["device=tpu"], "device 'tpu' is not one of auto, cpu, cuda"),
    # --- launchers.yaml (file, line and field named)
    ("launchers unknown key", "launchers", "launchers:\n  - name: x\n    type: local\n    cpus: 4\n",
     "launchers.yaml:4: launchers[0]"),
    ("launchers negative cores", "launchers", "launchers:\n  - name: x\n    type: local\n    cpu: {cores: -2}\n",
     "launchers.yaml:4: launchers[0].cpu.cores"),
    ("launchers wrong type", "launchers", "launchers:\n  - name: x\n    type: local\n    priority: high\n",
     "launchers.yaml:4: launchers[0].priority"),
    ("launchers unknown type", "launchers", "launchers:\n  - name: x\n    type: kubernetes\n",
     "launchers.yaml:3: launchers[0].type"),
    ("launchers bad default spec", "launchers", "default_spec: 'cpu(cores='\nlaunchers:\n  - name: x\n    type: local\n",
     "launchers.yaml:1: default_spec"),
    # --- search spaces (experiments/tune)
    ("space bounds reversed", "tune", "optimizer.lr: {float: [0.3, 0.0001]}", "optimizer.lr: low (0.3) is greater than high"),
    ("space unknown param", "tune", "optimizer.lrr: {float: [0.0001, 0.3]}", "Adam has no parameter 'lrr'"),
    ("space empty choices", "tune", "batch_size: {categorical: []}", "batch_size: choices must be a non-empty list"),
    ("space unknown key", "tune", "optimizer.lr: {uniform: [0, 1]}", "unknown key(s) ['uniform']"),
    ("objective of an Evaluate not asked for", "tune_override", ["metric=evaluate.accuracy"],
     "set Study(evaluate=True) (in the tune plan's params.yaml: evaluate: true)"),
    ("evaluated study without held-out data", "tune_override", ["evaluate=true", "val_fraction=0.0"],
     "give the base Learn a val_fraction > 0"),
    ("ASHA ladder that does not fit", "tune_override", ["asha=[13, 12, 3]"], "min_epochs=13 is above max_epochs=12"),
    ("ASHA eta below 2", "tune_override", ["asha=[1, 12, 1]"], "eta=1 must be at least 2"),
    ("ASHA ladder not a triple", "tune_override", ["asha=[1, 12]"], "asha: give [min_epochs, max_epochs, eta]"),
    # --- missing files and datasets
    ("missing params file", "cli", ["run", "{tmp}/nope/params.yaml", "--workdir", "{tmp}/ws2"], "no such file"),
    ("missing dataset mirror", "mnist", ["mirror={tmp}/no-mirror", "data_root={tmp}/data"], "no such folder"),
    # --- CLI arguments
    ("unknown results format", "cli", ["results", "--workdir", "{ws}", "--format", "xml"], "'xml' is not one of"),
    ("malformed --where", "cli", ["results", "--workdir", "{ws}", "--where", "hidden_dim"], "--where expects tag=value"),
    ("unknown sort column", "cli", ["results", "--workdir", "{ws}", "--sort", "nope"], "no column 'nope'"),
    ("unknown command", "cli", ["reslts"], "No such command 'reslts'"),
    # --- job IDs
    ("unknown job ID", "cli", ["show", "--workdir", "{ws}", "fffffffffff"], "no job matches 'fffffffffff'"),
    ("ambiguous job prefix", "cli", ["show", "--workdir", "{ws}", "abc"], "ambiguous"),
    ("unknown task name", "cli", ["show", "--workdir", "{ws}", "xpm_train.nope/abc"], "no job matches"),
    ("reproduce an unknown job", "cli", ["reproduce", "--workdir", "{ws}", "fffffffffff", "--into", "{tmp}/copy"],
     "no job matches 'fffffffffff'"),
    ("reproduce from a folder that is no workspace", "cli",
     ["reproduce", "--workdir", "{tmp}/a-file", "fffffffffff", "--into", "{tmp}/copy"], "is not an experimaestro workspace"),
    ("reproduce a job that is not done", "cli", ["reproduce", "--workdir", "{ws}", "abc0", "--into", "{tmp}/copy"],
     "only a done job can be reproduced"),
    # --- workspaces
    ("workspace does not exist", "cli", ["results", "--workdir", "{tmp}/missing"], "is not an experimaestro workspace"),
    ("workspace is a file", "cli", ["results", "--workdir", "{tmp}/a-file"], "is not an experimaestro workspace"),
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A workspace with finished jobs, plus two job folders sharing the prefix 'abc'."""
    workdir = tmp_path_factory.mktemp("catalogue") / "ws"
    result = run_experiment(QUICKSTART, workdir, "epochs=1", "hidden_dim=[8]", "lr=[0.01]")
    assert result.returncode == 0, result.stderr[-2000:]
    for suffix in ("0", "1"):
        (workdir / "jobs" / "xpm_train.learn.learn" / ("abc" + suffix * 61)).mkdir()
    return workdir


def job_files(workdir: Path) -> list[str]:
    jobs = workdir / "jobs"
    return sorted(str(p.relative_to(jobs)) for p in jobs.rglob("*")) if jobs.exists() else []


def run_cli(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xpm_train.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("name, kind, given, message", CATALOGUE, ids=[row[0] for row in CATALOGUE])
def test_bad_input(name, kind, given, message, tmp_path, workspace):
    (tmp_path / "a-file").write_text("not a workspace\n")
    workdir = tmp_path / "ws"
    if kind == "params":
        params = tmp_path / "params.yaml"
        params.write_text(f"imports: [{QUICKSTART}]\n{given}\n")
        result = run_experiment(params, workdir, timeout=120)
    elif kind == "run":
        params = tmp_path / "params.yaml"
        params.write_text(f"imports: [{QUICKSTART}]\n{given}\n")
        result = run_cli(["run", str(params), "--workdir", str(workdir)])
    elif kind == "override":
        result = run_experiment(QUICKSTART, workdir, *given, timeout=120)
    elif kind == "tune":
        params = tmp_path / "params.yaml"
        params.write_text(f"imports: [{TUNE}]\nspace:\n  {given}\n")
        result = run_experiment(params, workdir, timeout=120)
    elif kind == "tune_override":
        result = run_experiment(TUNE, workdir, *given, timeout=120)
    elif kind == "launchers":
        launchers = tmp_path / "launchers.yaml"
        launchers.write_text(given)
        listed = run_cli(["launchers", "list", "--file", str(launchers)])
        assert listed.returncode != 0 and message in listed.stderr, listed.stderr
        result = run_experiment(QUICKSTART, workdir, timeout=120, env={"XPM_TRAIN_LAUNCHERS": str(launchers)})
    elif kind == "mnist":
        result = run_experiment(MNIST, workdir, *[g.format(tmp=tmp_path) for g in given], timeout=120)
    else:
        before = job_files(workspace)
        result = run_cli([arg.format(ws=workspace, tmp=tmp_path) for arg in given])
        assert job_files(workspace) == before
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert message in output, output[-2000:]
    assert "Traceback" not in output
    problem = problem_lines(output)
    assert any(message in line for line in problem), problem  # the message is among them
    text = PATH.sub("<path>", "\n".join(problem))
    assert len(problem) <= MAX_LINES and len(text) <= MAX_CHARACTERS, text
    assert job_files(workdir) == [], job_files(workdir)  # nothing submitted, nothing half-written


def test_catalogue_covers_what_the_readme_says():
    """The README's row count, one row per name, and every kind of input exercised."""
    readme = (REPO / "README.md").read_text()
    claimed = int(re.search(r"test_bad_inputs\.py` \((\d+)\+ rows", readme).group(1))
    names = [row[0] for row in CATALOGUE]
    assert len(names) >= claimed and len(set(names)) == len(names)
    assert {row[1] for row in CATALOGUE} == KINDS


KINDS = {"params", "run", "override", "tune", "tune_override", "launchers", "mnist", "cli"}
"""The kinds of input test_bad_input knows how to give"""

MAX_LINES, MAX_CHARACTERS = 10, 500
"""A short message: at most this many lines and characters (log lines and paths aside)"""

PATH = re.compile(r"/[^\s:'\"]+")
"""An absolute path (temporary folders have no fixed length)"""

LOG_LINE = re.compile(r"^\d{4}[-/]\d\d[-/]\d\d[T ]\d\d:\d\d:\d\d \w+ ")
"""experimaestro's and MLflow's timestamped INFO lines, printed by every run"""


def problem_lines(output: str) -> list[str]:
    """What the user reads about the problem: the output without log lines."""
    return [line for line in output.splitlines() if line.strip() and not LOG_LINE.match(line)]


def test_debug_flag_shows_the_traceback(workspace):
    result = run_cli(["--debug", "show", "--workdir", str(workspace), "fffffffffff"])
    assert result.returncode != 0 and "Traceback" in result.stderr
