"""Launchers: where a task runs, from its resource spec and ``launchers.yaml``.

A plan asks for resources with an experimaestro spec string, e.g.
``"duration=2h & cuda(mem=8G)*1 & cpu(cores=4)"``; the user declares once, in
``launchers.yaml``, what their machine and cluster offer; :func:`find_launcher`
picks the launcher. See docs/launchers.md.

Modules, one concept each: :mod:`.schema` (what the file declares, and the
contract of a launcher type), :mod:`.kinds` (one module per ``type:``:
:mod:`.kinds.local`, :mod:`.kinds.slurm`), :mod:`.loader` / :mod:`.readers`
(reading and checking the file), :mod:`.lookup` (which file), :mod:`.match`
(which launcher), :mod:`.finder` (the experimaestro launcher), :mod:`.explain`
(why); for local jobs :mod:`.process` (their experimaestro launcher and
processes), :mod:`.tokens` (host-wide reservations), :mod:`.gpurun` /
:mod:`.gpus` (GPU pinning, GPU inventory); :mod:`.testing` (tiny tasks for
the tests). The warm start (local jobs forked from a server that imported
torch once) is its own package, :mod:`xpm_train.warm`.
"""

from .explain import Explanation, explain
from .finder import NoLauncherError, find_launcher
from .loader import load_file, load_text
from .lookup import load_launchers
from .schema import LaunchersConfig, LauncherType
from .kinds import TYPES, LocalLauncherConfig, SlurmLauncherConfig
from .yamlnodes import LaunchersConfigError

__all__ = [
    "Explanation",
    "LaunchersConfig",
    "LaunchersConfigError",
    "LauncherType",
    "LocalLauncherConfig",
    "NoLauncherError",
    "SlurmLauncherConfig",
    "TYPES",
    "explain",
    "find_launcher",
    "load_file",
    "load_launchers",
    "load_text",
]
