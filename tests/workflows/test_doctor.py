"""xpm-train doctor and gpus: one line per check, WARN (not FAIL) for what
this machine lacks, FAIL for an invalid launchers.yaml."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import REPO
from xpm_train import doctor

VALID = """\
launchers:
  - name: here
    type: local
    cpu: {cores: 1, memory: 1G}
    gpus: []
"""

WITH_SLURM = VALID + """\
  - name: cluster
    type: slurm
    partition: gpu
    cpu: {cores: 4, memory: 16G}
    max_time: 1h
"""

INVALID = """\
launchers:
  - name: here
    type: local
    cpu: {cores: -3, memory: 1G}
"""


def run_doctor(tmp_path, launchers_text: str) -> subprocess.CompletedProcess:
    path = tmp_path / "launchers.yaml"
    path.write_text(launchers_text)
    env = {**os.environ, "XPM_TRAIN_LAUNCHERS": str(path), "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow/mlflow.db"}
    return subprocess.run([sys.executable, "-m", "xpm_train.cli", "doctor", "--workdir", str(tmp_path / "ws")],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=env)


def lines_by_name(output: str) -> dict[str, str]:
    lines = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("OK", "WARN", "FAIL"):
            lines[parts[1]] = line
    return lines


def test_doctor_valid_launchers(tmp_path):
    result = run_doctor(tmp_path, VALID)
    lines = lines_by_name(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(lines) >= {"python", "torch", "cuda", "experimaestro", "workspace", "launchers", "mlflow"}
    assert lines["launchers"].startswith("OK") and "here (local)" in lines["launchers"]
    assert lines["workspace"].startswith("OK") and "created on first run" in lines["workspace"]
    assert lines["mlflow"].startswith("OK") and "writable" in lines["mlflow"]
    assert "slurm" not in lines  # no slurm launcher declared: nothing to check
    if not lines["cuda"].startswith("OK"):  # no GPU here: a warning with a fix, not a failure
        assert lines["cuda"].startswith("WARN") and "-> fix:" in lines["cuda"]
    assert "0 FAIL" in result.stdout


def test_doctor_invalid_launchers(tmp_path):
    result = run_doctor(tmp_path, INVALID)
    lines = lines_by_name(result.stdout)
    assert result.returncode == 1, result.stdout + result.stderr
    assert lines["launchers"].startswith("FAIL")
    assert "cores" in lines["launchers"] and "-> fix: correct launchers.yaml" in lines["launchers"]
    assert len(result.stdout.strip().splitlines()) == len(lines) + 1  # one line per check + summary
    assert "Traceback" not in result.stdout + result.stderr


def test_slurm_declared_but_absent_is_a_warning(tmp_path, monkeypatch):
    path = tmp_path / "launchers.yaml"
    path.write_text(WITH_SLURM)
    monkeypatch.setenv("XPM_TRAIN_LAUNCHERS", str(path))
    check, config = doctor.check_launchers()
    assert check.status == doctor.OK and "cluster (slurm)" in check.message
    (slurm,) = doctor.check_launcher_types(config, which=lambda command: None)
    assert slurm.name == "slurm" and slurm.status == doctor.WARN
    assert "sbatch" in slurm.message and "cluster" in slurm.message
    assert doctor.check_launcher_types(None) == []


def test_workspace_not_writable(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        check = doctor.check_workspace(folder / "ws")
        assert check.status == doctor.FAIL and "not writable" in check.message
    finally:
        folder.chmod(0o700)


def test_mlflow_server_down_is_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    check = doctor.check_mlflow(tmp_path, timeout=1)
    assert check.status == doctor.WARN and "unreachable" in check.message


def test_old_python_fails():
    assert doctor.check_python((3, 8, 0)).status == doctor.FAIL
    assert doctor.check_python((3, 11, 2)).status == doctor.OK


def test_parse_nvidia_smi():
    gpus = doctor.parse_nvidia_smi(
        "0, GPU-aaa, NVIDIA H100 80GB HBM3, 1024, 81559, 37\n1, GPU-bbb, NVIDIA H100 80GB HBM3, 0, 81559, [N/A]\n",
        "GPU-aaa, 4242, 1000\n",
    )
    assert [g.index for g in gpus] == ["0", "1"]
    assert gpus[0].memory_used == 1024 * 2**20 and gpus[0].utilization == 37
    assert gpus[0].processes == ("pid 4242 (1000 MiB)",) and gpus[1].utilization is None
    assert "pid 4242" in gpus[0].line() and "80GB" in gpus[1].line()


def test_gpus_command_without_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this host has a GPU")
    result = subprocess.run([sys.executable, "-m", "xpm_train.cli", "gpus"], cwd=REPO,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PATH": os.path.dirname(sys.executable)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("No GPU")
