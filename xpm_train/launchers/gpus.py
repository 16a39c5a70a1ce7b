"""Which GPUs this machine has (for ``gpus: auto``).

Detection asks ``nvidia-smi`` (never imports torch). Tests, and machines
without a GPU, can declare a fake inventory instead::

    XPM_TRAIN_FAKE_GPUS="2x80G"          # two 80G GPUs, devices 0 and 1
    XPM_TRAIN_FAKE_GPUS="1x80G,2x24G"    # devices 0 (80G), 1 and 2 (24G)
    XPM_TRAIN_FAKE_GPUS=""               # no GPU at all

If ``CUDA_VISIBLE_DEVICES`` is set when detecting, only those devices are kept.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

from .units import MIB, parse_memory

GPU_SHARE_ENV = "XPM_TRAIN_GPU_MEMORY_FRACTION"
"""The share of its GPU a job gets where several jobs share it (a Slurm pool
with ``jobs_per_gpu``); ``xpm_train.runtime.cap_gpu_memory`` applies it unless
the task sets its own ``gpu_memory_fraction``"""

logger = logging.getLogger("xpm_train.launchers")

FAKE_GPUS_ENV = "XPM_TRAIN_FAKE_GPUS"


@dataclass(frozen=True)
class Gpu:
    """One local GPU: ``device`` is its CUDA index (what CUDA_VISIBLE_DEVICES takes)."""

    device: str
    model: str
    memory: int
    """Bytes"""


def detect_gpus() -> tuple[Gpu, ...]:
    """GPUs of this machine: the fake inventory if declared, else ``nvidia-smi``'s."""
    fake = os.environ.get(FAKE_GPUS_ENV)
    gpus = parse_fake_gpus(fake) if fake is not None else _nvidia_smi_gpus()
    return _visible(gpus, os.environ.get("CUDA_VISIBLE_DEVICES"))


def parse_fake_gpus(text: str) -> tuple[Gpu, ...]:
    """GPUs described as ``NxMEM[,NxMEM...]`` (e.g. ``2x80G``), numbered from 0.

    :raises ValueError: on a malformed description
    """
    gpus: list[Gpu] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"(\d+)\s*[xX*]\s*(\S+)", part)
        if not match:
            raise ValueError(
                f"{FAKE_GPUS_ENV}: cannot read {part!r} (expected e.g. '2x80G')"
            )
        memory = parse_memory(match.group(2))
        for _ in range(int(match.group(1))):
            gpus.append(Gpu(device=str(len(gpus)), model="fake", memory=memory))
    return tuple(gpus)


@lru_cache(maxsize=1)
def _nvidia_smi_gpus() -> tuple[Gpu, ...]:
    """GPUs listed by ``nvidia-smi`` (none when it is absent or fails)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return ()
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as e:
        logger.warning("nvidia-smi failed (%s): no GPU detected", e)
        return ()
    gpus = []
    for line in out.strip().splitlines():
        index, name, mem_mib = (field.strip() for field in line.split(","))
        gpus.append(Gpu(device=index, model=name, memory=int(float(mem_mib)) * MIB))
    return tuple(gpus)


def _visible(gpus: tuple[Gpu, ...], visible: str | None) -> tuple[Gpu, ...]:
    """Only the GPUs named in CUDA_VISIBLE_DEVICES (indices), when it is set."""
    if visible is None:
        return gpus
    wanted = [v.strip() for v in visible.split(",") if v.strip()]
    if not all(w.isdigit() for w in wanted):
        return gpus  # UUIDs or MIG names: keep the whole inventory
    return tuple(g for g in gpus if g.device in wanted)
