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

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .explain import Explanation, explain
    from .finder import NoLauncherError, find_launcher
    from .kinds import TYPES, LocalLauncherConfig, SlurmLauncherConfig
    from .loader import load_file, load_text
    from .lookup import load_launchers
    from .schema import LaunchersConfig, LauncherType
    from .yamlnodes import LaunchersConfigError

EXPORTS = {
    "Explanation": "explain", "explain": "explain",
    "NoLauncherError": "finder", "find_launcher": "finder",
    "TYPES": "kinds", "LocalLauncherConfig": "kinds", "SlurmLauncherConfig": "kinds",
    "load_file": "loader", "load_text": "loader",
    "load_launchers": "lookup",
    "LaunchersConfig": "schema", "LauncherType": "schema",
    "LaunchersConfigError": "yamlnodes",
}
"""Name -> the module of this package that defines it, imported on first use:
a job process that only needs one module (its ranks, its GPUs) imports only
that one, not the plan side (matching, ``launchers.yaml``, experimaestro's
launcher finder)"""


def __getattr__(name: str):
    if name not in EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


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
