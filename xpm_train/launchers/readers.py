"""Reading one field of ``launchers.yaml``: the value readers every launcher type uses.

A reader takes the field's :class:`~.yamlnodes.Node` and the file's
:class:`~.yamlnodes.Problems`; it returns the checked value, or records its
problem (file, line, field, fix) and returns :data:`Missing`, so that every
problem of a file is reported at once.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Callable

from .units import parse_duration, parse_memory
from .yamlnodes import Node, Problems

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

Missing = object()
"""Marks a value that is absent or invalid (its problem is already recorded)."""

Reader = Callable[[Node, Problems], Any]


# --- field access


def required(parent: Node | None, key: str, problems: Problems, read: Reader) -> Any:
    """The value of ``parent[key]`` read by ``read``; a problem when absent."""
    if parent is None or not isinstance(parent.value, dict):
        return Missing
    node = parent.value.get(key)
    if node is None:
        problems.add(parent, "is required", field=parent.child(key))
        return Missing
    return read(node, problems)


def optional(parent: Node | None, key: str, problems: Problems, read: Reader,
             default: Any = Missing) -> Any:
    """The value of ``parent[key]`` read by ``read``; ``default`` when absent or null."""
    if parent is None or not isinstance(parent.value, dict):
        return default
    node = parent.value.get(key)
    if node is None or node.value is None:
        return default
    return read(node, problems)


def is_mapping(node: Node, problems: Problems, expected: str) -> bool:
    if isinstance(node.value, dict):
        return True
    problems.add(node, f"must be {expected}, got {shown(node)}")
    return False


def unknown_keys(node: Node, allowed: tuple[str, ...], problems: Problems) -> None:
    """A problem for each key of ``node`` not in ``allowed``, with the closest one."""
    for key, child in node.items():
        if key in allowed:
            continue
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        problems.add(child, f"unknown key '{key}' (fix: {hint}allowed keys are "
                     f"{', '.join(allowed)})")


def shown(node: Node) -> str:
    """A value as a message shows it: ``'high' (str)``, ``a mapping``."""
    value = node.value
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{value!r} ({type(value).__name__})"


# --- value readers (each records its own problem and returns Missing when wrong)


def mapping(allowed: tuple[str, ...]) -> Reader:
    """A mapping whose keys are among ``allowed``."""
    def read(node: Node, problems: Problems):
        if not is_mapping(node, problems, f"a mapping with {', '.join(allowed)}"):
            return Missing
        unknown_keys(node, allowed, problems)
        return node.value
    return read


def integer(minimum: int | None = None, *, auto_ok: bool = False) -> Reader:
    def read(node: Node, problems: Problems):
        value = node.value
        if auto_ok and value == "auto":
            return "auto"
        if isinstance(value, bool) or not isinstance(value, int):
            problems.add(node, f"must be an integer{' or auto' if auto_ok else ''}"
                         f", got {shown(node)} (fix: write a whole number, e.g. 4)")
            return Missing
        if minimum is not None and value < minimum:
            kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            problems.add(node, f"must be {kind}, got {value} (fix: e.g. "
                         f"{max(minimum, 4)}{' or auto' if auto_ok else ''})")
            return Missing
        return value
    return read


def positive_number(node: Node, problems: Problems):
    value = node.value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        problems.add(node, f"must be a positive number of seconds, got {shown(node)}"
                     " (fix: e.g. 60)")
        return Missing
    return float(value)


def text(node: Node, problems: Problems):
    if not isinstance(node.value, str) or not node.value.strip():
        problems.add(node, f"must be a non-empty text, got {shown(node)}")
        return Missing
    return node.value.strip()


def name(node: Node, problems: Problems):
    value = text(node, problems)
    if value is not Missing and not NAME_RE.fullmatch(value):
        problems.add(node, f"{value!r} is not a valid name (fix: use letters, digits, "
                     "'_', '.', '-', e.g. 'gpu-partition')")
        return Missing
    return value


def choice(*choices: str) -> Reader:
    def read(node: Node, problems: Problems):
        if node.value not in choices:
            problems.add(node, f"must be one of {', '.join(choices)}, got {shown(node)}")
            return Missing
        return node.value
    return read


def words(node: Node, problems: Problems):
    """A word or a list of words (tags, features)."""
    items = node.value if isinstance(node.value, list) else [node]
    result = []
    for item in items:
        if not isinstance(item.value, str) or not NAME_RE.fullmatch(item.value):
            problems.add(item, f"tags must be words (letters, digits, _ . -), got "
                         f"{shown(item)} (fix: e.g. tags: [gpu, fast])")
            return Missing
        result.append(item.value)
    return tuple(result)


def memory(*, auto_ok: bool = False) -> Reader:
    def read(node: Node, problems: Problems):
        if auto_ok and node.value == "auto":
            return "auto"
        try:
            if isinstance(node.value, bool) or not isinstance(node.value, (str, int)):
                raise ValueError("not a size")
            value = parse_memory(str(node.value))
        except ValueError as e:
            problems.add(node, f"must be a memory size such as 64G or 512MiB, got "
                         f"{shown(node)}: {e}")
            return Missing
        if value <= 0:
            problems.add(node, f"must be a positive memory size, got {node.value!r}")
            return Missing
        return value
    return read


def duration(node: Node, problems: Problems):
    value = node.value
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    try:
        if not isinstance(value, str):
            raise ValueError("not a duration")
        seconds = parse_duration(value)
        if seconds <= 0:
            raise ValueError("must be positive")
        return seconds
    except ValueError as e:
        problems.add(node, f"must be a duration such as 2d, 48h or 30m, got {shown(node)}"
                     f": {e}")
        return Missing


def spec(node: Node, problems: Problems):
    """A resource spec string that experimaestro's parser accepts."""
    from .match import parse_spec

    if not isinstance(node.value, str):
        problems.add(node, f"must be a spec string, got {shown(node)}")
        return Missing
    try:
        parse_spec(node.value)
    except ValueError as e:
        problems.add(node, f"cannot parse spec {node.value!r}: {e} (fix: e.g. "
                     "\"duration=2h & cuda(mem=8G)*1 & cpu(cores=4)\")")
        return Missing
    return node.value
