"""experimaestro's launcher hook for this project.

experimaestro loads ``launchers.py`` from its configuration folder and calls
``find_launcher(requirements, tags)``. Pointing that folder here makes
experimaestro choose exactly as ``xpm_train.launchers.find_launcher``::

    experimaestro find-launchers --config . "duration=2h & cuda(mem=8G)*1"
    experimaestro run-experiment --xpm-config-dir . ...
    LauncherRegistry.set_config_dir(Path("."))  # then experimaestro's find_launcher(...)

The launchers are looked up as usual ($XPM_TRAIN_LAUNCHERS, then the
launchers.yaml beside this file and up to the git root, then the plan's
folder, the current folder and the workspace's, then
~/.config/xpm-train/launchers.yaml, then the built-in default: see
docs/launchers.md). When no launcher fits any alternative, the error is the
explanation of ``xpm-train launchers explain``; tasks submitted without a
launcher run on the launcher chosen for launchers.yaml's ``default_spec``.
"""

from pathlib import Path


def find_launcher(requirements, tags=frozenset()):
    """The launcher for ``requirements`` (None when it fits nothing and
    experimaestro has another alternative to try)."""
    from xpm_train.launchers.hook import find_launcher

    return find_launcher(requirements, tags, start=Path(__file__).resolve().parent)
