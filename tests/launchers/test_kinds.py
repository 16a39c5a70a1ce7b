"""A launcher type is one module plus one line of ``kinds.TYPES``: the example of
docs/launchers.md ("Adding a launcher type") is run as such a module, and every
generic part (reading, matching, explain, list, doctor, the experimaestro
launcher) takes it without another change."""

import re
import textwrap
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from xpm_train import doctor
from xpm_train.cli import main
from xpm_train.launchers import LaunchersConfigError, NoLauncherError, explain, find_launcher, load_text
from xpm_train.launchers.kinds import TYPES, LocalLauncherConfig, SlurmLauncherConfig
from xpm_train.launchers.loader import entry_keys
from xpm_train.launchers.process import LocalLauncher

DOC = Path(__file__).resolve().parents[2] / "docs" / "launchers.md"
FILE = """\
launchers:
  - {name: cpus, type: cpuonly, tags: [cpu], cpu: {cores: 4, memory: 8G}, max_time: 1h}
"""


@pytest.fixture
def cpuonly(monkeypatch):
    """The documented example as module xpm_train.launchers.kinds.cpuonly, in TYPES."""
    section = DOC.read_text().split("## Adding a launcher type", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    module = types.ModuleType("xpm_train.launchers.kinds.cpuonly")
    module.__package__ = "xpm_train.launchers.kinds"
    exec(compile(code, str(DOC), "exec"), module.__dict__)
    cls = module.CpuOnlyLauncherConfig
    monkeypatch.setitem(TYPES, cls.type, cls)  # the one line of kinds/__init__.py
    return cls


def test_the_fields_are_the_allowed_keys():
    assert entry_keys(LocalLauncherConfig) == (
        "type", "name", "tags", "priority", "max_time", "cpu", "gpus", "max_jobs")
    assert entry_keys(SlurmLauncherConfig) == (
        "type", "name", "tags", "priority", "max_time", "partition", "account", "qos",
        "constraint", "features", "cpu", "gpus", "sbatch", "signal", "poll_interval", "binpath",
        "max_submitted", "max_jobs", "pool")


def test_a_new_type_is_read_and_checked(cpuonly):
    (launcher,) = load_text(FILE).launchers
    assert isinstance(launcher, cpuonly) and (launcher.cores, launcher.tags) == (4, ("cpu",))
    with pytest.raises(LaunchersConfigError) as info:
        load_text(FILE.replace("max_time: 1h", "gpus: 2"))
    assert ("launchers.yaml:2: launchers[0].gpus: unknown key 'gpus' (fix: allowed keys are "
            "type, name, tags, priority, max_time, cpu)") in str(info.value)
    with pytest.raises(LaunchersConfigError, match="must be one of local, slurm, cpuonly"):
        load_text(FILE.replace("cpuonly", "pbs"))


def test_a_new_type_is_matched_explained_and_launched(cpuonly):
    config = load_text(FILE)
    launcher = find_launcher("cpu(cores=2)", config=config)
    assert isinstance(launcher, LocalLauncher)
    assert launcher.devices == [] and launcher.reservation.cores == 2
    with pytest.raises(NoLauncherError, match="needs 1 GPU"):
        find_launcher("cuda(mem=1G)*1", config=config)
    with pytest.raises(NoLauncherError, match="runs one process"):
        find_launcher("processes=2 & cpu(cores=2)", config=config)
    explanation = explain("duration=30m & cpu(cores=3)", config=config)
    assert explanation.chosen == "cpus"
    assert explanation.plan == ('CUDA_VISIBLE_DEVICES=""', "3 thread(s)")


def test_a_new_type_is_listed_and_checked_by_doctor(cpuonly, tmp_path):
    path = tmp_path / "launchers.yaml"
    path.write_text(FILE)
    result = CliRunner().invoke(main, ["launchers", "list", "--file", str(path)])
    assert result.exit_code == 0, result.output
    row = result.output.splitlines()[2]
    assert row.split()[:6] == ["cpus", "cpuonly", "0", "cpu", "4", "8G"]
    assert row.endswith("this host, CPU only")
    assert doctor.check_launcher_types(load_text(FILE), which=lambda command: None) == []


def test_built_in_types_are_the_documented_ones():
    assert set(TYPES) == {"local", "slurm"}
    table = DOC.read_text().split("| `type` | yes |", 1)[1].split("\n", 1)[0]
    assert all(f"`{kind}`" in table for kind in TYPES)


SLURM_SIGNALS = """\
launchers:
  - {name: late, type: slurm, tags: [late], partition: p, cpu: {cores: 2, memory: 4G}, max_time: 2h}
  - {name: none, type: slurm, tags: [none], partition: p, cpu: {cores: 2, memory: 4G}, max_time: 2h,
     signal: false}
  - {name: batch, type: slurm, tags: [batch], partition: p, cpu: {cores: 2, memory: 4G}, max_time: 2h,
     signal: "B:USR1@60"}
  - {name: early, type: slurm, tags: [early], partition: p, cpu: {cores: 2, memory: 4G}, max_time: 2h,
     signal: "USR1@30"}
"""


@pytest.mark.parametrize("tag, spec, warned", [
    ("late", "duration=1m", "signal: USR1@60 asks for the signal 60s before a time limit of 60s"),
    ("none", "duration=1h", "no signal: is set"),
    ("batch", "duration=1h", "signal: B:USR1@60 reaches only the batch shell"),
    ("early", "duration=1m", None),
    ("late", "duration=2m", None),
])
def test_a_slurm_signal_that_cannot_arrive_before_the_time_limit_is_one_warning_at_submit(
        tag, spec, warned, caplog, monkeypatch):
    """A resumable task submitted to a Slurm launcher whose warning signal
    comes too late (or never reaches the task) gets one line saying that its
    jobs will be killed without a checkpoint; a plain task gets none."""
    from xpm_train.launchers.kinds import slurm

    monkeypatch.setattr(slurm, "WARNED", set())
    launcher = find_launcher(spec, tags=[tag], config=load_text(SLURM_SIGNALS))
    resumable = types.SimpleNamespace(resumable=True, config=types.SimpleNamespace())
    with caplog.at_level("WARNING", logger="xpm_train.launchers"):
        launcher.onSubmit(types.SimpleNamespace(resumable=False, config=None))
        assert caplog.records == []
        launcher.onSubmit(resumable)
        launcher.onSubmit(resumable)  # once per launcher
    if warned is None:
        assert caplog.records == []
        return
    record, = caplog.records
    message = record.getMessage()
    assert "\n" not in message and message.startswith(f"Slurm launcher '{tag}': {warned}")
    assert "will be killed at their time limit without a checkpoint" in message
