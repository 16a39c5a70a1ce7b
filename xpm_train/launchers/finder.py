"""From a spec to an experimaestro ``Launcher``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from ..errors import UserError
from .match import Choice, Spec, choose
from .schema import LaunchersConfig

if TYPE_CHECKING:
    from experimaestro.launchers import Launcher


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
    choice = choose(config, spec, tags)
    if choice is None:
        from .explain import explain

        raise NoLauncherError(explain(spec, tags, config=config).render())
    return build_launcher(choice)


def find_launcher_or_none(spec: Spec, tags: Iterable[str] = (), *,
                          start: Path | None = None) -> "Launcher | None":
    """Same as :func:`find_launcher`, None when nothing fits (experimaestro's protocol)."""
    config = resolve_config(None, start)
    choice = choose(config, spec, tags)
    return build_launcher(choice) if choice else None


def resolve_config(config: LaunchersConfig | Path | None, start: Path | None) -> LaunchersConfig:
    """A ``LaunchersConfig`` from a config, a file path, or the lookup order."""
    if isinstance(config, LaunchersConfig):
        return config
    if config is not None:
        from .loader import load_file

        return load_file(Path(config))
    from .lookup import load_launchers

    return load_launchers(start)


def build_launcher(choice: Choice) -> "Launcher":
    """The experimaestro launcher running jobs of ``choice``."""
    launcher = choice.launcher.launcher(choice.requirement, choice.layout)
    if choice.layout.world_size > 1:
        from ..distributed import RANKS_ENV
        from .ranks import submit_check

        # The job script sets it: the task learns its world size (xpm_train.distributed)
        launcher.setenv(RANKS_ENV, str(choice.layout.world_size))
        launcher.addListener(submit_check(choice.layout))
    return launcher
