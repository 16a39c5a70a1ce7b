"""Value checks for typed params, run when a config is built (``.C(...)``),
so that a bad value fails in the plan, before anything is submitted.

Usage: ``lr: Annotated[Param[float], Positive()] = field(default=..., ...)``.
"""

from __future__ import annotations

from experimaestro.checkers import Checker

from .errors import UserError


class InvalidValue(UserError, ValueError):
    """A param value refused by a check (the message names the rule)."""


class Range(Checker):
    """``low <= value`` (or ``<``) and ``value < high`` (or ``<=``)."""

    def __init__(self, low=None, high=None, *, low_open=False, high_open=True):
        self.low, self.high = low, high
        self.low_open, self.high_open = low_open, high_open

    def check(self, value):
        for item in value if isinstance(value, (list, tuple)) else [value]:
            too_low = self.low is not None and (item <= self.low if self.low_open else item < self.low)
            too_high = self.high is not None and (item >= self.high if self.high_open else item > self.high)
            if too_low or too_high:
                raise InvalidValue(f"must be {self}, got {item!r}")
        return True

    def __str__(self):
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high}")
        return " and ".join(parts)


def Positive() -> Range:
    """``value > 0`` (for each element of a list)."""
    return Range(0, low_open=True)


def NonNegative() -> Range:
    """``value >= 0``."""
    return Range(0)


class DeviceName(Checker):
    """A torch device name: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Only the form is checked (in the plan): whether CUDA is present is
    decided where the job runs, which may be another host.
    """

    PATTERN = r"auto|cpu|mps|cuda(:\d+)?"

    def check(self, value):
        import re

        if not isinstance(value, str) or not re.fullmatch(self.PATTERN, value):
            raise InvalidValue(f"device {value!r} is not one of auto, cpu, cuda, cuda:N, mps")
        return True

    def __str__(self):
        return "a device name (auto, cpu, cuda, cuda:N, mps)"


class OneOf(Checker):
    """``value`` is one of ``choices``; ``hint``: how to get what the refused value asked for."""

    def __init__(self, *choices, hint: str = ""):
        self.choices, self.hint = choices, hint

    def check(self, value):
        if value not in self.choices:
            raise InvalidValue(f"must be {self}, got {value!r}" + (f": {self.hint}" if self.hint else ""))
        return True

    def __str__(self):
        return "one of " + ", ".join(repr(choice) for choice in self.choices)


def validated(cls):
    """Class decorator: experimaestro calls ``cls.__validate__`` when the
    config is submitted (its config class would otherwise find
    ``ConfigMixin``'s no-op first), so that a check that needs several params
    (an objective and its data) fails in the plan, before any job folder."""
    cls.C.__validate__ = cls.__validate__
    return cls
