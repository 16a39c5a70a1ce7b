"""The same seed gives identical metrics and weights on the CPU, run after run
(two workspaces, so two real executions of the same job)."""

from __future__ import annotations

import json

import pytest

from helpers import REPO, run_experiment

pytestmark = pytest.mark.integration
PARAMS = REPO / "tests" / "reliability" / "plans" / "resume" / "params.yaml"


def learn_job(workdir):
    (folder,) = list((workdir / "jobs" / "xpm_train.learn.learn").glob("*"))
    return folder


def metrics_without_time(folder):
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in ("elapsed", "time")} for row in rows]


def test_same_seed_same_metrics_and_weights_on_cpu(tmp_path):
    import torch

    from xpm_train import checkpoint

    folders = []
    for name in ("a", "b"):
        result = run_experiment(PARAMS, tmp_path / name, "epochs=2")
        assert result.returncode == 0, result.stderr[-2000:]
        folders.append(learn_job(tmp_path / name))
    first, second = folders
    assert first.name == second.name
    assert metrics_without_time(first) == metrics_without_time(second)
    assert len(metrics_without_time(first)) > 50
    a = checkpoint.load(first / "checkpoints" / "last.pt")["model"]
    b = checkpoint.load(second / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the local launcher sized the job's thread pool to its cores (cpu(cores=1))
    events = [json.loads(line) for line in (first / "events.jsonl").read_text().splitlines()]
    assert next(e for e in events if e["event"] == "start")["threads"] == 1
