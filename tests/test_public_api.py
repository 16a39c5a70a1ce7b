"""The public API has two tiers (xpm_train/__init__.py): what plans use, at the
top level, and what extensions use, in ``xpm_train.extend``. The user docs and
the plans import from exactly these two, every name they import is in its
tier's ``__all__``, and every name of both ``__all__`` is documented."""

import re
from pathlib import Path

import xpm_train
import xpm_train.extend

REPO = Path(__file__).resolve().parent.parent
TIERS = {"xpm_train": set(xpm_train.__all__), "xpm_train.extend": set(xpm_train.extend.__all__)}


def user_docs() -> dict[str, str]:
    """README and docs/*.md; docs/launchers.md's "Adding a launcher type" is for
    contributors (a launcher type is a module of the package) and is left out."""
    docs = {"README.md": (REPO / "README.md").read_text()}
    for path in sorted((REPO / "docs").glob("*.md")):
        text = path.read_text()
        if path.name == "launchers.md":
            text = re.sub(r"## Adding a launcher type.*?(?=\n## )", "", text, flags=re.S)
        docs[f"docs/{path.name}"] = text
    return docs


def python_snippets() -> dict[str, str]:
    """The Python of the user docs' code blocks and of the plans (experiments/)."""
    snippets = {}
    for name, text in user_docs().items():
        for index, block in enumerate(re.findall(r"```python\n(.*?)```", text, re.S)):
            snippets[f"{name} block {index + 1}"] = block
    for path in sorted((REPO / "experiments").glob("*/*.py")):
        snippets[str(path.relative_to(REPO))] = path.read_text()
    return snippets


IMPORT = re.compile(r"^\s*from (xpm_train[\w.]*) import (\([^)]*\)|[^\n]+)", re.M)


def xpm_imports(code: str) -> list[tuple[str, str]]:
    """``(module, name)`` of every ``from xpm_train... import name`` of ``code``."""
    return [(module, name.split(" as ")[0].strip())
            for module, names in IMPORT.findall(re.sub(r"#[^\n]*", "", code))
            for name in names.strip("()").replace("\n", " ").split(",") if name.strip()]


def test_docs_and_plans_import_from_the_two_tiers_only():
    imported = {module: set() for module in TIERS}
    for where, code in python_snippets().items():
        for module, name in xpm_imports(code):
            assert module in TIERS, f"{where} imports {name} from the internal module {module}"
            assert name in TIERS[module], f"{where} imports {name} from {module}, not in its __all__"
            imported[module].add(name)
    assert imported["xpm_train"] and imported["xpm_train.extend"]


def test_every_public_name_is_documented():
    docs = "\n".join(user_docs().values())
    for module, names in TIERS.items():
        missing = sorted(name for name in names if not re.search(rf"\b{re.escape(name)}\b", docs))
        assert not missing, f"{module}.__all__ names no user doc mentions: {missing}"


def test_attribute_uses_of_the_package_are_public():
    """``xpm_train.name`` in the docs (e.g. ``xpm_train.load(job)``) is a top-level name."""
    docs = "\n".join(user_docs().values())
    used = set(re.findall(r"\bxpm_train\.([A-Za-z_]+)\s*\(", docs))
    assert used and used <= TIERS["xpm_train"] | {"extend"}, used - TIERS["xpm_train"]


def test_the_tiers_are_importable():
    for module, names in TIERS.items():
        namespace = xpm_train if module == "xpm_train" else xpm_train.extend
        for name in sorted(names - {"LightningFit", "ModuleConfig", "DataModuleConfig", "require_lightning"}):
            assert getattr(namespace, name) is not None, name
