"""Launchers: where a task runs, from its resource spec and ``launchers.yaml``.

A plan asks for resources with an experimaestro spec string, e.g.
``"duration=2h & cuda(mem=8G)*1 & cpu(cores=4)"``; the user declares once, in
``launchers.yaml``, what their machine and cluster offer; :func:`find_launcher`
picks the launcher. See docs/launchers.md.

Modules, one concept each: :mod:`.schema` (what the file declares),
:mod:`.loader` (reading and checking it), :mod:`.lookup` (which file),
:mod:`.match` (which launcher), :mod:`.finder` (the experimaestro launcher),
:mod:`.local` / :mod:`.tokens` / :mod:`.gpurun` / :mod:`.gpus` (local jobs,
host-wide reservations, GPU pinning, GPU inventory), :mod:`.slurm` (sbatch
options), :mod:`.explain` (why), :mod:`.testing` (tiny tasks for the tests).
"""

from .explain import Explanation, explain
from .finder import NoLauncherError, find_launcher
from .loader import load_file, load_text
from .lookup import load_launchers
from .schema import LaunchersConfig, LocalLauncherConfig, SlurmLauncherConfig
from .yamlnodes import LaunchersConfigError

__all__ = [
    "Explanation",
    "LaunchersConfig",
    "LaunchersConfigError",
    "LocalLauncherConfig",
    "NoLauncherError",
    "SlurmLauncherConfig",
    "explain",
    "find_launcher",
    "load_file",
    "load_launchers",
    "load_text",
]
