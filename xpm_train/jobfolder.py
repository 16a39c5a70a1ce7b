"""The job folder: where a job lives, what it holds, and what state it is in.

experimaestro puts the job of a task config in ``WORKSPACE/jobs/TASK/HASH/``
(``TASK`` the task's identifier, e.g. ``xpm_train.learn.learn``; ``HASH`` the
config's identifier, which Params make and Meta does not). The job's ID is
``TASK/HASH``. Beside ``params.json`` (the config) experimaestro writes marker
files named after the task's last name component (``learn.done``,
``learn.failed``, ``learn.pid``; ``train.done`` for a training function
``mypackage.mytrain.train``). In the folder, xpm-train's tasks write the
files named below; the summary (``final.json`` or ``results.json``) is read
through :func:`xpm_train.summary.read` (a job read back with its summary:
:class:`xpm_train.analysis.JobInfo`, above this module, which nothing of
xpm-train's imports).

Everything here reads the file system only: nothing is imported that a job
reading its own folder would not have already.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

PARAMS = "params.json"
"""The job's config, written by experimaestro"""
METRICS = "metrics.jsonl"
"""One JSON object per logged point (:mod:`xpm_train.metrics`)"""
EVENTS = "events.jsonl"
"""One JSON object per event: start / resume / checkpoint / end / error..."""
FINAL = "final.json"
"""Summary of a training (Learn, a training function, LightningFit)"""
RESULTS = "results.json"
"""Summary of an evaluation (Evaluate), or of a study (Tune)"""
TRIALS = "trials.json"
"""A study's trials, one row each (Tune; ``trials.csv`` beside it)"""
DATA = "data.json"
"""What the trained network takes and gives (:func:`xpm_train.trained.write_data`)"""
TAGS = "tags.json"
"""The tags every experiment run gave the job (:mod:`xpm_train.tags`)"""
PROVENANCE = "provenance.json"
"""Which code, packages, host and GPU made the job's result (:mod:`xpm_train.provenance`)"""
USER_CHECKPOINTS = "user-checkpoints"
"""Where a LightningFit's own ``ModelCheckpoint`` (no ``dirpath``) writes, apart from ``checkpoints/``"""
LOGGERS = "loggers"
"""The folder a LightningFit gives to the user's extra Lightning loggers"""
CHECKPOINTS = "checkpoints"
"""A training's checkpoints: ``best.pt`` (the weights that ``load``, export and
:class:`~xpm_train.models.LoadWeights` read: :data:`xpm_train.trained.BEST`)
and the files to resume it from (:data:`RESUME`)"""
BEST = "best.pt"
"""The weights of the best epoch (in ``checkpoints/``): what ``load``, export
and :class:`~xpm_train.models.LoadWeights` read"""
LAST = "last.pt"
"""What Learn and training functions resume from (in ``checkpoints/``)"""
LAST_LIGHTNING = "last.ckpt"
"""What LightningFit resumes from (in ``checkpoints/``)"""
RESUME = (LAST, LAST_LIGHTNING)
"""Files of ``checkpoints/`` read only to resume an unfinished training (Learn
and training functions: ``last.pt``; LightningFit: ``last.ckpt``), each with
the previous copy :func:`xpm_train.checkpoint.save` keeps"""


def task_id(config) -> str:
    """The identifier of ``config``'s type (``xpm_train.learn.learn``): the
    ``TASK`` folder of its jobs."""
    return str(type(config).__xpmtype__.identifier)


def config_hash(config) -> str:
    """The hex identifier of ``config`` (its Params; Meta values do not count):
    the ``HASH`` folder of its job."""
    return config.__identifier__().all.hex()


def job_id(config) -> str:
    """``TASK/HASH`` of a task config, submitted or not."""
    return f"{task_id(config)}/{config_hash(config)}"


def job_path(workspace: Path, job: str) -> Path:
    """The folder of the job ``TASK/HASH`` in ``workspace``."""
    return Path(workspace) / "jobs" / job


def id_of(folder: Path) -> str:
    """``TASK/HASH`` of the job in ``folder``."""
    return f"{folder.parent.name}/{folder.name}"


def workspace_of(folder: Path) -> Path:
    """The workspace a job folder belongs to (``WORKSPACE/jobs/TASK/HASH``)."""
    return Path(folder).parent.parent.parent


def all_jobs(workspace: Path) -> list[Path]:
    """Every job folder of ``workspace``, sorted."""
    return sorted(p for p in (Path(workspace) / "jobs").glob("*/*") if p.is_dir())


def marker(folder: Path, kind: str) -> Path:
    """experimaestro's marker ``kind`` (``done``, ``failed``, ``pid``) of the job in ``folder``."""
    return folder / f"{folder.parent.name.rsplit('.', 1)[-1]}.{kind}"


def state(folder: Path) -> str:
    """``done``, ``failed``, ``running`` or ``waiting`` (submitted, not started),
    from the marker files; ``unknown`` for a folder that is no job's."""
    finished = finished_state(folder)
    if finished is not None:
        return finished
    if marker(folder, "pid").exists():
        return "running"
    return "waiting" if (folder / PARAMS).exists() else "unknown"


def finished_state(folder: Path) -> Optional[str]:
    """``done`` or ``failed``; None while the job has not ended."""
    for kind in ("done", "failed"):
        if marker(folder, kind).exists():
            return kind
    return None


def failure(folder: Path) -> Optional[dict]:
    """What the ``.failed`` marker of the job in ``folder`` says
    (experimaestro's ``{"code", "reason", "message"}``; ``{}`` when it is not
    JSON); None when there is none, or while it is being written (in place)."""
    import json

    try:
        text = marker(folder, "failed").read_text()
    except OSError:
        return None
    if not text.strip():
        return None
    try:
        said = json.loads(text)
    except ValueError:
        return None if text.lstrip().startswith("{") and not text.rstrip().endswith("}") else {}
    return said if isinstance(said, dict) else {}


def is_done(folder: Path) -> bool:
    """Whether the job in ``folder`` ended successfully."""
    return marker(folder, "done").exists()


def load_config(folder: Path) -> Any:
    """The task config of the job in ``folder`` (its ``params.json``), as an
    instance. experimaestro's ``from_task_dir`` points the process-wide task
    and workspace paths (``taskglobals.Env``) at the loaded job and leaves
    them there: a later ``xpm_train.report()`` or MLflow run of this process
    would then write into the loaded job's folder. They are restored here.
    A ``ModuleNotFoundError`` (the job's code is not importable) is the caller's."""
    from experimaestro import from_task_dir
    from experimaestro.taskglobals import Env

    env = Env.instance()
    saved = env.taskpath, env.wspath
    try:
        return from_task_dir(folder, as_instance=True)
    finally:
        env.taskpath, env.wspath = saved


def current_experiment():
    """The experimaestro experiment running in this process (None: none, or
    experimaestro not imported: no import here, this is a CLI start-up path)."""
    module = sys.modules.get("experimaestro.scheduler.experiment")
    return getattr(module.experiment, "CURRENT", None) if module is not None else None


def done_in_current_workspace(config) -> bool:
    """Whether the job of the task ``config`` is already done in the workspace
    of the experiment this process runs (False outside an experiment): a plan
    that submits it again reuses the result, so checks that would cost the plan
    time (importing torch) are moot."""
    xp = current_experiment()
    if xp is None:
        return False
    try:
        job = job_id(config)
    except Exception:  # noqa: BLE001 - an ID not computable yet: not known to be done
        return False
    return is_done(job_path(Path(xp.workspace.path), job))
