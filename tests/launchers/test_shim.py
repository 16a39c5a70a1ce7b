"""experimaestro's own launcher lookup, through the project's ``launchers.py``,
answers exactly as ``xpm_train.find_launcher``."""

import subprocess
import sys

import pytest
from experimaestro.launcherfinder import LauncherRegistry
from experimaestro.launcherfinder import find_launcher as xpm_find_launcher
from experimaestro.launcherfinder.registry import LauncherNotFoundError

from xpm_train import find_launcher
from xpm_train.launchers import NoLauncherError

CLUSTER = """\
launchers:
  - name: laptop
    type: local
    tags: [local]
    priority: 10
    cpu: {cores: 8, memory: 32G}
    gpus: [{model: RTX4090, memory: 24G}, {model: RTX4090, memory: 24G}]
  - name: v100
    type: slurm
    tags: [cluster, gpu]
    partition: gpu-v100
    cpu: {cores: 40, memory: 384G}
    gpus: {count: 4, model: V100, memory: 32G, gres_type: v100}
    max_time: 20h
  - name: cpu
    type: slurm
    tags: [cluster]
    partition: cpu
    cpu: {cores: 128, memory: 1T}
    max_time: 4d
"""

SPECS = [
    ("duration=2h & cpu(cores=4)", ()),
    ("duration=2h & cuda(mem=8G)*1 & cpu(cores=4)", ()),
    ("duration=10h & cuda(mem=30G)*2", ()),
    ("duration=30h & cuda(mem=16G)*2 | duration=30h & cpu(cores=64)", ()),
    ("cuda(mem=80G)*16 | cuda(mem=24G)*2 & cpu(cores=8)", ()),
    ("cpu(cores=1)", ("cluster",)),
    ("cuda(mem=8G)*1", ("cluster", "gpu")),
]


def signature(launcher) -> tuple[str, str]:
    return type(launcher).__name__, str(launcher)


@pytest.fixture
def cluster(write_yaml, monkeypatch):
    monkeypatch.setenv("XPM_TRAIN_LAUNCHERS", str(write_yaml(CLUSTER)))


@pytest.fixture
def registry_at_repo(repo_root, monkeypatch):
    """What ``--xpm-config-dir <repo>`` (run-experiment) and ``--config <repo>`` do."""
    monkeypatch.setattr(LauncherRegistry, "CURRENT_CONFIG_DIR", None)
    LauncherRegistry.set_config_dir(repo_root)


@pytest.mark.parametrize("spec, tags", SPECS)
def test_experimaestro_find_launcher_agrees(cluster, registry_at_repo, spec, tags):
    ours = find_launcher(spec, tags)
    theirs = xpm_find_launcher(spec, tags=set(tags))
    assert signature(theirs) == signature(ours)


def test_experimaestro_no_match_agrees(cluster, registry_at_repo):
    with pytest.raises(NoLauncherError):
        find_launcher("cuda(mem=80G)*16")
    with pytest.raises(LauncherNotFoundError):
        xpm_find_launcher("cuda(mem=80G)*16")


@pytest.mark.parametrize("spec, tags", [SPECS[1], SPECS[3]])
def test_find_launchers_command_agrees(cluster, repo_root, tmp_path, spec, tags):
    """``experimaestro find-launchers --config <repo> SPEC``, run from elsewhere."""
    shown = subprocess.run([sys.executable, "-m", "experimaestro", "find-launchers",
                            "--config", str(repo_root), spec],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.strip().splitlines()[-1] == str(find_launcher(spec, tags))


def test_find_launchers_command_uses_the_project_file(repo_root, monkeypatch):
    """Without $XPM_TRAIN_LAUNCHERS the shim reads the launchers.yaml beside it."""
    monkeypatch.setenv("XPM_TRAIN_FAKE_GPUS", "")
    spec = "duration=10m & cpu(cores=1)"
    shown = subprocess.run([sys.executable, "-m", "experimaestro", "find-launchers",
                            "--config", ".", spec],
                           cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    expected = find_launcher(spec, config=repo_root / "launchers.yaml")
    assert shown.stdout.strip().splitlines()[-1] == str(expected)
    assert str(expected).startswith("LocalLauncher(local,")
