"""Reading and checking ``launchers.yaml`` (see :mod:`.schema` for its layout).

Every problem of a file is collected and reported at once, each with file,
line and field, e.g.::

    launchers.yaml:12: launchers[1].cpu.cores: must be a positive integer, got -4 (fix: ...)

so that a bad file stops everything before anything is submitted.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable

from .schema import (
    Gpu,
    LauncherConfig,
    LaunchersConfig,
    LocalLauncherConfig,
    SlurmGpus,
    SlurmLauncherConfig,
)
from .units import parse_duration, parse_memory
from .yamlnodes import LaunchersConfigError, Node, Problems, read_nodes

TOP_KEYS = ("launchers", "default_spec")
COMMON_KEYS = ("name", "type", "tags", "priority", "cpu", "gpus", "max_time")
LOCAL_KEYS = COMMON_KEYS + ("max_jobs",)
SLURM_KEYS = COMMON_KEYS + (
    "partition", "account", "qos", "constraint", "features",
    "sbatch", "signal", "poll_interval", "binpath",
)
CPU_KEYS = ("cores", "memory")
LOCAL_GPU_KEYS = ("device", "model", "memory")
SLURM_GPU_KEYS = ("count", "model", "memory", "request", "gres_type")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
SIGNAL_RE = re.compile(r"([RB]{1,2}:)?(SIG)?[A-Z0-9]+(@\d+)?")
DEFAULT_SIGNAL = "USR1@60"
DEFAULT_POLL_INTERVAL = 60.0

Missing = object()
"""Marks a value that is absent or invalid (its problem is already recorded)."""


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


# --- the file and its launchers


def _read_top(root: Node, problems: Problems) -> LaunchersConfig:
    if not _is_mapping(root, problems, "a mapping with a 'launchers:' list"):
        return LaunchersConfig((), root.file)
    _unknown_keys(root, TOP_KEYS, problems)
    default_spec = _optional(root, "default_spec", problems, _spec)
    launchers_node = root.value.get("launchers")
    if launchers_node is None:
        problems.add(root, "is missing (fix: add a 'launchers:' list)", field="launchers")
        return LaunchersConfig((), root.file)
    if not isinstance(launchers_node.value, list) or not launchers_node.value:
        problems.add(launchers_node, "must be a non-empty list of launchers"
                     f", got {_shown(launchers_node)} (fix: start each entry with '- name: ...')")
        return LaunchersConfig((), root.file)
    launchers = [_read_launcher(node, problems) for node in launchers_node.value]
    _unique_names(launchers_node, launchers, problems)
    return LaunchersConfig(
        tuple(launcher for launcher in launchers if launcher is not None),
        root.file,
        None if default_spec is Missing else default_spec,
    )


def _read_launcher(node: Node, problems: Problems) -> LauncherConfig | None:
    if not _is_mapping(node, problems, "a launcher mapping (name, type, ...)"):
        return None
    kind = _required(node, "type", problems, _choice("local", "slurm"))
    if kind is Missing:
        _unknown_keys(node, SLURM_KEYS + ("max_jobs",), problems)
        return None
    _unknown_keys(node, LOCAL_KEYS if kind == "local" else SLURM_KEYS, problems)
    common = dict(
        name=_required(node, "name", problems, _name),
        tags=_optional(node, "tags", problems, _tags, ()),
        priority=_optional(node, "priority", problems, _integer(), 0),
        max_time=_optional(node, "max_time", problems, _duration, 0),
        where=f"{node.file}:{node.line}",
    )
    if kind == "local":
        launcher = _read_local(node, problems, common)
    else:
        launcher = _read_slurm(node, problems, common)
    return launcher


def _read_local(node: Node, problems: Problems, common: dict) -> LocalLauncherConfig | None:
    from .gpus import detect_gpus

    cpu = _optional(node, "cpu", problems, _keys(CPU_KEYS), None)
    cpu_node = node.value.get("cpu")
    written = dict(
        cores=_optional(cpu_node, "cores", problems, _integer(1, auto_ok=True), "auto"),
        memory=_optional(cpu_node, "memory", problems, _memory(auto_ok=True), "auto"),
        gpus=_optional(node, "gpus", problems, _local_gpus, "auto"),
    )
    detectors = dict(
        cores=lambda: len(os.sched_getaffinity(0)), memory=_total_memory, gpus=detect_gpus
    )
    auto = frozenset(key for key, value in written.items() if value == "auto")
    resolved = {key: detectors[key]() if key in auto else value
                for key, value in written.items()}
    max_jobs = _optional(node, "max_jobs", problems, _integer(1), None)
    values = dict(common, max_jobs=max_jobs, **resolved)
    if cpu is Missing or Missing in values.values():
        return None
    return LocalLauncherConfig(auto=auto, **values)


def _read_slurm(node: Node, problems: Problems, common: dict) -> SlurmLauncherConfig | None:
    cpu_node = node.value.get("cpu")
    cpu = _required(node, "cpu", problems, _keys(CPU_KEYS))
    values = dict(
        common,
        partition=_required(node, "partition", problems, _text),
        account=_optional(node, "account", problems, _text, None),
        qos=_optional(node, "qos", problems, _text, None),
        constraint=_constraint(node, problems),
        cores=_required(cpu_node, "cores", problems, _integer(1)) if cpu_node else Missing,
        memory=_required(cpu_node, "memory", problems, _memory()) if cpu_node else Missing,
        gpus=_optional(node, "gpus", problems, _slurm_gpus, SlurmGpus()),
        sbatch=_optional(node, "sbatch", problems, _sbatch, ()),
        signal=_optional(node, "signal", problems, _signal, DEFAULT_SIGNAL),
        poll_interval=_optional(node, "poll_interval", problems, _positive_number,
                                DEFAULT_POLL_INTERVAL),
        binpath=_optional(node, "binpath", problems, _text, _default_binpath()),
    )
    if cpu is Missing or Missing in values.values():
        return None
    return SlurmLauncherConfig(**values)


def _unique_names(list_node: Node, launchers: list, problems: Problems) -> None:
    seen: set[str] = set()
    for node, launcher in zip(list_node.value, launchers):
        if launcher is None:
            continue
        if launcher.name in seen:
            problems.add(node.value["name"], f"launcher name {launcher.name!r} is used twice"
                         " (fix: give each launcher its own name)")
        seen.add(launcher.name)


# --- generic field access

Reader = Callable[[Node, Problems], Any]


def _required(parent: Node | None, key: str, problems: Problems, read: Reader) -> Any:
    if parent is None or not isinstance(parent.value, dict):
        return Missing
    node = parent.value.get(key)
    if node is None:
        problems.add(parent, "is required", field=parent.child(key))
        return Missing
    return read(node, problems)


def _optional(parent: Node | None, key: str, problems: Problems, read: Reader,
              default: Any = Missing) -> Any:
    if parent is None or not isinstance(parent.value, dict):
        return default
    node = parent.value.get(key)
    if node is None or node.value is None:
        return default
    return read(node, problems)


def _is_mapping(node: Node, problems: Problems, expected: str) -> bool:
    if isinstance(node.value, dict):
        return True
    problems.add(node, f"must be {expected}, got {_shown(node)}")
    return False


def _unknown_keys(node: Node, allowed: tuple[str, ...], problems: Problems) -> None:
    for key, child in node.items():
        if key in allowed:
            continue
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        problems.add(child, f"unknown key '{key}' (fix: {hint}allowed keys are "
                     f"{', '.join(allowed)})")


def _shown(node: Node) -> str:
    value = node.value
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{value!r} ({type(value).__name__})"


# --- value readers (each records its own problem and returns Missing when wrong)


def _keys(allowed: tuple[str, ...]) -> Reader:
    def read(node: Node, problems: Problems):
        if not _is_mapping(node, problems, f"a mapping with {', '.join(allowed)}"):
            return Missing
        _unknown_keys(node, allowed, problems)
        return node.value
    return read


def _integer(minimum: int | None = None, *, auto_ok: bool = False) -> Reader:
    def read(node: Node, problems: Problems):
        value = node.value
        if auto_ok and value == "auto":
            return "auto"
        if isinstance(value, bool) or not isinstance(value, int):
            problems.add(node, f"must be an integer{' or auto' if auto_ok else ''}"
                         f", got {_shown(node)} (fix: write a whole number, e.g. 4)")
            return Missing
        if minimum is not None and value < minimum:
            kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            problems.add(node, f"must be {kind}, got {value} (fix: e.g. "
                         f"{max(minimum, 4)}{' or auto' if auto_ok else ''})")
            return Missing
        return value
    return read


def _positive_number(node: Node, problems: Problems):
    value = node.value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        problems.add(node, f"must be a positive number of seconds, got {_shown(node)}"
                     " (fix: e.g. 60)")
        return Missing
    return float(value)


def _text(node: Node, problems: Problems):
    if not isinstance(node.value, str) or not node.value.strip():
        problems.add(node, f"must be a non-empty text, got {_shown(node)}")
        return Missing
    return node.value.strip()


def _name(node: Node, problems: Problems):
    value = _text(node, problems)
    if value is not Missing and not NAME_RE.fullmatch(value):
        problems.add(node, f"{value!r} is not a valid name (fix: use letters, digits, "
                     "'_', '.', '-', e.g. 'gpu-partition')")
        return Missing
    return value


def _choice(*choices: str) -> Reader:
    def read(node: Node, problems: Problems):
        if node.value not in choices:
            problems.add(node, f"must be one of {', '.join(choices)}, got {_shown(node)}")
            return Missing
        return node.value
    return read


def _tags(node: Node, problems: Problems):
    items = node.value if isinstance(node.value, list) else [node]
    tags = []
    for item in items:
        if not isinstance(item.value, str) or not NAME_RE.fullmatch(item.value):
            problems.add(item, f"tags must be words (letters, digits, _ . -), got "
                         f"{_shown(item)} (fix: e.g. tags: [gpu, fast])")
            return Missing
        tags.append(item.value)
    return tuple(tags)


def _memory(*, auto_ok: bool = False) -> Reader:
    def read(node: Node, problems: Problems):
        if auto_ok and node.value == "auto":
            return "auto"
        try:
            if isinstance(node.value, bool) or not isinstance(node.value, (str, int)):
                raise ValueError("not a size")
            value = parse_memory(str(node.value))
        except ValueError as e:
            problems.add(node, f"must be a memory size such as 64G or 512MiB, got "
                         f"{_shown(node)}: {e}")
            return Missing
        if value <= 0:
            problems.add(node, f"must be a positive memory size, got {node.value!r}")
            return Missing
        return value
    return read


def _duration(node: Node, problems: Problems):
    value = node.value
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    try:
        if not isinstance(value, str):
            raise ValueError("not a duration")
        seconds = parse_duration(value)
        if seconds <= 0:
            raise ValueError("must be positive")
        return seconds
    except ValueError as e:
        problems.add(node, f"must be a duration such as 2d, 48h or 30m, got {_shown(node)}"
                     f": {e}")
        return Missing


def _spec(node: Node, problems: Problems):
    from .match import parse_spec

    if not isinstance(node.value, str):
        problems.add(node, f"must be a spec string, got {_shown(node)}")
        return Missing
    try:
        parse_spec(node.value)
    except ValueError as e:
        problems.add(node, f"cannot parse spec {node.value!r}: {e} (fix: e.g. "
                     "\"duration=2h & cuda(mem=8G)*1 & cpu(cores=4)\")")
        return Missing
    return node.value


def _local_gpus(node: Node, problems: Problems):
    if node.value == "auto":
        return "auto"
    if not isinstance(node.value, list):
        problems.add(node, f"must be auto or a list of GPUs, got {_shown(node)} "
                     "(fix: gpus: auto, or gpus: [{model: A100, memory: 80G}])")
        return Missing
    gpus = []
    for index, item in enumerate(node.value):
        if _keys(LOCAL_GPU_KEYS)(item, problems) is Missing:
            return Missing
        memory = _required(item, "memory", problems, _memory())
        model = _optional(item, "model", problems, _text, "")
        device = _optional(item, "device", problems, _device, str(index))
        if Missing in (memory, model, device):
            return Missing
        gpus.append(Gpu(device=device, model=model, memory=memory))
    return tuple(gpus)


def _device(node: Node, problems: Problems):
    value = node.value
    if isinstance(value, bool) or not isinstance(value, (int, str)) or str(value) == "":
        problems.add(node, f"must be a CUDA device index or UUID, got {_shown(node)}")
        return Missing
    return str(value)


def _slurm_gpus(node: Node, problems: Problems):
    if _keys(SLURM_GPU_KEYS)(node, problems) is Missing:
        return Missing
    values = dict(
        count=_optional(node, "count", problems, _integer(0), 0),
        model=_optional(node, "model", problems, _text, ""),
        memory=_optional(node, "memory", problems, _memory(), 0),
        request=_optional(node, "request", problems, _choice("gres", "gpus-per-node"), "gres"),
        gres_type=_optional(node, "gres_type", problems, _text, ""),
    )
    if Missing in values.values():
        return Missing
    if values["count"] and not values["memory"]:
        problems.add(node, "memory is required when count > 0 (fix: e.g. memory: 40G)",
                     field=node.child("memory"))
        return Missing
    return SlurmGpus(**values)


def _constraint(node: Node, problems: Problems):
    constraint = _optional(node, "constraint", problems, _text, None)
    features = _optional(node, "features", problems, _tags, None)
    if constraint is not None and features is not None:
        problems.add(node.value["features"], "give either constraint or features, not both")
        return Missing
    if features not in (None, Missing):
        return "&".join(features)
    return constraint


def _sbatch(node: Node, problems: Problems):
    items = node.value if isinstance(node.value, list) else [node]
    options = []
    for item in items:
        if not isinstance(item.value, str) or not item.value.startswith("-"):
            problems.add(item, f"sbatch options must be texts starting with '-', got "
                         f"{_shown(item)} (fix: e.g. sbatch: ['--exclusive'])")
            return Missing
        options.append(item.value)
    return tuple(options)


def _signal(node: Node, problems: Problems):
    value = node.value
    if value is False or (isinstance(value, str) and value.lower() == "none"):
        return None
    if not isinstance(value, str) or not SIGNAL_RE.fullmatch(value):
        problems.add(node, f"must be a Slurm --signal value such as USR1@60 or B:USR1@60, "
                     f"got {_shown(node)} (or false for none)")
        return Missing
    return value


def _total_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def _default_binpath() -> str:
    sbatch = shutil.which("sbatch")
    return str(Path(sbatch).parent) if sbatch else "/usr/bin"


__all__ = ["load_file", "load_text", "LaunchersConfigError"]
