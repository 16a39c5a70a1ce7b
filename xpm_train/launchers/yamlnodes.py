"""YAML values that remember where they were written (file, line, field path).

``launchers.yaml`` is read with PyYAML's *composed* nodes rather than plain
``yaml.safe_load`` so that every problem can be reported as
``launchers.yaml:12: launchers[1].cpu.cores: must be ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import yaml

from ..errors import UserError


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a configuration file."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class LaunchersConfigError(UserError, ValueError):
    """A ``launchers.yaml`` is invalid; ``problems`` lists every issue found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"invalid launchers configuration:\n{lines}")


@dataclass(frozen=True)
class Node:
    """A YAML value with its location.

    ``value`` is a plain Python scalar, a ``dict[str, Node]`` or a ``list[Node]``.
    """

    value: Any
    file: str
    line: int
    path: str

    def child(self, key: str | int) -> str:
        """Field path of a child: ``a.b`` for a key, ``a[3]`` for an index."""
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def items(self) -> Iterator[tuple[str, "Node"]]:
        return iter(self.value.items())


@dataclass
class Problems:
    """Collects problems while a whole file is checked, then raises them at once."""

    found: list[Problem] = field(default_factory=list)

    def add(self, node: Node, message: str, *, field: str | None = None) -> None:
        self.found.append(
            Problem(node.file, node.line, field or node.path or "<top>", message)
        )

    def raise_if_any(self) -> None:
        """Raise every problem found, in file order."""
        if self.found:
            raise LaunchersConfigError(sorted(self.found, key=lambda p: p.line))


def read_nodes(text: str, file: str) -> Node | None:
    """Parse YAML ``text`` into located nodes (``None`` for an empty document).

    :raises LaunchersConfigError: on a YAML syntax error or a duplicated key
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 1
        raise LaunchersConfigError(
            [Problem(file, line, "<yaml>", f"not valid YAML: {e.problem or e}")]
        ) from None
    if root is None:
        return None
    problems = Problems()
    node = _convert(root, file, "", problems)
    problems.raise_if_any()
    return node


def _convert(node: yaml.Node, file: str, path: str, problems: Problems,
             line: int | None = None) -> Node:
    line = line or node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        here = Node({}, file, line, path)
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            key_path = here.child(str(key))
            if not isinstance(key, str):
                problems.add(Node(key, file, key_node.start_mark.line + 1, key_path),
                             f"keys must be text, got {key!r}")
                continue
            if key in here.value:
                problems.add(Node(key, file, key_node.start_mark.line + 1, key_path),
                             "appears twice (fix: keep a single entry)")
                continue
            # a field is reported at its key's line (a block value starts below it)
            here.value[key] = _convert(value_node, file, key_path, problems,
                                       line=key_node.start_mark.line + 1)
        return here
    if isinstance(node, yaml.SequenceNode):
        here = Node([], file, line, path)
        for index, item in enumerate(node.value):
            here.value.append(_convert(item, file, here.child(index), problems))
        return here
    return Node(_scalar(node), file, line, path)


def _scalar(node: yaml.Node) -> Any:
    """Python value of a scalar node, typed as ``yaml.safe_load`` would type it."""
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
