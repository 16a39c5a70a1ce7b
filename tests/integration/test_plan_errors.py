"""Bad input to a plan fails fast, says what to fix, and writes no job;
failed jobs make the plan exit non-zero with a summary."""

from __future__ import annotations

import pytest

from helpers import REPO, run_experiment, xpm_train

pytestmark = pytest.mark.integration
PARAMS = REPO / "experiments" / "quickstart" / "params.yaml"


@pytest.mark.parametrize(
    "content, message",
    [
        ("epcohs: 3", "unknown key 'epcohs' (did you mean 'epochs'?)"),
        ("epochs: abc", "key 'epochs'"),
        ("epochs: -1", "'epochs' must be > 0"),
        ("lr: []", "'lr' is an empty list"),
        ("lr: [0.0]", "'lr' must be > 0"),
        ("hidden_dim: 32", "key 'hidden_dim': Input should be a valid list"),
        ("val_fraction: 1.5", "'val_fraction' must be in [0, 1)"),
    ],
)
def test_malformed_params_are_refused_before_any_job(tmp_path, content, message):
    params = tmp_path / "params.yaml"
    params.write_text(f"imports: [{PARAMS}]\n{content}\n")
    workdir = tmp_path / "ws"
    result = run_experiment(params, workdir, timeout=120)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-2000:]
    assert str(params) in result.stderr  # the file is named
    assert "Traceback" not in result.stderr
    assert not (workdir / "jobs").exists() or not any((workdir / "jobs").iterdir())


def test_command_line_override_is_checked_too(tmp_path):
    result = run_experiment(PARAMS, tmp_path / "ws", "epcohs=3", timeout=120)
    assert result.returncode != 0 and "unknown key 'epcohs'" in result.stderr


@pytest.mark.parametrize("target, message", [("experiments/nope", "no such file"),
                                             ("experiments/quickstart/nope.yaml", "no such file")])
def test_missing_params_file(tmp_path, target, message):
    result = xpm_train("run", target, "--workdir", str(tmp_path / "ws"))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "ws").exists()


def test_missing_plan_file(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("id: broken\nfile: no_such_plan\npre_experiment: xpm_train.preflight\n")
    result = xpm_train("run", str(params), "--workdir", str(tmp_path / "ws"))
    assert result.returncode == 2 and "no_such_plan.py does not exist" in result.stderr


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def test_failed_jobs_fail_the_plan_with_a_summary(tmp_path):
    """device=cuda passes the plan's checks (the job may run on another host)
    and fails in the job on a host without CUDA."""
    if cuda_available():
        pytest.skip("needs a host without CUDA (the jobs must fail)")
    workdir = tmp_path / "ws"
    result = run_experiment(PARAMS, workdir, "epochs=1", "hidden_dim=[16]", "lr=[0.01]",
                            "device=cuda", timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "2 job(s) failed" in result.stderr
    assert "xpm_train.learn.learn/" in result.stderr and "learn.err" in result.stderr
    assert "not run, a job it depends on failed" in result.stderr
    log = next((workdir / "jobs" / "xpm_train.learn.learn").glob("*/learn.err")).read_text()
    assert "CUDA is not available on this host" in log
