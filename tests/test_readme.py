"""The README opens with the two commands a newcomer needs, and CI runs the second."""

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
