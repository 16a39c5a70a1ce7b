"""Which code made a result: the provenance a job records in its folder.

``provenance.json`` (:data:`xpm_train.jobfolder.PROVENANCE`) holds a
:class:`Provenance`, written in two steps so that a job's start-up stays fast:

- by the plan (``pre_experiment: xpm_train.preflight`` installs the hooks),
  just before experimaestro starts the job (:func:`at_prepare`): the
  fingerprint of the user's code (:func:`code_fingerprint`: the sha256 of the
  source file of every module defining a class of the job's config tree, the
  user's model, dataset, training function...; modules of xpm-train,
  experimaestro and of installed packages are left out, their versions say
  it), the git commit of the plan's repository and the sha256 of its
  uncommitted diff, the installed packages (their list and its sha256),
  experimaestro's and xpm-train's versions. The packages list and git are
  collected once per plan process;
- by the job when it starts (:func:`record_start`, from
  :func:`xpm_train.metrics.open_log` and :func:`xpm_train.report`): Python,
  torch, CUDA and cuDNN versions, the host and the GPU model. A job started
  without the plan's part (a plan without the preflight) collects it itself.

A plan that submits a job already done whose recorded code fingerprint
differs from today's says so (:func:`check_reuse`, one WARNING line per job:
which modules changed, how to retrain on purpose); the job ID never changes.
``xpm-train show`` prints the provenance, the MLflow runs carry it as
``xpm.env.*`` tags (:func:`mlflow_tags`), ``xpm-train reproduce`` compares it
(:func:`differences`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

logger = logging.getLogger("xpm_train.provenance")

OWN_PACKAGES = ("xpm_train", "experimaestro")
"""Packages whose code is covered by their recorded version, not by the fingerprint"""


@dataclass
class Provenance:
    """What produced a job's result (every field a string; ``""``: unknown)."""

    python: str = ""
    torch: str = ""
    cuda: str = ""
    cudnn: str = ""
    experimaestro: str = ""
    xpm_train: str = ""
    packages_sha256: str = ""
    """sha256 of :attr:`packages` (one ``name==version`` a line, sorted)"""
    git_commit: str = ""
    """Commit of the plan's repository"""
    git_diff_sha256: str = ""
    """sha256 of ``git diff HEAD`` in the plan's repository (``""``: no uncommitted change)"""
    plan: str = ""
    """The folder of the plan (its ``params.yaml``), in that repository"""
    host: str = ""
    gpu: str = ""
    code: dict[str, str] = field(default_factory=dict)
    """``{module: sha256 of its source file}`` of the user's modules defining the job's config classes"""
    packages: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, str]:
        """Every field but the packages list and the code, plus ``code_sha256``."""
        values = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("code", "packages")}
        return {**values, "code_sha256": sha256_text(json.dumps(self.code, sort_keys=True)) if self.code else ""}


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- The user's code

def is_user_module(module: Any) -> bool:
    """A module whose source the user edits: a file outside the standard
    library, installed packages, xpm-train and experimaestro."""
    name = getattr(module, "__name__", "")
    path = getattr(module, "__file__", None)
    if not path or name.split(".")[0] in OWN_PACKAGES or not path.endswith(".py"):
        return False
    parts = Path(path).parts
    if "site-packages" in parts or "dist-packages" in parts:
        return False
    return not path.startswith(os.path.realpath(sys.base_prefix)) and not path.startswith(sys.base_prefix)


def config_modules(config: Any) -> set[str]:
    """Names of the modules defining the classes of ``config``'s tree (its
    type and bases, the configs of its values, a training function)."""
    from experimaestro import Config

    found: set[str] = set()
    seen: set[int] = set()

    def walk(value: Any) -> None:
        if isinstance(value, (list, tuple, set)):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, Config) and id(value) not in seen:
            seen.add(id(value))
            kind = type(value)
            found.update(base.__module__ for base in kind.__mro__)
            function = getattr(kind, "__xpm_train_function__", None)
            if function is not None:
                found.add(function.__module__)
            for name in kind.__xpmtype__.arguments:  # a config (plan) or an instance (job) alike
                walk(getattr(value, name, None))

    walk(config)
    return found


