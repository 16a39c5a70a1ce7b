"""``xpm-train doctor``: is this machine ready to run plans? And ``xpm-train
gpus``: which GPUs it has and how busy they are.

Each check gives one :class:`~xpm_train.diagnosis.Check`: OK, WARN (works, but not as well as it
could: no GPU, no Slurm on this host, MLflow server down) or FAIL (plans will
fail: invalid ``launchers.yaml``, workspace not writable), with the fix.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .diagnosis import FAIL, OK, WARN, Check  # noqa: F401 - the checks' outcome, also this module's API

GIB = 2**30


# --- Python, torch, CUDA

def check_python(version=sys.version_info) -> Check:
    text = f"Python {version[0]}.{version[1]}.{version[2]} ({sys.executable})"
    if tuple(version[:2]) < (3, 10):
        return Check("python", FAIL, text, "use Python 3.10 or newer")
    return Check("python", OK, text)


def check_torch() -> list[Check]:
    """torch importable; CUDA devices and their memory (WARN without any)."""
    try:
        import torch
    except Exception as error:  # noqa: BLE001  (a broken install raises anything)
        return [Check("torch", FAIL, f"cannot import torch ({type(error).__name__}: {error})",
                      "pip install torch (https://pytorch.org/get-started)")]
    checks = [Check("torch", OK, f"torch {torch.__version__}")]
    if not torch.cuda.is_available():
        smi = shutil.which("nvidia-smi")
        if smi is not None and torch.version.cuda is None:
            fix = "nvidia-smi is present but this torch is a CPU build: install a CUDA build of torch"
        elif smi is not None:
            fix = "nvidia-smi is present but CUDA is unusable: check the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES"
        else:
            fix = "none needed on a CPU machine; on a GPU machine install the NVIDIA driver and a CUDA build of torch"
        checks.append(Check("cuda", WARN, "no CUDA GPU: jobs run on CPU", fix))
        return checks
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        devices.append(f"{index}: {props.name} {props.total_memory / GIB:.0f} GiB")
    checks.append(Check("cuda", OK, f"CUDA {torch.version.cuda}, {len(devices)} GPU(s): " + "; ".join(devices)))
    return checks


# --- experimaestro

def check_experimaestro() -> Check:
    """experimaestro importable and its settings file readable."""
    try:
        from importlib.metadata import version

        from experimaestro.settings import get_settings

        settings = get_settings()
    except Exception as error:  # noqa: BLE001
        return Check("experimaestro", FAIL, f"settings unreadable ({type(error).__name__}: {error})",
                     "fix or remove ~/.config/experimaestro/settings.yaml (pip install experimaestro if missing)")
    path = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "experimaestro" / "settings.yaml"
    source = str(path) if path.is_file() else "defaults (no settings.yaml)"
    workspaces = len(getattr(settings, "workspaces", []) or [])
    return Check("experimaestro", OK, f"experimaestro {version('experimaestro')}, settings: {source}, "
                 f"{workspaces} named workspace(s)")


def check_workspace(workdir: Path) -> Check:
    """The workspace is (or can be) created and written, with free space."""
    workdir = workdir.expanduser().absolute()
    existing = next((p for p in (workdir, *workdir.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        return Check("workspace", FAIL, f"{workdir}: {existing} is not a folder",
                     "give --workdir a folder path")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".xpm-train-doctor-"):
            pass
    except OSError as error:
        return Check("workspace", FAIL, f"{existing} is not writable ({error.strerror})",
                     f"choose a writable --workdir or fix the permissions of {existing}")
    free = shutil.disk_usage(existing).free
    state = f"{len(list((workdir / 'jobs').glob('*/*')))} job(s)" if workdir.is_dir() else "created on first run"
    message = f"{workdir} ({state}, {free / GIB:.1f} GiB free)"
    if free < GIB:
        return Check("workspace", WARN, message, "free disk space: checkpoints need room")
    return Check("workspace", OK, message)


# --- launchers.yaml and what each launcher type checks

def check_launchers(start: Path | None = None):
    """``(check, config or None)``: the launchers file in effect is valid."""
    from .launchers import load_launchers
    from .launchers.lookup import BUILTIN, locate

    try:
        path = locate(start)
        config = load_launchers(start)
    except Exception as error:  # noqa: BLE001  (invalid file, missing $XPM_TRAIN_LAUNCHERS...)
        lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
        head, rest = (lines[0] + " ", lines[1:]) if lines[0].endswith(":") else ("", lines)
        message = head + "; ".join(rest)
        return Check("launchers", FAIL, message,
                     "correct launchers.yaml (see docs/launchers.md), then `xpm-train launchers list`"), None
    names = ", ".join(f"{launcher.name} ({launcher.type})" for launcher in config.launchers)
    return Check("launchers", OK, f"{path or BUILTIN}: {names}"), config


def check_launcher_types(config, which: Callable[[str], str | None] = shutil.which) -> list[Check]:
    """Each launcher type's own check of its declared launchers (Slurm: its commands
    and partitions), in the order of :data:`xpm_train.launchers.kinds.TYPES`."""
    from .launchers.kinds import TYPES

    checks = []
    for kind, cls in TYPES.items():
        declared = [launcher for launcher in config.launchers if launcher.type == kind] if config else []
        check = cls.doctor(declared, which) if declared else None
        if check is not None:
            checks.append(check)
    return checks


# --- MLflow

def check_mlflow(workdir: Path, timeout: float = 3.0) -> Check:
    """The MLflow store that plans would use is writable (or the server answers)."""
    from urllib.parse import urlparse

    try:
        from .tracking.store import resolve_uri

        uri = resolve_uri(workdir.expanduser().absolute())
    except ImportError:
        uri = os.environ.get("MLFLOW_TRACKING_URI", "")
        if not uri:
            return Check("mlflow", WARN, "MLFLOW_TRACKING_URI is unset", "export MLFLOW_TRACKING_URI=...")
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        import urllib.request

        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
        except Exception as error:  # noqa: BLE001
            return Check("mlflow", WARN, f"server {uri} unreachable ({error}); jobs run anyway and keep "
                         "their metrics in their folders",
                         "start the server, or `xpm-train mlflow sync` later")
        return Check("mlflow", OK, f"server {uri} answers")
    if parsed.scheme == "sqlite":
        path = Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None
    elif parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme == "file" else uri)
    else:
        return Check("mlflow", OK, f"{uri} (not checked: {parsed.scheme} store)")
    if path is None:
        return Check("mlflow", FAIL, f"cannot read the path of {uri}", "use sqlite:////absolute/path/mlflow.db")
    folder = path.parent if parsed.scheme == "sqlite" else path
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None or not os.access(existing, os.W_OK):
        return Check("mlflow", FAIL, f"{uri}: {existing} is not writable",
                     "set MLFLOW_TRACKING_URI to a writable store, or fix the permissions")
    return Check("mlflow", OK, f"{uri} writable")


# --- All checks

def run_checks(workdir: Path) -> list[Check]:
    """Every check, in the order they are printed."""
    checks = [check_python(), *check_torch(), check_experimaestro(), check_workspace(workdir)]
    launchers, config = check_launchers()
    checks.append(launchers)
    checks.extend(check_launcher_types(config))
    checks.append(check_mlflow(workdir))
    return checks


# --- GPU inventory and use

@dataclass(frozen=True)
class GpuUse:
    index: str
    name: str
    memory_used: int
    """Bytes"""
    memory_total: int
    """Bytes"""
    utilization: int | None
    """Percent (None: unknown)"""
    processes: tuple[str, ...] = ()
    """``pid (memory)`` of the processes using it"""

    def line(self) -> str:
        util = f"{self.utilization:>3}%" if self.utilization is not None else "   ?"
        procs = ", ".join(self.processes) if self.processes else "-"
        return (f"{self.index:>3}  {self.name:<28} {self.memory_used / GIB:6.1f} / "
                f"{self.memory_total / GIB:6.1f} GiB  {util}  {procs}")


NVIDIA_QUERY = ["--query-gpu=index,uuid,name,memory.used,memory.total,utilization.gpu",
                "--format=csv,noheader,nounits"]
NVIDIA_APPS = ["--query-compute-apps=gpu_uuid,pid,used_memory", "--format=csv,noheader,nounits"]
MIB = 2**20


def parse_nvidia_smi(gpus_csv: str, apps_csv: str = "") -> list[GpuUse]:
    """GPUs from ``nvidia-smi`` CSV output (``NVIDIA_QUERY``, ``NVIDIA_APPS``)."""
    processes: dict[str, list[str]] = {}
    for line in apps_csv.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            processes.setdefault(parts[0], []).append(f"pid {parts[1]} ({number(parts[2]) or 0:.0f} MiB)")
    gpus = []
    for line in gpus_csv.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 6:
            continue
        index, uuid, name, used, total, util = parts
        utilization = number(util)
        gpus.append(GpuUse(index, name, int((number(used) or 0) * MIB), int((number(total) or 0) * MIB),
                           int(utilization) if utilization is not None else None,
                           tuple(processes.get(uuid, ()))))
    return gpus


def number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # "[N/A]", "[Not Supported]"
        return None


def gpu_inventory() -> tuple[str, list[GpuUse]]:
    """``(source, GPUs)`` from nvidia-smi, else torch; no GPU: an empty list."""
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        try:
            gpus = subprocess.run([smi, *NVIDIA_QUERY], capture_output=True, text=True, timeout=30, check=True)
            apps = subprocess.run([smi, *NVIDIA_APPS], capture_output=True, text=True, timeout=30)
            return "nvidia-smi", parse_nvidia_smi(gpus.stdout, apps.stdout if apps.returncode == 0 else "")
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        import torch
    except ImportError:
        return "none", []
    if not torch.cuda.is_available():
        return "torch", []
    gpus = []
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        gpus.append(GpuUse(str(index), torch.cuda.get_device_name(index), total - free, total, None))
    return "torch", gpus
