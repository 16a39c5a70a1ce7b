"""The benchmarks' bookkeeping (not their figures): bench/ holds the
benchmarks themselves, run by ``python -m bench``."""

from __future__ import annotations

import subprocess

import pytest

from bench.common import BenchError
from bench.throughput import compare


def fake_side(name: str, rates: list[float], threads: int, calls: list[str]):
    def run_once(repeat: int) -> dict:
        calls.append(name)
        return {"samples_per_s": rates[repeat], "threads": threads}
    return run_once


def test_throughput_sides_are_interleaved_in_alternating_order():
    calls: list[str] = []
    result = compare(fake_side("learn", [10.0, 30.0, 20.0], 2, calls), fake_side("demo", [4.0, 5.0, 6.0], 2, calls))
    assert calls == ["learn", "demo", "demo", "learn", "learn", "demo"] == result["order"]
    assert result["learn"] == 20.0 and result["demo"] == 5.0 and result["ratio"] == 4.0  # medians
    assert result["learn_spread"] == pytest.approx(1.0) and result["demo_spread"] == pytest.approx(0.4)
    assert result["threads"] == 2


def test_throughput_refuses_different_thread_counts():
    calls: list[str] = []
    with pytest.raises(BenchError, match="thread counts differ"):
        compare(fake_side("learn", [1.0] * 3, 2, calls), fake_side("demo", [1.0] * 3, 16, calls))


def test_bench_plan_trains_with_adams_default():
    """The benchmarks time the optimizer users get: the plan's ``fused`` is Adam's default."""
    from pathlib import Path

    import yaml

    from xpm_train import Adam

    params = yaml.safe_load((Path(__file__).resolve().parent.parent / "bench" / "plans" / "learn" /
                             "params.yaml").read_text())
    assert params["fused"] == Adam.C().fused is True


def asha_plan():
    import importlib.util

    from helpers import REPO

    spec = importlib.util.spec_from_file_location("asha_plan_for_bench", REPO / "experiments" / "asha" / "experiment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_budgets_benchmark_compares_one_study_under_three_schedulers():
    """experiments/asha's studies differ only by their scheduler or pruner (the bench's three rows)."""
    from pathlib import Path

    import yaml
    from experimaestro.experiments import cli

    from bench.budgets import PARAMS, SCHEDULERS
    from xpm_train import ASHA, MLP, Adam, Cosine, Digits, Learn, NoPruner, SuccessiveHalving

    plan = asha_plan()
    params = yaml.safe_load(Path(PARAMS).read_text())
    base = Learn.C(model=MLP.C(), data=Digits.C(split="train"), optimizer=Adam.C(), schedule=Cosine.C(),
                   epochs=27, val_fraction=0.15)
    studies = {}
    for scheduler in SCHEDULERS:
        cfg = cli.validate_attrs(plan.Configuration, {**params, "scheduler": scheduler})
        studies[scheduler] = plan.study_of(cfg, base)
    assert params["n_trials"] >= 27 and studies["asha"].scheduler == ASHA(1, 27, 3)
    assert studies["asha"].scheduler.rungs == [1, 3, 9, 27]
    assert isinstance(studies["halving"].pruner, SuccessiveHalving) and studies["halving"].pruner.reduction_factor == 3
    assert isinstance(studies["none"].pruner, NoPruner) and studies["none"].scheduler is None
    contents = [study.content() for study in studies.values()]
    assert len({study.name for study in studies.values()}) == 3
    assert all(c["space"] == contents[0]["space"] and c["sampler"] == contents[0]["sampler"] for c in contents)


def test_the_budgets_benchmark_counts_the_epochs_a_job_trained_itself(tmp_path):
    import json

    from bench.budgets import epochs_trained

    jobs = tmp_path / "jobs" / "xpm_train.learn.learn"
    for name, epochs, prefix in (("short", 3, None), ("long", 9, "xpm_train.learn.learn/short"),
                                 ("alone", 2, None)):
        (jobs / name).mkdir(parents=True)
        rows = [{"epoch": e, "split": split} for e in range(epochs) for split in ("train", "val")]
        (jobs / name / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (jobs / name / "final.json").write_text(json.dumps({"continued_from": prefix} if prefix else {}))
    assert epochs_trained(tmp_path) == {"short": 3, "long": 6, "alone": 2}


def test_the_pool_benchmark_counts_the_jobs_steps_only():
    """One step per job: not the allocation, its batch/extern steps nor its fork server."""
    from bench.pool import job_steps

    sacct = ("621|xpm-pool-pool\n621.batch|batch\n621.extern|extern\n621.0|xpm-forkserver\n"
             "621.1|learn-c99d8d13\n621.22|evaluate-337e0e31\n622|xpm-pool-pool\n622.0|recorddevices-74de4b07\n")
    assert job_steps(sacct) == ["learn-c99d8d13", "evaluate-337e0e31", "recorddevices-74de4b07"]


def test_the_pool_benchmark_times_the_step_from_its_first_process_on_the_node(tmp_path):
    """The mark is written by the step's first process, then the warm start's client runs as it would."""
    from bench.common import PYTHON
    from bench.pool import marked

    srun = ["/bin/sh", "-c", "wait for the allocation", "sh", "/usr/bin/srun", "--jobid=12", "--exact",
            "--kill-on-bad-exit=1", "--nodelist=vm", PYTHON, "-S", "forkclient.py", "--", "learn.py"]
    command = marked(srun, tmp_path / "mark")
    assert command[:9] == srun[:9] and command[-5:] == srun[-5:]
    shell = command[9:13]
    assert shell[:2] == ["/bin/sh", "-c"] and shell[3] == str(tmp_path / "mark")
    done = subprocess.run([*shell, "echo", "ran"], capture_output=True, text=True)
    assert done.stdout == "ran\n" and float((tmp_path / "mark").read_text()) > 1.7e9