def code_fingerprint(config: Any) -> dict[str, str]:
    """``{module: sha256}`` of the user's modules defining ``config``'s classes."""
    fingerprint = {}
    for name in sorted(config_modules(config)):
        module = sys.modules.get(name)
        if module is not None and is_user_module(module):
            try:
                fingerprint[name] = hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()
            except OSError:
                continue
    return fingerprint


def changed_modules(recorded: dict[str, str], today: dict[str, str]) -> list[str]:
    """The modules whose source differs (or that appeared or went) between two fingerprints."""
    return sorted(name for name in set(recorded) | set(today) if recorded.get(name) != today.get(name))


# --- Collection

@functools.lru_cache(maxsize=None)
def packages() -> tuple[str, ...]:
    """``name==version`` of every installed distribution, sorted (once per process)."""
    import importlib.metadata

    return tuple(sorted({f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions()
                         if d.metadata["Name"]}))


def version_of(name: str, listed: tuple[str, ...]) -> str:
    prefix = f"{name.lower()}=="
    return next((line.split("==", 1)[1] for line in listed if line.lower().startswith(prefix)), "")


@functools.lru_cache(maxsize=None)
def git_of(folder: str) -> tuple[str, str]:
    """``(commit, sha256 of the uncommitted diff or "")`` of the repository holding ``folder``."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return "", ""
        diff = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=folder, capture_output=True, timeout=30)
        return commit.stdout.strip(), hashlib.sha256(diff.stdout).hexdigest() if diff.stdout.strip() else ""
    except (OSError, subprocess.SubprocessError):
        return "", ""


_plan_folder: list[str] = []


def plan_folder(params_file: Optional[Callable[[], str]] = None) -> str:
    """The folder of the plan's ``params.yaml`` (the file ``params_file()``
    names: :func:`xpm_train.preflight.params_file` in a plan; the working
    directory when it does not exist; :func:`use_plan_folder`'s); first called
    by the plan's thread, where the command's context is."""
    if not _plan_folder:
        source = Path(params_file() if params_file is not None else "params.yaml")
        _plan_folder.append(str(source.resolve().parent if source.exists() else Path.cwd()))
    return _plan_folder[0]


def use_plan_folder(folder: str) -> None:
    """Record the git state of ``folder``'s repository for the jobs this process starts
    (``xpm-train reproduce``: the original plan's)."""
    _plan_folder[:] = [folder]


def plan_part(config: Any, folder: Optional[str] = None) -> Provenance:
    """What the plan records of ``config``'s job: code, git, packages, versions."""
    listed = packages()
    folder = folder or plan_folder()
    commit, diff = git_of(folder)
    return Provenance(experimaestro=version_of("experimaestro", listed), xpm_train=version_of("xpm-train", listed),
                      packages_sha256=sha256_text("\n".join(listed)), git_commit=commit, git_diff_sha256=diff,
                      plan=folder, code=code_fingerprint(config), packages=list(listed))


def runtime_part() -> dict[str, str]:
    """What the job records when it starts: Python, torch (only when the job
    imported it), CUDA, cuDNN, host, GPU model."""
    import platform
    import socket

    found = {"python": platform.python_version(), "host": socket.gethostname()}
    torch = sys.modules.get("torch")
    if torch is not None:
        found.update(torch=torch.__version__, cuda=torch.version.cuda or "",
                     cudnn=str(torch.backends.cudnn.version() or "") if torch.backends.cudnn.is_available() else "")
        if torch.cuda.is_initialized():  # the job uses a GPU
            found["gpu"] = torch.cuda.get_device_name()
    return found


# --- The file

def read(folder: Path) -> Optional[Provenance]:
    """The provenance recorded in the job folder ``folder`` (None: none, or unreadable)."""
    from .jobfolder import PROVENANCE

    try:
        data = json.loads((Path(folder) / PROVENANCE).read_text())
    except (OSError, ValueError):
        return None
    known = {f.name for f in dataclasses.fields(Provenance)}
    return Provenance(**{k: v for k, v in data.items() if k in known})


def write(folder: Path, provenance: Provenance) -> None:
    from .atomic import atomic_write_json
    from .jobfolder import PROVENANCE

    atomic_write_json(Path(folder) / PROVENANCE, dataclasses.asdict(provenance))


_started: set[Path] = set()


def record_start(folder: Path, config: Any) -> None:
    """Complete the job's provenance with this process's runtime (once per
    process; the plan's part is collected here when the plan did not write it)."""
    folder = Path(folder)
    if folder in _started:
        return
    _started.add(folder)
    try:
        provenance = read(folder)
        if provenance is None or not provenance.packages_sha256:
            provenance = plan_part(config, folder=str(Path.cwd()))
        write(folder, dataclasses.replace(provenance, **runtime_part()))
    except Exception as error:  # noqa: BLE001 - provenance never fails a job
        logger.warning("could not record the provenance of %s: %s", folder, error)


# --- Plan hooks (installed by xpm_train.preflight)

def at_prepare(job: Any) -> None:
    """Write the plan's part of the provenance in the folder of ``job``, an
    experimaestro job about to start."""
    try:
        write(Path(job.path), plan_part(job.config))
    except Exception as error:  # noqa: BLE001 - provenance never fails a plan
        logger.warning("could not record the provenance of %s: %s", job.path, error)


def check_reuse(job: Any) -> Optional[str]:
    """When ``job`` (being submitted) is done and its recorded code
    fingerprint differs from today's, log and return the one-line warning."""
    from .jobfolder import id_of, is_done

    folder = Path(job.path)
    try:
        if not is_done(folder):
            return None
        recorded = read(folder)
        if recorded is None or not recorded.code:
            return None
        changed = changed_modules(recorded.code, code_fingerprint(job.config))
    except Exception as error:  # noqa: BLE001 - provenance never fails a plan
        logger.debug("could not compare the code of %s: %s", folder, error)
        return None
    if not changed:
        return None
    message = (f"{id_of(folder)} is reused, but the code of {', '.join(changed)} changed since it ran: its "
               "result comes from the old code. To retrain on purpose, bump a `version: Constant` of the "
               "config (e.g. `version: Constant[int] = 2` in your model class, or "
               "@training_function(version=...)); the job ID stays the same otherwise")
    logger.warning(message)
    return message


def install_hooks(params_file: Optional[Callable[[], str]] = None) -> None:
    """Check every submitted job's code, record every started job's plan part
    (``params_file``: the plan's YAML file, for :func:`plan_folder`; given by
    :mod:`xpm_train.preflight`, which owns run-experiment's command line)."""
    from experimaestro.commandline import CommandLineJob
    from experimaestro.scheduler.experiment import experiment

    if not hasattr(experiment.submit, "__wrapped__"):
        original_submit = experiment.submit

        def submit(self, job):
            plan_folder(params_file)  # here, in the plan's thread; jobs are prepared in the scheduler's
            check_reuse(job)
            return original_submit(self, job)

        submit.__wrapped__ = original_submit
        experiment.submit = submit
    if not hasattr(CommandLineJob.prepare, "__wrapped__"):
        original_prepare = CommandLineJob.prepare

        def prepare(self, overwrite=False):
            script = original_prepare(self, overwrite)
            at_prepare(self)
            return script

        prepare.__wrapped__ = original_prepare
        CommandLineJob.prepare = prepare


# --- Reading back

def mlflow_tags(folder: Path) -> dict[str, str]:
    """``xpm.env.*`` tags of the job in ``folder`` (``{}`` without provenance)."""
    provenance = read(folder)
    if provenance is None:
        return {}
    return {f"xpm.env.{key}": value for key, value in provenance.summary().items() if value}


def differences(recorded: Provenance, other: Provenance) -> list[str]:
    """``field: recorded -> other`` for each field of the environment that differs
    (the packages named; the host is not compared)."""
    lines = []
    for key, value in recorded.summary().items():
        if key in ("host", "plan", "packages_sha256", "code_sha256"):
            continue
        if value != other.summary()[key]:
            lines.append(f"{key}: {value or '?'} -> {other.summary()[key] or '?'}")
    old, new = set(recorded.packages), set(other.packages)
    if old != new:
        lines.append("packages: " + ", ".join([f"-{p}" for p in sorted(old - new)] + [f"+{p}" for p in sorted(new - old)]))
    changed = changed_modules(recorded.code, other.code)
    if changed:
        lines.append("code changed: " + ", ".join(changed))
    return lines
