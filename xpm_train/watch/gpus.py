"""The memory and use of a job's own GPUs, for ``xpm-train watch``.

One ``nvidia-smi --query-gpu=... --format=csv`` call per refresh, when
``nvidia-smi`` is on the PATH. A job's GPUs are those its ``start`` event
records (``gpus``: its ``CUDA_VISIBLE_DEVICES``, indices or UUIDs, and
``host``: see :func:`xpm_train.metrics.gpus_of_process`), else the index of
its ``device`` (``cuda:1``); a job on another host, or on the CPU, has none
("-").
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from dataclasses import dataclass
from typing import Optional

QUERY = "index,uuid,memory.used,memory.total,utilization.gpu"


@dataclass(frozen=True)
class GpuUse:
    memory_used_mib: float
    memory_total_mib: float
    utilization: float
    """Percent"""


def query(timeout: float = 5.0) -> dict[str, GpuUse]:
    """``{index or UUID: use}`` of this host's GPUs ({} without nvidia-smi or when it fails)."""
    command = shutil.which("nvidia-smi")
    if command is None:
        return {}
    try:
        output = subprocess.run([command, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"],
                                capture_output=True, text=True, timeout=timeout, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    found = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) != 5:
            continue
        try:
            use = GpuUse(float(cells[2]), float(cells[3]), float(cells[4]))
        except ValueError:  # [N/A]
            continue
        found[cells[0]] = found[cells[1]] = use
    return found


def job_gpus(gpus: Optional[str], host: Optional[str], device: Optional[str]) -> list[str]:
    """The indices or UUIDs of a job's GPUs on this host (see the module documentation)."""
    if host is not None and host != socket.gethostname():
        return []
    if gpus:
        return [gpu.strip() for gpu in gpus.split(",") if gpu.strip()]
    if device and device.startswith("cuda"):
        _, _, index = device.partition(":")
        return [index or "0"]
    return []


def usage(gpus: list[str], table: dict[str, GpuUse]) -> Optional[tuple[float, float, float]]:
    """``(used MiB, total MiB, mean utilisation %)`` over ``gpus``; None when none is known."""
    found = [table[gpu] for gpu in gpus if gpu in table]
    if not found:
        return None
    return (sum(g.memory_used_mib for g in found), sum(g.memory_total_mib for g in found),
            sum(g.utilization for g in found) / len(found))
