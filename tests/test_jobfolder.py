"""The job folder: IDs from configs, state from experimaestro's marker files, paths."""

import ast
import functools
import re
from pathlib import Path

from xpm_train import Adam, Digits, Learn, MLP, jobfolder


def test_job_id_is_the_folder_experimaestro_uses():
    learn = Learn.C(model=MLP.C(), data=Digits.C(split="train"), optimizer=Adam.C())
    job = jobfolder.job_id(learn)
    assert job == f"xpm_train.learn.learn/{learn.__xpm__.identifier.all.hex()}"
    folder = jobfolder.job_path(Path("ws"), job)
    assert folder == Path("ws/jobs") / job and jobfolder.id_of(folder) == job
    assert jobfolder.workspace_of(folder) == Path("ws")
    learn.device = "cpu"  # Meta: the same job
    assert jobfolder.job_id(learn) == job


def test_state_reads_the_task_named_markers(tmp_path):
    folder = tmp_path / "jobs" / "mypackage.mytrain.train" / "ab12"
    folder.mkdir(parents=True)
    assert jobfolder.state(folder) == "unknown" and jobfolder.finished_state(folder) is None
    (folder / "params.json").write_text("{}")
    assert jobfolder.state(folder) == "waiting"
    (folder / "train.pid").write_text("1")
    assert jobfolder.state(folder) == "running"
    (folder / "train.failed").write_text("")
    assert jobfolder.state(folder) == jobfolder.finished_state(folder) == "failed"
    assert not jobfolder.is_done(folder)
    (folder / "other.done").write_text("")  # another task's marker name: not this job's
    assert not jobfolder.is_done(folder)
    (folder / "train.failed").unlink()
    (folder / "train.done").write_text("")
    assert jobfolder.is_done(folder) and jobfolder.state(folder) == "done"
    from xpm_train.analysis import job_info  # a job read back (above the job folder)

    info = job_info(folder)
    assert (info.id, info.name, info.state) == ("mypackage.mytrain.train/ab12", "train", "done")
    assert jobfolder.all_jobs(tmp_path) == [folder]


# --- One owner for the job folder's file names (issue 27 item 2)

PACKAGE = Path(__file__).resolve().parent.parent / "xpm_train"
FILE_NAME = re.compile(r"[\w@*{}-]*\.(jsonl|json|pt)\b")
ALLOWED = {
    ("data/prepared.py", "header.json"): "a prepared data folder's commit point, not a job folder's file",
    ("data/preparation.py", "plan.json"): "a prepared data folder's layout under way",
    ("data/preparation.py", ".json"): "a prepared data folder's chunk commits (chunk_commit)",
    ("data/imagefolder.py", ".json"): "an image folder's split statistics, kept in its prepared folder",
    ("export.py", "model.pt"): "an export folder's weights (export.WEIGHTS), not a job folder's file",
    ("export.py", "network.pt"): "an export folder's pickled network (export.NETWORK)",
    ("export.py", "model.json"): "an export folder's model config (export.MODEL)",
    ("tags.py", "jobs.jsonl"): "experimaestro's list of a run's jobs, in the experiment's folder (tags.RUNS)",
    ("tracking/forwarder.py", ".json"): "the MLflow forwarder's spool entries (forwarder.ENTRY)",
    ("tune/storage.py", "study.json"): "a study's description, in WORKSPACE/tune/NAME (storage.DESCRIPTION)",
    ("launchers/testing.py", "record.json"): "the output of a task that exists for the launcher tests only",
    ("launchers/testing.py", "result.json"): "the output of a task that exists for the launcher tests only",
    ("launchers/pool/registry.py", "*.json"): "a Slurm pool's records of what its jobs hold, in the pool's folder",
    ("launchers/pool/registry.py", ".json"): "a Slurm pool's records of what its jobs hold, in the pool's folder",
}
"""File-name literals outside jobfolder.py that are no job folder's, each with why"""


def docstrings(tree: ast.AST) -> set[int]:
    """The string constants that document (module, class, function, attribute)."""
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for before, statement in zip([None, *body], body):
            if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant) and (
                    before is None or isinstance(before, (ast.Assign, ast.AnnAssign))):
                found.add(id(statement.value))
    return found


@functools.cache
def package_trees() -> dict[str, ast.AST]:
    """``{module path in xpm_train/: its syntax tree}``, parsed once for the scans below."""
    return {path.relative_to(PACKAGE).as_posix(): ast.parse(path.read_text())
            for path in sorted(PACKAGE.rglob("*.py"))}


def file_name_literals(source: "str | ast.AST") -> list[tuple[int, str]]:
    """``(line, name)`` of every ``.jsonl``/``.json``/``.pt`` name in a string
    literal of ``source`` (text or tree) that is not a docstring (f-string parts included)."""
    tree = ast.parse(source) if isinstance(source, str) else source
    skipped = docstrings(tree)
    return sorted((node.lineno, match.group(0)) for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped
                  for match in FILE_NAME.finditer(node.value))


def test_the_scan_sees_literals_and_skips_docstrings():
    source = ('"""Reads ``final.json``."""\nX = "best.pt"\n"""``X`` is ``last.pt``"""\n'
              'def f(d, n):\n    """The ``metrics.jsonl``."""\n    return d / f"{n}.json", "see events.jsonl"\n')
    assert file_name_literals(source) == [(2, "best.pt"), (6, ".json"), (6, "events.jsonl")]


def test_job_folder_file_names_are_spelt_in_jobfolder_only():
    found, used = [], set()
    for module, tree in package_trees().items():
        if module == "jobfolder.py":
            continue
        for line, name in file_name_literals(tree):
            if (module, name) in ALLOWED:
                used.add((module, name))
            else:
                found.append(f"xpm_train/{module}:{line}: {name!r}")
    assert not found, ("file names spelt outside xpm_train/jobfolder.py (use its constants, or allow a "
                       "name that is no job folder's in ALLOWED with the reason):\n" + "\n".join(found))
    assert used == set(ALLOWED), f"allowed but no longer found (remove them): {sorted(set(ALLOWED) - used)}"


def test_files_are_renamed_into_place_by_atomic_only():
    renames = {}
    for module, tree in package_trees().items():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr in ("replace", "rename")
                    and isinstance(node.value, ast.Name) and node.value.id == "os"):
                renames.setdefault(module, []).append(node.lineno)
    renames.pop("atomic.py")
    # reclaim.apply.discard renames a folder it then deletes: nothing is published
    assert list(renames) == ["reclaim/apply.py"], f"os.replace/os.rename outside xpm_train/atomic.py: {renames}"
