"""A study run again: its trials keep their tags in every view, and a study
extended without a better trial starts no Tune or Evaluate job (nor a second
MLflow study run).

One module-scoped workspace: 2 trials (the first enqueued: a configuration
that reaches the best possible validation accuracy on this data, so later
trials can only tie with it), then the same study extended to 3 trials.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tunehelpers import GOOD_THEN_BAD, trials, write_params

from helpers import run_experiment, what_ran, xpm_train

pytestmark = pytest.mark.integration
TRACKED = {"tracking_uri": "", "enqueue": GOOD_THEN_BAD[:1]}
"""MLflow in the workspace store"""
ENV = {"MLFLOW_TRACKING_URI": ""}  # the workspace store, whatever the caller has


def jobs_of(workdir, task: str) -> list[str]:
    return sorted(p.name for p in (workdir / "jobs" / task).glob("*"))


@pytest.fixture(scope="module")
def extended(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rerun")
    workdir = folder / "ws"
    first = run_experiment(write_params(folder, n_trials=2, **TRACKED), workdir, env=ENV)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    before = {"tune": jobs_of(workdir, "xpm_train.tune.task.tune"),
              "evaluate": jobs_of(workdir, "xpm_train.evaluate.evaluate"), "ran": what_ran(workdir),
              "best": trials(workdir)[0]}
    second = run_experiment(write_params(folder, n_trials=3, **TRACKED), workdir, env=ENV)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    return folder, workdir, before, second


def test_an_extended_study_without_a_better_trial_starts_no_tune_or_evaluate(extended):
    from mlflow import MlflowClient

    _, workdir, before, second = extended
    rows = trials(workdir)
    assert len(rows) == 3 and rows[0]["value"] == 1.0, rows
    assert "BEST 0 1.0000 LAUNCHED 1" in second.stdout  # best unchanged, one new Learn
    assert jobs_of(workdir, "xpm_train.tune.task.tune") == before["tune"]
    assert jobs_of(workdir, "xpm_train.evaluate.evaluate") == before["evaluate"]
    now = what_ran(workdir)
    assert {k: v for k, v in now.items() if "learn" not in k} == \
        {k: v for k, v in before["ran"].items() if "learn" not in k}
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tune-test").experiment_id
    studies = client.search_runs([experiment], filter_string="tags.`xpm.task` = 'tune'")
    assert len(studies) == 1


def learn_rows(workdir) -> list[dict]:
    result = xpm_train("results", "--workdir", str(workdir), "--experiment", "tune-test", "--task", "learn",
                       "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def cell(header: str, line: str, column: str) -> str:
    """The value of ``column`` in a row of a right-aligned text table."""
    end = f" {header} ".index(f" {column} ") + len(column)
    return line[:end].split()[-1]


def test_every_trial_keeps_its_tags_after_a_rerun(extended, tmp_path):
    _, workdir, _, _ = extended
    rows = learn_rows(workdir)
    assert sorted(row["trial"] for row in rows) == [0, 1, 2]  # trials 0 and 1 were cached in the 2nd run
    assert {row["model"] for row in rows} == {"MLP"}

    table = xpm_train("results", "--workdir", str(workdir), "--experiment", "tune-test").stdout
    header, *lines = table.splitlines()
    assert len(lines) == 5  # 3 Learn, the Tune and its Evaluate (not tagged by the plan: listed all the same)
    # the Tune and its Evaluate carry the best trial's tags (their input is its output)
    assert sorted(cell(header, line, "trial") for line in lines) == ["0", "0", "0", "1", "2"]
    assert [cell(header, line, "model") for line in lines if line.lstrip().startswith("xpm_train.learn")] == ["MLP"] * 3
    # an integer column with missing values (only the Tune has trial counts) stays integer;
    # the Tune job is the first run's: its record shows the study at 2 trials
    assert sorted(cell(header, line, "trials") for line in lines) == ["-", "-", "-", "-", "2"]

    best = trials(workdir)[0]["job"]
    shown = xpm_train("show", best, "--workdir", str(workdir))
    assert shown.returncode == 0 and "trial=0" in shown.stdout, shown.stdout + shown.stderr
    exported = xpm_train("export", best, "--to", str(tmp_path / "best"), "--workdir", str(workdir))
    assert exported.returncode == 0, exported.stderr
    assert "trial=0" in (tmp_path / "best" / "README.md").read_text()

    listing = subprocess.run([sys.executable, "-m", "experimaestro", "jobs", "--workdir", str(workdir), "list",
                              "--tags", "--experiment", "tune-test"], capture_output=True, text=True, timeout=120)
    learns = [line for line in listing.stdout.splitlines() if "xpm_train.learn.learn" in line]
    assert len(learns) == 3 and all("trial=" in line for line in learns), listing.stdout
