"""A non-finite loss or score is never a result: a diverging Learn and a
training function returning NaN end failed (never done, so never reused),
with a message saying what happened and how to fix it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
HERE = Path(__file__).resolve().parent


def events(folder: Path) -> list[str]:
    return [json.loads(line)["event"] for line in (folder / "events.jsonl").read_text().splitlines()]


def test_a_diverging_learn_stops_failed_with_the_fix(tmp_path):
    from experimaestro import experiment

    from xpm_train import MLP, SGD, Learn, Synthetic

    learn = Learn.C(model=MLP.C(hidden_dims=[8]), data=Synthetic.C(split="train", num_samples=64),
                    optimizer=SGD.C(lr=1e20), epochs=3, batch_size=16, log_interval=2, device="cpu")
    with experiment(tmp_path / "ws", "diverge", port=None):  # (logs the failure, raises nothing)
        learn.submit()
    folder = learn.__xpm__.job.path
    assert (folder / "learn.failed").exists() and not (folder / "learn.done").exists()
    assert not (folder / "final.json").exists() and not (folder / "checkpoints" / "best.pt").exists()
    error = (folder / "learn.err").read_text()
    assert "NonFiniteResult: Learn: the training loss became non-finite" in error
    assert "in epoch 0, at or before step 2" in error and "lower the learning rate" in error
    assert events(folder)[-1] == "error"
    steps = [json.loads(line)["step"] for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert max(steps, default=0) <= 2  # stopped at the first check, not trained on for 3 epochs


def test_a_function_returning_nan_ends_failed_and_runs_again(tmp_path, monkeypatch):
    from experimaestro import experiment

    monkeypatch.syspath_prepend(str(HERE))
    from nanfunction import diverges

    for run in (1, 2):  # a failed job is not done: the next run of the plan runs it again
        task = diverges.C(device="cpu")
        with experiment(tmp_path / "ws", "nan", port=None):
            task.submit()
        folder = task.__xpm__.job.path
        assert (folder / "diverges.failed").exists() and not (folder / "diverges.done").exists()
        assert not (folder / "final.json").exists()
        assert events(folder).count("start") == run and events(folder)[-1] == "error"
    error = (folder / "diverges.err").read_text()
    assert "the objective returned by nanfunction.diverges is nan, not a finite number" in error
    assert "not a placeholder" in error and "ends failed" in error
