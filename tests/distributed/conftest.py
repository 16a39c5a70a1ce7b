"""Fixtures of the distributed tests: the launchers of the plans, and the
2-rank reference run that the others are compared with."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ddphelpers import LOCAL, PLAN, RUN, TWO_RANKS, learn_folder


@pytest.fixture(scope="session")
def launchers_env(tmp_path_factory) -> dict[str, str]:
    """Environment of the plans: a local launcher of 2 cores and no GPU, a
    60 s collective timeout."""
    path = tmp_path_factory.mktemp("launchers") / "launchers.yaml"
    path.write_text(LOCAL)
    return {"XPM_TRAIN_LAUNCHERS": str(path), "XPM_TRAIN_DDP_TIMEOUT": "60"}


@pytest.fixture
def local_launchers(launchers_env, monkeypatch) -> dict[str, str]:
    """:func:`launchers_env` in effect in this process (inherited by the plans)."""
    for name, value in launchers_env.items():
        monkeypatch.setenv(name, value)
    return launchers_env


@pytest.fixture(scope="session")
def two_rank_reference(tmp_path_factory, launchers_env) -> Path:
    """The job folder of an uninterrupted 2-rank run."""
    from helpers import run_experiment

    workdir = tmp_path_factory.mktemp("two-ranks")
    start = time.monotonic()
    result = run_experiment(PLAN, workdir, f"spec={TWO_RANKS}", *RUN, env=launchers_env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"2-rank plan: {time.monotonic() - start:.1f}s")
    return learn_folder(workdir)
