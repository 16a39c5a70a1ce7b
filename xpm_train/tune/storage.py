"""Where studies live: ``<workspace>/tune/<study name>/``.

::

    study.json     what the study is (space, sampler, pruner, objective, base
                   Learn ID): the study name is derived from it
    journal.log    Optuna's journal file storage (append-only, locked by
                   atomic file creation: safe on shared filesystems, unlike
                   SQLite)
    drivers/       one lock file per plan process driving the study (a trial
                   whose driver's lock is free was interrupted)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ..atomic import atomic_write_json
from ..errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from optuna.storages import JournalStorage

TUNE_DIR = "tune"
JOURNAL = "journal.log"
DESCRIPTION = "study.json"


def study_dir(workspace: Path | str, name: str) -> Path:
    return Path(workspace) / TUNE_DIR / name


def journal_path(workspace: Path | str, name: str) -> Path:
    return study_dir(workspace, name) / JOURNAL


def open_storage(journal: Path | str) -> "JournalStorage":
    """Optuna's journal storage on ``journal`` (created when missing)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    journal = str(journal)
    return JournalStorage(JournalFileBackend(journal, lock_obj=JournalFileOpenLock(journal)))


def trials_in(storage: "JournalStorage", name: str) -> int:
    """How many trials study ``name`` holds (0 when it does not exist yet)."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))


def write_description(workspace: Path | str, name: str, description: dict[str, Any]) -> Path:
    """Create the study folder and its ``study.json`` (kept when present: it
    only depends on the name)."""
    folder = study_dir(workspace, name)
    (folder / "drivers").mkdir(parents=True, exist_ok=True)
    path = folder / DESCRIPTION
    if not path.exists():
        atomic_write_json(path, description, sort_keys=True)
    return journal_path(workspace, name)


def read_description(workspace: Path | str, name: str) -> dict[str, Any]:
    path = study_dir(workspace, name) / DESCRIPTION
    if not path.exists():
        known = ", ".join(list_studies(workspace)) or "none"
        raise NotFound(f"no study '{name}' in {Path(workspace) / TUNE_DIR} (known: {known}); "
                                f"list them with `xpm-train tune list --workdir {workspace}`")
    return json.loads(path.read_text())


def list_studies(workspace: Path | str) -> list[str]:
    root = Path(workspace) / TUNE_DIR
    return sorted(p.name for p in root.glob("*") if (p / DESCRIPTION).exists())


def resolve_study(workspace: Path | str, name: str) -> str:
    """A study named in full or by a unique prefix (or its label)."""
    names = list_studies(workspace)
    if name in names:
        return name
    matches = [n for n in names if n.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NotFound(f"no study '{name}' in {Path(workspace) / TUNE_DIR} "
                                f"(known: {', '.join(names) or 'none'})")
    raise InvalidArgument(f"'{name}' is ambiguous: {', '.join(matches)}; give more of the name")


class DriverLock:
    """The lock a plan process holds on a study while it drives trials.

    Trials record their driver's ID; a RUNNING trial whose driver's lock can
    be taken was left by an interrupted plan. Taking the lock makes this
    process that driver (until it exits), so two plans never adopt the same
    interrupted trial.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.held: dict[str, Any] = {}
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        folder.mkdir(parents=True, exist_ok=True)
        with self.submitting():
            # How many other drivers run the study now (part of the sampler's seed)
            self.rank = sum(self.alive(p.stem) for p in folder.glob("*.lock"))
            if not self.take(self.id):
                raise RuntimeError(f"could not lock {self.folder / self.id}.lock")

    def take(self, driver: str) -> bool:
        """True (and the lock is kept) when ``driver``'s lock is free."""
        if driver in self.held:
            return True
        self.folder.mkdir(parents=True, exist_ok=True)
        from ..locks import take

        fd = take(self.folder / f"{driver}.lock", 0o666)
        if fd is None:
            return False
        self.held[driver] = fd
        return True

    def alive(self, driver: Optional[str]) -> bool:
        """Whether ``driver`` (another process) still holds its lock."""
        if driver is None:
            return False
        if driver in self.held:
            return True
        from ..locks import held

        return held(self.folder / f"{driver}.lock")

    @contextlib.contextmanager
    def submitting(self):
        """Held while a driver checks which configurations the others run and
        records its own (``submit.lock`` of the study)."""
        with open(self.folder.parent / "submit.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def release(self):
        for driver, fd in self.held.items():
            os.close(fd)  # drops the lock
            (self.folder / f"{driver}.lock").unlink(missing_ok=True)
        self.held = {}
