"""experimaestro's own lookup (the project's ``launchers.py``) when nothing
fits: the plan stops with the explanation of ``xpm-train launchers explain``,
not experimaestro's traceback."""

import os
import subprocess
import sys

import pytest
from experimaestro.exceptions import HandledException
from experimaestro.launcherfinder import LauncherRegistry
from experimaestro.launcherfinder import find_launcher as xpm_find_launcher
from experimaestro.launcherfinder.registry import LauncherNotFoundError

from xpm_train.launchers import NoLauncherError, explain

DEMO_SPECS = ["duration=1h & gpu(mem=4G)*1 & cpu(cores=4)",  # the experimaestro demo's params.yaml
              "duration=2h & cuda(mem=4G)*1 & cpu(cores=2)"]


@pytest.fixture
def cpu_only(use_local_launcher, repo_root, monkeypatch):
    """A machine without GPU (one local launcher ``box``), experimaestro's
    configuration folder at the repository (its ``launchers.py``)."""
    path = use_local_launcher(cores=2, gpus="")
    monkeypatch.setattr(LauncherRegistry, "CURRENT_CONFIG_DIR", None)
    LauncherRegistry.set_config_dir(repo_root)
    return path


@pytest.mark.parametrize("spec", DEMO_SPECS)
def test_nothing_fits_raises_the_explanation(cpu_only, spec):
    with pytest.raises(NoLauncherError) as raised:
        xpm_find_launcher(spec)
    assert isinstance(raised.value, LauncherNotFoundError)  # what a plan may catch
    assert isinstance(raised.value, HandledException)  # what run-experiment prints in one go
    message = str(raised.value)
    assert message == "no launcher fits:\n" + explain(spec).render()
    assert message.splitlines()[1] == f"spec: {spec}"
    assert "  box  no: needs 1 GPU(s), offers 0" in message
    assert message.splitlines()[-1].startswith("fix: ask for what a launcher offers")


def test_a_later_alternative_is_still_tried(cpu_only):
    launcher = xpm_find_launcher("cuda(mem=4G)*1 | duration=4h & cpu(cores=2)")
    assert str(launcher).startswith("LocalLauncher(box,")
    with pytest.raises(LauncherNotFoundError, match=r"(?s)alternative 1: .*alternative 2: "):
        xpm_find_launcher("cuda(mem=4G)*1 | cpu(cores=64)")


PLAN = '''
from experimaestro.experiments import ExperimentHelper, configuration
from experimaestro.experiments.configuration import ConfigurationBase
from experimaestro.launcherfinder import find_launcher


@configuration()
class Configuration(ConfigurationBase):
    launcher: str = "duration=3h & gpu(mem=4G)*1 & cpu(cores=2)"


def run(helper: ExperimentHelper, cfg: Configuration):
    find_launcher(cfg.launcher)
'''


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_the_demos_plan_stops_with_the_short_explanation(cpu_only, repo_root, tmp_path):
    """The demo's unchanged GPU spec on a machine without GPU, its plan run
    with experimaestro's lookup pointed at this project (no preflight): the
    explanation, not 51 lines of tracebacks."""
    plan = tmp_path / "demo"
    plan.mkdir()
    (plan / "experiment.py").write_text(PLAN)
    (plan / "params.yaml").write_text(
        f"id: demo\nfile: experiment\nlauncher: \"{DEMO_SPECS[0]}\"\n")
    result = subprocess.run([sys.executable, "-m", "experimaestro", "run-experiment",
                             "--xpm-config-dir", str(repo_root), "--workdir", str(tmp_path / "ws"),
                             str(plan / "params.yaml")], cwd=tmp_path, env=dict(os.environ),
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    expected = explain(DEMO_SPECS[0], config=cpu_only).render()
    assert f"Experiment failed: no launcher fits:\n{expected}" in result.stderr
