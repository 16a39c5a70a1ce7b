"""The benchmarks' bookkeeping (not their figures): bench/ holds the
benchmarks themselves, run by ``python -m bench``."""

from __future__ import annotations

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
