"""The README opens with the two commands a newcomer needs, CI runs the second, and
its Development section lists the package's layout."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index("```bash")
    end = lines.index("```", start)
    return lines[start + 1:end]


def test_readme_opens_with_two_commands():
    lines = (REPO / "README.md").read_text().splitlines()
    assert lines[2] == "```bash", "the commands must come right after the title"
    quickstart, tests = readme_commands()
    assert "pip install -e ." in quickstart and "run-experiment" in quickstart
    plan = quickstart.split()[-1]
    assert (REPO / plan).is_file(), plan
    assert "'.[test]'" in tests and "pytest" in tests


def test_ci_runs_the_readme_test_command():
    """.ci/run runs it as the body of readme_test_command (see .ci/run for why)."""
    ci = (REPO / ".ci" / "run").read_text()
    body = ci.split("readme_test_command() {\n", 1)[1].split("\n}\n", 1)[0]
    commands = [line.strip() for line in body.splitlines() if not line.strip().startswith("#")]
    assert commands == [readme_commands()[1]]


def test_the_layout_table_is_the_package():
    """The Development section has one line per module and folder of xpm_train/
    (a new module: add its line), and names none that does not exist."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Development", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([\w.]+/?)`", section, re.M))
    package = REPO / "xpm_train"
    actual = {p.name for p in package.glob("*.py")} | {
        f"{p.name}/" for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert not actual - listed, f"add a line to README.md's Development table for {sorted(actual - listed)}"
    assert not listed - actual, f"README.md's Development table names what xpm_train/ lacks: {sorted(listed - actual)}"
