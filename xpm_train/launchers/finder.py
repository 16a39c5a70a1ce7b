"""From a spec to an experimaestro ``Launcher``, and the launcher of the
tasks a plan submits without ``launcher=``.

experimaestro gives a task submitted without a launcher its workspace's
launcher, by default a ``DirectLauncher``: the job would run outside
launchers.yaml and the host-wide reservations. The first use of the launchers
in an experiment (:func:`find_launcher`, experimaestro's hook
``launchers.py``, or ``pre_experiment: xpm_train.preflight`` before the plan
runs) replaces that default with the launcher launchers.yaml chooses for its
``default_spec`` (no ``default_spec``: no requirement), and logs it once;
when nothing fits it, submitting a task without ``launcher=`` fails with the
explanation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from ..errors import UserError
from .lookup import resolve_config  # noqa: F401 - also this module's API (xpm-train launchers)
from .match import Choice, Spec, choose
from .schema import LaunchersConfig

if TYPE_CHECKING:
    from experimaestro.launchers import Launcher


logger = logging.getLogger("xpm_train.launchers")


class NoLauncherError(UserError, LookupError):
    """No declared launcher runs the spec; the message explains why, per launcher."""


def find_launcher(spec: Spec = None, tags: Iterable[str] = (), *,
                  config: LaunchersConfig | Path | None = None,
                  start: Path | None = None) -> "Launcher":
    """The experimaestro launcher for ``spec`` (e.g. ``"duration=2h & cuda(mem=8G)*1"``).

    :param spec: spec string or experimaestro ``HostRequirement``; empty means
        the file's ``default_spec`` (or no requirement)
    :param tags: only launchers having all these tags are considered
    :param config: launchers to choose from (a ``LaunchersConfig`` or a file);
        default: looked up as :mod:`.lookup` says, from ``start`` or the cwd
    :raises NoLauncherError: when no launcher fits (message: the explanation)
    :raises LaunchersConfigError: when the launchers file is invalid
    """
    config = resolve_config(config, start)
    use_for_tasks_without_launcher(config)
    choice = choose(config, spec, tags)
    if choice is None:
        from .explain import explain

        raise NoLauncherError(explain(spec, tags, config=config).render())
    return build_launcher(choice)


def find_launcher_or_none(spec: Spec, tags: Iterable[str] = (), *,
                          start: Path | None = None) -> "Launcher | None":
    """Same as :func:`find_launcher`, None when nothing fits (experimaestro's protocol)."""
    config = resolve_config(None, start)
    use_for_tasks_without_launcher(config)
    choice = choose(config, spec, tags)
    return build_launcher(choice) if choice else None


def use_for_tasks_without_launcher(config: LaunchersConfig | None = None) -> None:
    """In a running experiment whose workspace launcher is still
    experimaestro's default (a ``DirectLauncher``), make the launcher that
    ``config`` (default: the lookup's) chooses for its ``default_spec`` the
    launcher of the tasks submitted without ``launcher=``. Nothing outside an
    experiment, or when the workspace was given another launcher."""
    from .lookup import current_experiment

    xp = current_experiment()
    if xp is None:
        return
    from experimaestro.launchers.direct import DirectLauncher

    workspace = xp.workspace
    if type(workspace.launcher) is not DirectLauncher:
        return
    config = resolve_config(config, None)
    spec = f"launchers.yaml's default_spec {config.default_spec!r}" if config.default_spec \
        else "no requirement: launchers.yaml has no default_spec"
    choice = choose(config, None)
    if choice is None:
        from .explain import explain

        workspace.launcher = refusing_launcher(
            f"a task submitted without launcher= asks for {spec}, and no launcher fits it "
            f"(give it launcher=find_launcher(SPEC), or a default_spec that fits):\n"
            f"{explain(None, config=config).render()}")
        return
    workspace.launcher = build_launcher(choice)
    logger.info("Tasks submitted without launcher= run on %s (%s; launchers from %s)",
                workspace.launcher, spec, config.source)


def refusing_launcher(message: str) -> "Launcher":
    """The workspace launcher when nothing fits the default spec: submitting a
    task without ``launcher=`` raises :class:`NoLauncherError` (``message``);
    a plan that gives every task its launcher is not stopped."""
    from experimaestro.connectors.local import LocalConnector
    from experimaestro.launchers.direct import DirectLauncher

    class NoLauncherForTasksWithoutOne(DirectLauncher):
        def onSubmit(self, job):
            raise NoLauncherError(message)

    return NoLauncherForTasksWithoutOne(LocalConnector.instance())


def build_launcher(choice: Choice) -> "Launcher":
    """The experimaestro launcher running jobs of ``choice``."""
    launcher = choice.launcher.launcher(choice.requirement, choice.layout)
    if choice.layout.world_size > 1:
        from .ranks import RANKS_ENV, submit_check

        # The job script sets it: the task learns its world size (xpm_train.distributed)
        launcher.setenv(RANKS_ENV, str(choice.layout.world_size))
        launcher.addListener(submit_check(choice.layout))
    return launcher
