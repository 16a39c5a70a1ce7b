"""Reading and checking ``launchers.yaml`` (see :mod:`.schema` for its layout).

The generic part lives here: the top level, each entry's ``type:`` (a key of
:data:`.kinds.TYPES`), its keys against its type's fields, the fields every
launcher has, and unique names; each type reads its own keys.

Every problem of a file is collected and reported at once, each with file,
line and field, e.g.::

    launchers.yaml:12: launchers[1].cpu.cores: must be a positive integer, got -4 (fix: ...)

so that a bad file stops everything before anything is submitted.
"""

from __future__ import annotations

from pathlib import Path

from . import readers as r
from .schema import LaunchersConfig, LauncherType, allowed_keys
from .kinds import TYPES
from .yamlnodes import LaunchersConfigError, Node, Problems, read_nodes

TOP_KEYS = ("launchers", "default_spec")


def load_file(path: Path) -> LaunchersConfig:
    """Read and check the launchers file at ``path``.

    :raises LaunchersConfigError: listing every problem (file, line, field)
    """
    return load_text(Path(path).read_text(), str(path))


def load_text(text: str, file: str = "launchers.yaml") -> LaunchersConfig:
    """Read and check launchers YAML ``text`` (``file`` names it in messages)."""
    root = read_nodes(text, file)
    problems = Problems()
    if root is None:
        problems.add(Node(None, file, 1, ""), "the file is empty (fix: add a 'launchers:' list)",
                     field="launchers")
        problems.raise_if_any()
    config = _read_top(root, problems)
    problems.raise_if_any()
    return config


def _read_top(root: Node, problems: Problems) -> LaunchersConfig:
    if not r.is_mapping(root, problems, "a mapping with a 'launchers:' list"):
        return LaunchersConfig((), root.file)
    r.unknown_keys(root, TOP_KEYS, problems)
    default_spec = r.optional(root, "default_spec", problems, r.spec)
    launchers_node = root.value.get("launchers")
    if launchers_node is None:
        problems.add(root, "is missing (fix: add a 'launchers:' list)", field="launchers")
        return LaunchersConfig((), root.file)
    if not isinstance(launchers_node.value, list) or not launchers_node.value:
        problems.add(launchers_node, "must be a non-empty list of launchers"
                     f", got {r.shown(launchers_node)} (fix: start each entry with '- name: ...')")
        return LaunchersConfig((), root.file)
    launchers = [_read_launcher(node, problems) for node in launchers_node.value]
    _unique_names(launchers_node, launchers, problems)
    return LaunchersConfig(
        tuple(launcher for launcher in launchers if launcher is not None),
        root.file,
        None if default_spec is r.Missing else default_spec,
    )


def _read_launcher(node: Node, problems: Problems) -> LauncherType | None:
    if not r.is_mapping(node, problems, "a launcher mapping (name, type, ...)"):
        return None
    kind = r.required(node, "type", problems, r.choice(*TYPES))
    if kind is r.Missing:
        # Unknown type: still name the keys no type has
        every_key = {k: None for cls in TYPES.values() for k in entry_keys(cls)}
        r.unknown_keys(node, tuple(every_key), problems)
        return None
    cls = TYPES[kind]
    r.unknown_keys(node, entry_keys(cls), problems)
    common = dict(
        name=r.required(node, "name", problems, r.name),
        tags=r.optional(node, "tags", problems, r.words, ()),
        priority=r.optional(node, "priority", problems, r.integer(), 0),
        max_time=r.optional(node, "max_time", problems, r.duration, 0),
        where=f"{node.file}:{node.line}",
    )
    return cls.read(node, problems, common)


def entry_keys(cls: type[LauncherType]) -> tuple[str, ...]:
    """The keys an entry of type ``cls`` may have: ``type`` and its fields' keys."""
    return ("type", *allowed_keys(cls))


def _unique_names(list_node: Node, launchers: list, problems: Problems) -> None:
    seen: set[str] = set()
    for node, launcher in zip(list_node.value, launchers):
        if launcher is None:
            continue
        if launcher.name in seen:
            problems.add(node.value["name"], f"launcher name {launcher.name!r} is used twice"
                         " (fix: give each launcher its own name)")
        seen.add(launcher.name)


__all__ = ["load_file", "load_text", "LaunchersConfigError"]
