"""The quickstart plan, run for real with ``experimaestro run-experiment``.

One module-scoped run (3 epochs) is shared by the tests: caching, tags,
results read back by ID, and the CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import REPO, run_experiment, what_ran, xpm_train

pytestmark = pytest.mark.integration
PARAMS = REPO / "experiments" / "quickstart" / "params.yaml"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("quickstart") / "ws"
    result = run_experiment(PARAMS, workdir, "epochs=3")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir, result


def test_first_run_trains_the_grid_and_prints_the_table(workspace):
    workdir, result = workspace
    learns = list((workdir / "jobs").glob("xpm_train.learn.learn/*/learn.done"))
    evaluations = list((workdir / "jobs").glob("xpm_train.evaluate.evaluate/*/results.json"))
    assert len(learns) == 4 and len(evaluations) == 4
    table = [line for line in result.stdout.splitlines() if line.startswith("xpm_train.evaluate")]
    assert len(table) == 4, result.stdout
    accuracies = [json.loads(p.read_text())["accuracy"] for p in evaluations]
    assert max(accuracies) > 0.9  # 3 epochs only; the full quickstart reaches >= 0.95
    # experimaestro's "ended with code -1" for jobs that succeeded (launchers/process.py)
    ended = [line for line in result.stderr.splitlines() if "ended with code" in line]
    assert len(ended) == 8 and all(line.endswith("ended with code 0") for line in ended), ended


def test_second_run_starts_no_job(workspace):
    workdir, _ = workspace
    before = what_ran(workdir)
    result = run_experiment(PARAMS, workdir, "epochs=3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert what_ran(workdir) == before


def test_experimaestro_lists_the_tags(workspace):
    workdir, _ = workspace
    listing = subprocess.run(
        [sys.executable, "-m", "experimaestro", "jobs", "--workdir", str(workdir), "list", "--tags",
         "--experiment", "quickstart"], capture_output=True, text=True, timeout=120,
    )
    lines = [line for line in listing.stdout.splitlines() if line.startswith("DONE")]
    assert len(lines) == 8, listing.stdout + listing.stderr
    assert sum("hidden_dim=32" in line and "lr=0.001" in line for line in lines) == 2


def test_load_reproduces_the_evaluation(workspace):
    import torch

    import xpm_train

    workdir, _ = workspace
    table = xpm_train.results(workdir, experiment="quickstart", where={"hidden_dim": 128, "lr": 0.003})
    learn_row = table[table.task.str.endswith("learn")].iloc[0]
    evaluate_row = table[table.task.str.endswith("evaluate")].iloc[0]

    loaded = xpm_train.load(learn_row.job, workspace=workdir)
    assert loaded.metrics["epochs"] == 3 and loaded.network is not None
    test = xpm_train.Digits.C(split="test").instance().arrays()
    mean = torch.tensor(test.mean).view(1, -1, 1, 1) * 255
    std = torch.tensor(test.std).view(1, -1, 1, 1) * 255
    with torch.no_grad():
        predicted = loaded.network((test.images.float() - mean) / std).argmax(1)
    accuracy = (predicted == test.labels).float().mean().item()
    assert accuracy == pytest.approx(evaluate_row.accuracy, abs=0.5 / len(test.labels))  # same predictions
    assert len(loaded.history()) > 0


def test_cli_results_and_show(workspace):
    workdir, _ = workspace
    table = xpm_train("results", "--workdir", str(workdir), "--task", "evaluate", "--sort", "accuracy")
    assert table.returncode == 0, table.stderr
    assert len([line for line in table.stdout.splitlines() if line.startswith("xpm_train.evaluate")]) == 4

    as_json = json.loads(xpm_train("results", "--workdir", str(workdir), "--format", "json",
                                   "--where", "hidden_dim=32").stdout)
    assert len(as_json) == 4 and {row["hidden_dim"] for row in as_json} == {32}

    job = next((workdir / "jobs" / "xpm_train.learn.learn").iterdir())
    shown = xpm_train("show", job.name[:10], "--workdir", str(workdir))
    assert shown.returncode == 0, shown.stderr
    assert "state:  done" in shown.stdout and "hidden_dims" in shown.stdout and "best.val_accuracy" in shown.stdout


@pytest.mark.parametrize("prefix, message", [("", "ambiguous"), ("ffffffffffff", "no job matches")])
def test_cli_show_unclear_ids(workspace, prefix, message):
    workdir, _ = workspace
    hashes = [p.name for p in (workdir / "jobs").glob("*/*")]
    if prefix == "":  # a one-character prefix shared by two jobs
        prefix = next(h[0] for h in hashes if sum(o.startswith(h[0]) for o in hashes) > 1)
    shown = xpm_train("show", prefix, "--workdir", str(workdir))
    assert shown.returncode == 1
    assert message in shown.stderr and "Traceback" not in shown.stderr


def test_export_writes_a_loadable_model(workspace, tmp_path):
    import torch

    workdir, _ = workspace
    learn = next((workdir / "jobs" / "xpm_train.learn.learn").iterdir())
    result = xpm_train("export", learn.name[:10], "--to", str(tmp_path / "model"), "--workdir", str(workdir))
    assert result.returncode == 0, result.stderr
    files = sorted(p.name for p in (tmp_path / "model").iterdir())
    assert files == ["README.md", "data.json", "final.json", "metrics.jsonl", "model.json", "model.pt", "params.json"]
    state = torch.load(tmp_path / "model" / "model.pt")
    from xpm_train import checkpoint

    expected = checkpoint.load_weights(learn / "checkpoints" / "best.pt")
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    readme = (tmp_path / "model" / "README.md").read_text()
    assert learn.name in readme and "input: one sample of shape [1, 8, 8], uint8" in readme
    # The README's snippet rebuilds and runs the model in a fresh process, elsewhere
    snippet = readme.split("```python\n")[1].split("```")[0] + "print(exported.info.outputs)\n"
    run = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.split()[-1] == "10", run.stderr[-2000:]
    again = xpm_train("export", learn.name[:10], "--to", str(tmp_path / "model"), "--workdir", str(workdir))
    assert again.returncode == 1 and "already exists" in again.stderr and "Traceback" not in again.stderr


def test_export_best_action_registered_by_the_plan(workspace, tmp_path):
    """The plan registers an experimaestro Action exporting its best training."""
    workdir, _ = workspace
    target = tmp_path / "best"
    result = subprocess.run(
        [sys.executable, "-m", "experimaestro", "experiments", "--workdir", str(workdir), "actions", "run",
         "quickstart", "--set", f"to={target}"], input="1\n", capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Action completed successfully" in result.stdout, result.stdout + result.stderr
    finals = {p.parent.name: json.loads(p.read_text())["best"]["val_accuracy"]
              for p in (workdir / "jobs" / "xpm_train.learn.learn").glob("*/final.json")}
    exported = json.loads((target / "final.json").read_text())["best"]["val_accuracy"]
    assert exported == max(finals.values())


def test_carbon_tracking_is_off(workspace):
    """The plan ran with carbon tracking off: experimaestro writes the setting
    every job runs with into its params.json."""
    workdir, _ = workspace
    params = sorted((workdir / "jobs").glob("*/*/params.json"))
    assert len(params) == 8
    assert all(json.loads(p.read_text())["carbon"]["enabled"] is False for p in params)


@pytest.mark.parametrize("value, enabled", [(None, False), ("0", False), ("1", True)])
def test_carbon_tracking_only_when_asked(tmp_path, value, enabled):
    """xpm_train.preflight turns carbon tracking off unless XPM_TRAIN_CARBON=1
    (experimaestro's own default is on: checked with the variable set)."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "XPM_TRAIN_CARBON"}
    env["HOME"] = str(tmp_path)  # no user settings.yaml
    if value is not None:
        env["XPM_TRAIN_CARBON"] = value
    code = "import xpm_train.preflight; from experimaestro.settings import get_settings; print(get_settings().carbon.enabled)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == str(enabled), out.stderr[-2000:]


def test_evaluate_results_match_scikit_learn(workspace):
    """An Evaluate job's results.json (top-5, per-class accuracy, confusion
    matrix) equals scikit-learn's on the loaded model's logits."""
    import numpy as np
    import torch

    import xpm_train
    from test_evaluate import assert_match, sklearn_metrics

    workdir, _ = workspace
    table = xpm_train.results(workdir, experiment="quickstart", where={"hidden_dim": 32, "lr": 0.001})
    learn_row = table[table.task.str.endswith("learn")].iloc[0]
    evaluate_row = table[table.task.str.endswith("evaluate")].iloc[0]
    evaluation = xpm_train.load(evaluate_row.job, workspace=workdir)
    results = json.loads((evaluation.info.path / "results.json").read_text())

    network = xpm_train.load(learn_row.job, workspace=workdir).network
    test = xpm_train.Digits.C(split="test").instance().arrays()
    mean = torch.tensor(test.mean).view(1, -1, 1, 1) * 255
    std = torch.tensor(test.std).view(1, -1, 1, 1) * 255
    with torch.no_grad():
        logits = network.eval()((test.images.float() - mean) / std).numpy()
    assert_match(results, sklearn_metrics(logits, test.labels.numpy(), 10), len(test.labels))
    assert np.trace(np.array(results["confusion_matrix"])) < len(test.labels)  # some errors: a real check
