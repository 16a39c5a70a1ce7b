"""Lightning is optional and slow to import: no other task, no plan and not
xpm_train.lightning itself imports it; without it, the plan fails in one line
saying how to install it."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from helpers import REPO, run_experiment

PLAN = REPO / "experiments" / "lightning" / "params.yaml"


def test_no_module_but_the_task_process_imports_lightning():
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(REPO / 'experiments' / 'lightning')!r})\n"
        "import xpm_train, xpm_train.learn, xpm_train.evaluate, xpm_train.custom, xpm_train.tune,\\\n"
        "    xpm_train.tune.task, xpm_train.analysis, xpm_train.export, xpm_train.cli, xpm_train.plan\n"
        "import xpm_train.lightning, xpm_train.lightning.fit, digits_configs\n"
        "digits_configs.DigitsClassifier.C(hidden=8)\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert result.stdout.strip() == "", f"Lightning was imported: {result.stdout.strip()}"


def test_without_lightning_the_plan_fails_in_one_line(tmp_path):
    """Lightning hidden from the interpreter (sitecustomize): one line with the
    install command, no traceback, nothing written under jobs/."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\nsys.modules['lightning'] = None  # import lightning -> ImportError\n")
    workdir = tmp_path / "ws"
    result = run_experiment(PLAN, workdir, "tracking_uri=off", timeout=300, env={"PYTHONPATH": str(hide)})
    assert result.returncode != 0
    assert "pip install 'xpm-train[lightning]'" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    message = [line for line in result.stderr.splitlines() if "xpm-train[lightning]" in line]
    assert len(message) == 1 and "MissingLightning" in message[0], message
    assert not list((workdir / "jobs").glob("*/*")), "jobs were written"


def test_the_test_extra_installs_lightning():
    """CI installs '.[test]': it must bring the lightning extra."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert any(requirement.startswith("lightning") for requirement in extras["lightning"])
    assert "xpm-train[lightning]" in extras["test"]
