"""Two ranks on this machine (gloo): the weights of a 1-process run with the
same global batch, to float32 tolerance; only rank 0 writes."""

from __future__ import annotations

import json
import time

import pytest

from ddphelpers import PLAN, RUN, events, learn_folder, max_difference, weights
from helpers import run_experiment

pytestmark = pytest.mark.integration

ONE = "duration=10m & cpu(cores=2)"


def test_two_ranks_train_the_weights_of_one_process(tmp_path, launchers_env, two_rank_reference):
    start = time.monotonic()
    result = run_experiment(PLAN, tmp_path, f"spec={ONE}", *RUN, env=launchers_env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    one, two = learn_folder(tmp_path), two_rank_reference
    assert one.name == two.name  # the number of ranks is not a Param
    difference = max_difference(weights(one), weights(two))
    print(f"max |w1 - w2| = {difference:.2e}; 1-process plan {time.monotonic() - start:.1f}s; "
          f"training {json.loads((one / 'final.json').read_text())['wall_time']:.2f}s (1) vs "
          f"{json.loads((two / 'final.json').read_text())['wall_time']:.2f}s (2 ranks)")
    assert difference < 1e-6  # without the loss weight of uneven shards: 2.5e-6
    start, = [e for e in events(two) if e["event"] == "start"]
    assert start["ranks"] == 2 and start["threads"] == 1
    # rank 0 alone wrote: one start, one end, one line per logged point
    assert [e["event"] for e in events(two)].count("end") == 1
    metrics_one = [json.loads(l) for l in (one / "metrics.jsonl").read_text().splitlines()]
    metrics_two = [json.loads(l) for l in (two / "metrics.jsonl").read_text().splitlines()]
    assert [(m["epoch"], m["step"], m["split"]) for m in metrics_one] == \
        [(m["epoch"], m["step"], m["split"]) for m in metrics_two]
    # validation and training metrics are those of the whole splits, not of rank 0's shard
    for a, b in zip(metrics_one, metrics_two):
        if a["split"] in ("train", "val"):
            assert a["accuracy"] == pytest.approx(b["accuracy"], abs=2e-3)
            assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    final_one = json.loads((one / "final.json").read_text())
    final_two = json.loads((two / "final.json").read_text())
    assert final_one["steps"] == final_two["steps"]


def test_evaluate_on_two_ranks_gives_the_metrics_of_the_whole_split(tmp_path, launchers_env):
    """Each rank evaluates its shard, the sums are added: results.json is that of one process."""
    import torch

    from xpm_train import MLP, Synthetic
    from xpm_train.measure import split_metrics
    from xpm_train.models import build
    from xpm_train.objectives import Classification
    from xpm_train.pipeline import DeviceData

    result = run_experiment(PLAN, tmp_path, f"spec={ONE}", "epochs=1",
                            "evaluate_spec=cpu(cores=2) & processes=2", env=launchers_env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (job,) = tmp_path.glob("jobs/xpm_train.evaluate.evaluate/*")
    got = json.loads((job / "results.json").read_text())
    assert [e["event"] for e in events(job)] == ["start", "end"]  # rank 0 alone wrote
    # the same metrics computed here, in one process, from the trained weights
    arrays = Synthetic.C(split="test", num_samples=200, height=8, width=8, num_classes=4, seed=3).instance().arrays()
    net = build(MLP.C(hidden_dims=[64]).instance(), Classification.C().describe(arrays))
    from xpm_train import checkpoint

    net.load_state_dict(checkpoint.load(learn_folder(tmp_path) / "checkpoints" / "best.pt")["model"])
    expected = split_metrics(net, DeviceData(arrays, torch.device("cpu")), Classification.C().instance(), details=True)
    assert got["samples"] == expected["samples"] == 200
    assert got["confusion_matrix"] == expected["confusion_matrix"]
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-5)
