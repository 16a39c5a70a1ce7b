""".ci/run fails whenever a step of the README's test command fails.

Each test runs a copy of .ci/run in a temporary folder (Slurm off), so that
nothing touches this checkout's .venv.
"""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def ci_copy(tmp_path: Path) -> Path:
    (tmp_path / ".ci").mkdir(parents=True)
    shutil.copy(REPO / ".ci" / "run", tmp_path / ".ci" / "run")
    return tmp_path


def run_ci(root: Path, path: str = os.environ["PATH"]) -> subprocess.CompletedProcess:
    env = {**os.environ, "XPM_TRAIN_NO_SLURM": "1", "PATH": path, "PIP_NO_INDEX": "1"}
    return subprocess.run(["bash", str(root / ".ci" / "run")], env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_broken_install_fails_ci(tmp_path):
    """A real venv, then pip fails on an unreadable pyproject.toml (offline, about 6 s)."""
    root = ci_copy(tmp_path)
    (root / "pyproject.toml").write_text("[project\nname = ")
    result = run_ci(root)
    assert result.returncode != 0, result.stdout + result.stderr
    assert (root / ".venv" / "bin" / "pip").exists(), "the venv step should have run"
    assert ".ci/run: passed" not in result.stdout
    assert "FAILED" in result.stderr


def fake_python(tmp_path: Path, pip_rc: int, pytest_out: str, pytest_rc: int) -> str:
    """A `python3` on PATH whose `-m venv .venv` makes a .venv with scripted pip and python."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    script = bin_dir / "python3"
    script.write_text(f"""#!/bin/sh
mkdir -p .venv/bin
printf '#!/bin/sh\\nexit {pip_rc}\\n' > .venv/bin/pip
printf '#!/bin/sh\\necho "{pytest_out}"\\nexit {pytest_rc}\\n' > .venv/bin/python
chmod +x .venv/bin/pip .venv/bin/python
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return f"{bin_dir}:{os.environ['PATH']}"


@pytest.mark.parametrize("pip_rc, pytest_out, pytest_rc, passes", [
    (0, "3 passed, 1 skipped in 0.50s", 0, True),
    (1, "3 passed in 0.50s", 0, False),            # install failed: pytest must not count
    (0, "1 failed, 2 passed in 0.50s", 1, False),
    (0, "no tests ran in 0.01s", 5, False),         # pytest's exit code 5
    (0, "", 0, False),                              # exit 0 but no summary: nothing proven
], ids=["green", "pip-fails", "test-fails", "no-tests", "no-summary"])
def test_ci_status_follows_every_step(tmp_path, pip_rc, pytest_out, pytest_rc, passes):
    root = ci_copy(tmp_path / "repo")
    result = run_ci(root, fake_python(tmp_path, pip_rc, pytest_out, pytest_rc))
    assert (result.returncode == 0) == passes, result.stdout + result.stderr
    assert (".ci/run: passed" in result.stdout) == passes
    if pip_rc == 0 and pytest_out:
        assert f".ci/run: pytest summary: {pytest_out}" in result.stdout
