"""The outcome of one diagnostic check: what ``xpm-train doctor`` prints, one
line per check.

It sits below the CLI so that what knows how to check itself (a launcher
type's ``doctor``, :mod:`xpm_train.launchers.kinds`) returns a :class:`Check`
without importing the CLI-level :mod:`xpm_train.doctor`, which imports the
launchers to run their checks. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

OK, WARN, FAIL = "OK", "WARN", "FAIL"


@dataclass(frozen=True)
class Check:
    """The outcome of one check."""

    name: str
    status: str
    """OK, WARN or FAIL"""
    message: str
    fix: str = ""

    def line(self) -> str:
        """One line: status, name, what was found and, unless OK, the fix."""
        fix = f" -> fix: {self.fix}" if self.fix and self.status != OK else ""
        return f"{self.status:<4}  {self.name:<13} {self.message}{fix}"
