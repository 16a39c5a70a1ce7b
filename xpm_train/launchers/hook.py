"""What experimaestro's launcher hook (the project's ``launchers.py``) runs.

experimaestro 2.7 (``LauncherRegistry.find``) parses a spec itself and calls
the hook once per ``|`` alternative until one returns a launcher; when none
does, it raises ``LauncherNotFoundError``, whose traceback through the plan
and experimaestro's CLI says nothing of why (51 lines for the demo's GPU spec
on a machine without GPU). Here the call for the last alternative raises
instead, when nothing fits, :class:`NoLauncherFits`: the explanation of
``xpm-train launchers explain`` (what was asked, why each launcher does not
fit, how to fix), which ``experimaestro run-experiment`` prints without a
traceback (a ``HandledException``) and which a plan catching experimaestro's
``LauncherNotFoundError`` still catches.
"""

from __future__ import annotations

import sys
from pathlib import Path

from experimaestro.exceptions import HandledException
from experimaestro.launcherfinder.registry import LauncherNotFoundError

from .finder import NoLauncherError, find_launcher_or_none


class NoLauncherFits(NoLauncherError, LauncherNotFoundError, HandledException):
    """No declared launcher runs any alternative of the spec experimaestro was given."""


def find_launcher(requirement, tags, start: Path):
    """experimaestro's ``find_launcher(requirement, tags)`` protocol: the launcher
    for one alternative, None when it fits nothing and others remain to try.

    :raises NoLauncherFits: nothing fits this alternative, the last one
    """
    launcher = find_launcher_or_none(requirement, tags, start=start)
    if launcher is not None:
        return launcher
    asked = the_whole_spec(requirement)
    if asked is None:
        return None
    from .explain import explain

    error = NoLauncherFits("no launcher fits:\n" + explain(asked, tuple(sorted(tags)), start=start).render())
    error.__suppress_context__ = True
    raise error


def the_whole_spec(requirement) -> str | None:
    """The spec experimaestro is looking launchers up for, when ``requirement``
    is its last alternative (None: another alternative follows, or the caller
    is not experimaestro's registry)."""
    frame = sys._getframe(1)
    for _ in range(4):  # this module, the hook, then LauncherRegistry.find
        frame = frame.f_back
        if frame is None:
            return None
        union = frame.f_locals.get("specs")
        alternatives = getattr(union, "requirements", None)
        if alternatives and any(r is requirement for r in alternatives):
            if alternatives[-1] is not requirement:
                return None
            from .match import describe

            given = frame.f_locals.get("input_specs") or ()
            if given and all(isinstance(spec, str) for spec in given):
                return " | ".join(given)
            return " | ".join(describe(r) for r in alternatives)
    return None
