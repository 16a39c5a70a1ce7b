"""No import circle in ``xpm_train`` (the project's rule; issue 27 item 4
checked it for ``xpm_train/launchers`` first).

The walk reads every module of ``xpm_train`` with :mod:`ast` (nothing is
imported) and follows both module-level imports and imports inside functions:
a function-level import only postpones a circle to the first call, it does not
remove the layering fault, so it counts. Imports under ``if TYPE_CHECKING:``
do not count: they never run, so they tie no start-up order and cannot fail at
import time; they only name a type for the annotations.

A circle is a strongly connected component of the graph "module A imports
module B"; importing ``pkg.mod`` also imports ``pkg/__init__.py``, so that edge
is drawn too. The test fails on any component of more than one module, and
names the edges that tie it. The back edges of :data:`KNOWN_CIRCLES` are cut
from the walk until their fix lands; a test fails once one of them no longer
closes a circle, so that its line goes too.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import xpm_train

PACKAGE = Path(xpm_train.__file__).parent

KNOWN_CIRCLES: dict[tuple[str, str], str] = {}
"""Import edges (importer, imported) that close a circle whose fix is another
item's, with why each exists: cut from the walk (so any other circle fails),
and :func:`test_the_known_circles_still_exist` fails when one is gone."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(tree: ast.AST):
    """Every Import/ImportFrom node that can run: module- and function-level,
    skipping the bodies of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def resolve(name: str, modules: set[str]) -> str | None:
    """The xpm_train module that importing ``name`` loads (the longest known
    prefix: ``from pkg.mod import func`` loads ``pkg.mod``)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    """Module -> the xpm_train modules it imports (a fresh copy: callers may cut edges)."""
    return {module: set(imported) for module, imported in parsed_graph().items()}


@functools.cache
def parsed_graph() -> dict[str, frozenset[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        for node in runtime_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = mod.split(".")
                    base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                # "from pkg import mod" loads pkg.mod when it is a module.
                targets = [f"{prefix}.{a.name}" for a in node.names] or [prefix]
            for target in targets:
                found = resolve(target, modules)
                if found is None:
                    continue
                # Loading a.b.c runs a/__init__ and a/b/__init__ first.
                parts = found.split(".")
                for i in range(1, len(parts) + 1):
                    dep = ".".join(parts[:i])
                    if dep in modules and dep != mod and not mod.startswith(dep + "."):
                        graph[mod].add(dep)
    return {module: frozenset(imported) for module, imported in graph.items()}


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[set[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def describe(component: set[str], graph: dict[str, set[str]]) -> str:
    edges = [f"  {a} -> {b}" for a in sorted(component) for b in sorted(graph[a] & component)]
    return f"circle of {len(component)} modules:\n" + "\n".join(edges)


def test_the_walk_sees_function_level_imports_and_skips_type_checking():
    graph = import_graph()
    # kinds/local.py builds its experimaestro launcher (process.py) inside a
    # method only; process.py names LocalLauncherConfig under TYPE_CHECKING only.
    assert "xpm_train.launchers.process" in graph["xpm_train.launchers.kinds.local"]
    assert "xpm_train.launchers.kinds.local" not in graph["xpm_train.launchers.process"]
    # importing a submodule runs its package's __init__ first
    assert "xpm_train.launchers" in graph["xpm_train.learn"]


def test_the_known_circles_still_exist():
    graph = import_graph()
    gone = [edge for edge in KNOWN_CIRCLES if edge[1] not in graph[edge[0]]
            or not any(edge[0] in c and edge[1] in c for c in circles(graph))]
    assert not gone, f"no longer a circle, remove from KNOWN_CIRCLES: {gone}"


def test_no_import_circle():
    graph = import_graph()
    for importer, imported in KNOWN_CIRCLES:
        graph[importer].discard(imported)
    faulty = circles(graph)
    assert not faulty, "import circles in xpm_train:\n" + "\n\n".join(describe(c, graph) for c in faulty)
