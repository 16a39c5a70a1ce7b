"""Tasks a plan submits without ``launcher=`` go through launchers.yaml
(experimaestro would run them with its direct launcher: no reservation)."""

import logging

import pytest
from experimaestro import experiment
from experimaestro.launcherfinder import LauncherRegistry
from experimaestro.launcherfinder import find_launcher as xpm_find_launcher

from xpm_train.launchers import NoLauncherError, find_launcher
from xpm_train.launchers.finder import use_for_tasks_without_launcher
from xpm_train.launchers.process import LocalLauncher
from xpm_train.launchers.testing import Square

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DEFAULT = "default_spec: \"duration=10m & cpu(cores=1, mem=100M)\"\n"


def reserved(job) -> dict:
    """What a job reserves from the host-wide counters: {resource: share}."""
    return dict((r, s) for r, s, _ in job.launcher.reservation.shares)


def submitted_without_launcher(workdir, before=lambda: None):
    with experiment(workdir, "no-launcher", no_environmental_impact=True) as xp:
        before()
        task = Square.C(x=4).submit()
        xp.wait()
    return task.__xpm__.job


def test_a_task_without_launcher_gets_the_default_specs_launcher(
        use_local_launcher, fresh_scheduler, tmp_path, caplog):
    """As soon as the plan looks a launcher up (here: xpm-train's
    find_launcher), a task submitted without one is reserved and started as
    launchers.yaml says for its default_spec."""
    path = use_local_launcher(cores=2, gpus="")
    path.write_text(DEFAULT + path.read_text())
    with caplog.at_level(logging.INFO, logger="xpm_train.launchers"):
        job = submitted_without_launcher(tmp_path / "xp", lambda: find_launcher("cpu(cores=2)"))
    assert isinstance(job.launcher, LocalLauncher) and job.launcher.config.name == "box"
    assert reserved(job)["cores"] == 1 and (job.path / "result.json").is_file()
    assert "os.environ.setdefault(_name, _threads)" in (job.path / f"{job.name}.py").read_text()
    assert (f"Tasks submitted without launcher= run on {job.launcher} (launchers.yaml's default_spec "
            f"'duration=10m & cpu(cores=1, mem=100M)'; launchers from {path})") in caplog.text


def test_without_a_lookup_or_default_spec_preflights_hook_still_applies(
        use_local_launcher, fresh_scheduler, tmp_path):
    """``pre_experiment: xpm_train.preflight`` installs it before the plan runs
    (a plan that never calls find_launcher); no default_spec: no requirement."""
    use_local_launcher(cores=2, gpus="")
    job = submitted_without_launcher(tmp_path / "xp", use_for_tasks_without_launcher)
    assert isinstance(job.launcher, LocalLauncher) and (job.path / "result.json").is_file()


def test_through_experimaestros_own_lookup(use_local_launcher, fresh_scheduler, repo_root,
                                           tmp_path, monkeypatch):
    """The experimaestro demo: experimaestro's find_launcher (through the
    project's launchers.py) for Learn, Evaluate submitted without launcher."""
    use_local_launcher(cores=2, gpus="")
    monkeypatch.setattr(LauncherRegistry, "CURRENT_CONFIG_DIR", None)
    LauncherRegistry.set_config_dir(repo_root)
    job = submitted_without_launcher(tmp_path / "xp", lambda: xpm_find_launcher("cpu(cores=1)"))
    assert isinstance(job.launcher, LocalLauncher) and job.launcher.config.name == "box"


def test_a_launcher_given_to_the_experiment_is_kept(use_local_launcher, fresh_scheduler, tmp_path):
    use_local_launcher(cores=2, gpus="")
    mine = find_launcher("cpu(cores=2)")
    with experiment(tmp_path / "xp", "given", launcher=mine, no_environmental_impact=True) as xp:
        find_launcher("cpu(cores=1)")
        assert xp.workspace.launcher is mine


def test_a_default_spec_nothing_fits_fails_the_tasks_without_launcher_only(
        use_local_launcher, fresh_scheduler, tmp_path):
    """Submitting a task without launcher= fails with the explanation; tasks
    given their launcher are submitted as before."""
    path = use_local_launcher(cores=2, gpus="")
    path.write_text('default_spec: "cuda(mem=4G)*1"\n' + path.read_text())
    with experiment(tmp_path / "xp", "nothing-fits", no_environmental_impact=True) as xp:
        task = Square.C(x=2).submit(launcher=find_launcher("cpu(cores=1)"))
        with pytest.raises(NoLauncherError, match=r"(?s)a task submitted without launcher= asks for "
                           r"launchers.yaml's default_spec 'cuda\(mem=4G\)\*1'.*box  no: needs 1 GPU"):
            Square.C(x=3).submit()
        xp.wait()
    assert (task.__xpm__.job.path / "result.json").is_file()
