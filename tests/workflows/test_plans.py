"""The workflow plans, run for real with ``experimaestro run-experiment`` on
digits with tiny settings: what ran is recorded from the workspace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import REPO, run_experiment, what_ran

from xpm_train.metrics import read_jsonl

pytestmark = pytest.mark.integration
EXPERIMENTS = REPO / "experiments"


def jobs(workdir: Path, task: str) -> list[Path]:
    return sorted((workdir / "jobs" / task).glob("*"))


def started(folder: Path) -> int:
    """How many times the job's task started (from its events.jsonl)."""
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    return sum(event["event"] == "start" for event in events)


def accuracy_on_test(job: Path, workdir: Path) -> float:
    """Test accuracy of a Learn job's best weights, computed here."""
    import torch

    import xpm_train

    network = xpm_train.load(job.name, workspace=workdir).network
    test = xpm_train.Digits.C(split="test").instance().arrays()
    mean = torch.tensor(test.mean).view(1, -1, 1, 1) * 255
    std = torch.tensor(test.std).view(1, -1, 1, 1) * 255
    with torch.no_grad():
        predicted = network((test.images.float() - mean) / std).argmax(1)
    return (predicted == test.labels).float().mean().item()


def run_ok(params: Path, workdir: Path, *overrides: str):
    # Host-wide core counters of this test only: jobs of other test runs on the
    # host do not hold the cores these jobs wait for
    tokens = {"XPM_TRAIN_TOKENS_DIR": str(workdir.parent / "tokens")}
    result = run_experiment(params, workdir, *overrides, env=tokens)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_distill_trains_the_teacher_once(tmp_path):
    workdir = tmp_path / "ws"
    params = EXPERIMENTS / "distill" / "params.yaml"
    tiny = ["teacher_hidden=[32]", "teacher_epochs=2", "epochs=1", "lr=0.01"]
    result = run_ok(params, workdir, *tiny, "student_hidden=[4]", "seeds=[0, 1]")

    learns = jobs(workdir, "xpm_train.learn.learn")
    distills = [f for f in learns if "distillation" in json.loads((f / "final.json").read_text())]
    assert len(learns) == 5 and len(distills) == 2  # teacher + 2 plain students + 2 distilled
    assert len(jobs(workdir, "xpm_train.evaluate.evaluate")) == 5
    teachers = [f for f in learns if f not in distills and (
        '"hidden_dims": [\n        32' in (f / "params.json").read_text()
        or '"hidden_dims": [32]' in (f / "params.json").read_text())]
    assert len(teachers) == 1 and started(teachers[0]) == 1
    for folder in distills:  # every student depends on that one teacher job
        assert teachers[0].name in (folder / "params.json").read_text()
        final = json.loads((folder / "final.json").read_text())
        assert final["distillation"] == {"temperature": 2.0, "alpha": 0.5}
        train = [p for p in read_jsonl(folder / "metrics.jsonl") if p["split"] == "train"]
        assert train and all(p["ce"] > 0 and p["kl"] >= 0 for p in train)
    assert "teacher test accuracy" in result.stdout and "distilled" in result.stdout

    # More students later: the teacher is reused, not retrained
    before = what_ran(workdir)
    run_ok(params, workdir, *tiny, "student_hidden=[4, 8]", "seeds=[0]")
    after = what_ran(workdir)
    assert after[f"xpm_train.learn.learn/{teachers[0].name}"] == before[f"xpm_train.learn.learn/{teachers[0].name}"]
    assert started(teachers[0]) == 1
    new = set(after) - set(before)
    assert sorted(key.split("/")[0] for key in new) == sorted(
        ["xpm_train.learn.learn"] * 2 + ["xpm_train.evaluate.evaluate"] * 2)
    assert all(after[key] == before[key] for key in before)


def test_multistage_reuses_stage_one(tmp_path):
    workdir = tmp_path / "ws"
    params = EXPERIMENTS / "multistage" / "params.yaml"
    tiny = ["hidden_dim=16", "warmup_epochs=1", "epochs=1"]
    run_ok(params, workdir, *tiny, "lr=[0.003]")
    learns = jobs(workdir, "xpm_train.learn.learn")
    assert len(learns) == 2
    stage2 = [f for f in learns if "__init_tasks__" in (f / "params.json").read_text()
              or "init-tasks" in (f / "params.json").read_text()]
    assert len(stage2) == 1
    stage1 = next(f for f in learns if f not in stage2)
    assert stage1.name in (stage2[0] / "params.json").read_text()

    # Evaluate loads stage 2's weights (not stage 1's, also an init task up the chain)
    evaluation = json.loads(next((workdir / "jobs" / "xpm_train.evaluate.evaluate").glob("*/results.json")).read_text())
    assert evaluation["accuracy"] == pytest.approx(accuracy_on_test(stage2[0], workdir), abs=1e-6)
    assert evaluation["accuracy"] != pytest.approx(accuracy_on_test(stage1, workdir), abs=1e-6)

    before = what_ran(workdir)
    run_ok(params, workdir, *tiny, "lr=[0.01, 0.003]")  # change only stage 2: one new stage-2 run
    after = what_ran(workdir)
    assert all(after[key] == before[key] for key in before)  # stage 1 (and the old stage 2) untouched
    new = sorted(key.split("/")[0] for key in set(after) - set(before))
    assert new == ["xpm_train.evaluate.evaluate", "xpm_train.learn.learn"]

    run_ok(params, workdir, "hidden_dim=16", "warmup_epochs=2", "epochs=1", "lr=[0.003]")  # change stage 1
    assert len(jobs(workdir, "xpm_train.learn.learn")) == 5  # new stage 1 and a new stage 2


def test_custom_function_grid_and_cli_sweep(tmp_path):
    workdir = tmp_path / "ws"
    params = EXPERIMENTS / "custom" / "params.yaml"
    result = run_ok(params, workdir, "epochs=1")
    folders = jobs(workdir, "mytrain.train")
    assert len(folders) == 4  # grid_search: 2 lr x 2 hidden
    finals = [json.loads((f / "final.json").read_text()) for f in folders]
    assert all(0 <= final["objective"] <= 1 and final["pruned"] is False for final in finals)
    assert all((f / "checkpoints" / "last.pt").exists() and (f / "metrics.jsonl").exists() for f in folders)
    assert len([line for line in result.stdout.splitlines() if line.startswith("mytrain.train/")]) == 4

    # Re-run: nothing starts. Sweep from the command line: only the new points run
    before = what_ran(workdir)
    run_ok(params, workdir, "epochs=1")
    assert what_ran(workdir) == before
    run_ok(params, workdir, "epochs=1", "grid_search.hidden=[16, 32]", "grid_search.lr={range_mult: [0.001, 2, 10]}")
    after = what_ran(workdir)
    assert len(after) == 6 and all(after[key] == before[key] for key in before)
