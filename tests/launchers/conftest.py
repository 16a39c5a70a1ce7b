"""Fixtures of the launcher tests.

``launcher_kind`` runs a test once per launcher type: ``local`` always,
``slurm`` only when ``XPM_TRAIN_SLURM=1`` (``source .ci/slurm.sh`` starts the
CI cluster and sets it); with ``XPM_TRAIN_SLURM=1`` and no Slurm answering,
the Slurm cases fail instead of being skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import reset_scheduler
from slurmhelpers import PARTITION_ENV, SLURM_ENV, SlurmCluster, find_slurm, run  # noqa: F401

LOCAL = """\
launchers:
  - name: box
    type: local
    tags: [local]
    cpu: {{cores: {cores}, memory: {memory}}}
    gpus: auto
"""


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
    """The running Slurm partition: skipped unless XPM_TRAIN_SLURM=1, failing if unreachable."""
    if os.environ.get(SLURM_ENV) != "1":
        pytest.skip(f"Slurm tests run only with {SLURM_ENV}=1 "
                    "(`source .ci/slurm.sh` starts the CI cluster and sets it)")
    cluster = find_slurm()
    if cluster is None:
        pytest.fail(f"{SLURM_ENV}=1 but no Slurm answers (`sinfo`/`sacct` missing or failing, "
                    f"or partition {os.environ.get(PARTITION_ENV) or '<default>'} not up): "
                    "run `source .ci/slurm.sh`")
    return cluster


@pytest.fixture(params=["local", pytest.param("slurm", marks=pytest.mark.slurm)])
def launcher_kind(request) -> str:
    """The launcher type under test: each test using it runs on both."""
    return request.param


@pytest.fixture
def use_local_launcher(tmp_path, monkeypatch):
    """``use(cores, memory, gpus)``: one local launcher ``box`` with these
    resources (``gpus``: a fake inventory such as ``2x80G``, or ``""``), in
    effect through ``$XPM_TRAIN_LAUNCHERS``; returns the file."""

    def use(cores: int = 2, memory: str = "8G", gpus: str = "2x80G") -> Path:
        monkeypatch.setenv("XPM_TRAIN_FAKE_GPUS", gpus)
        path = tmp_path / "launchers.yaml"
        path.write_text(LOCAL.format(cores=cores, memory=memory))
        monkeypatch.setenv("XPM_TRAIN_LAUNCHERS", str(path))
        return path

    return use


@pytest.fixture
def use_slurm_launcher(request, tmp_path, monkeypatch):
    """``use(poll_interval=0.5, extra="")``: one Slurm launcher ``slurm`` on the
    running partition (``extra``: more lines of its entry, e.g. ``max_submitted: 2``),
    in effect through ``$XPM_TRAIN_LAUNCHERS``; returns the file."""

    def use(poll_interval: float = 0.5, extra: str = "") -> Path:
        cluster = request.getfixturevalue("slurm_cluster")
        path = tmp_path / "launchers.yaml"
        path.write_text("launchers:\n" + cluster.launcher_yaml("slurm", poll_interval=poll_interval,
                                                               extra=extra))
        monkeypatch.setenv("XPM_TRAIN_LAUNCHERS", str(path))
        return path

    return use


@pytest.fixture
def launchers_file(launcher_kind, request, use_local_launcher) -> Path:
    """A launchers file with one launcher of the kind under test, in effect
    through ``$XPM_TRAIN_LAUNCHERS`` (local: 2 cores, 8G, 2 fake 80G GPUs)."""
    if launcher_kind == "local":
        return use_local_launcher()
    return request.getfixturevalue("use_slurm_launcher")()


@pytest.fixture(autouse=True)
def launcher_sandbox(tmp_path, monkeypatch):
    """Private token and GPU-lock folders; no launchers file or fake GPUs inherited."""
    from xpm_train.launchers import tokens

    for name in ("XPM_TRAIN_LAUNCHERS", "XPM_TRAIN_FAKE_GPUS", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XPM_TRAIN_TOKENS_DIR", str(tmp_path / "tokens"))
    monkeypatch.setenv("XPM_TRAIN_GPU_LOCK_DIR", str(tmp_path / "gpu-locks"))
    tokens._tokens.clear()  # this process's token objects (their folder changes)
    yield tmp_path
    tokens._tokens.clear()  # this process's token objects (their folder changes)


@pytest.fixture
def fresh_scheduler():
    """Forget the jobs that experimaestro's (process-wide) scheduler remembers.

    Call the returned function between two runs of the same experiment to
    behave like a new process (jobs are then found again on disk).
    """
    reset_scheduler()
    yield reset_scheduler
    reset_scheduler()


@pytest.fixture
def repo_root() -> Path:
    """The repository root (holds launchers.yaml and launchers.py)."""
    return Path(__file__).resolve().parents[2]


@pytest.fixture
def write_yaml(tmp_path):
    """Write a launchers file and return its path."""

    def write(text: str, name: str = "launchers.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
