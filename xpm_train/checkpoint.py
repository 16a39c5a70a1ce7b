"""Checkpoints that are never half-written and whose corruption is detected.

File format: a magic line, the SHA-256 of the payload, then the payload (a
``torch.save`` of a dict). Writes are atomic (:mod:`xpm_train.atomic`: a
temporary file in the same folder, fsynced, renamed over the target); the
replaced file is kept as ``<name>.prev`` so that a checkpoint found corrupt
(a disk error, a truncated copy) falls back to the previous good one.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from .atomic import DiskFullError, atomic_write_bytes  # noqa: F401 - DiskFullError: what save raises

MAGIC = b"XPMTRAIN-CKPT-1\n"


class CorruptCheckpoint(Exception):
    """The file exists but is not a complete, intact checkpoint."""


def previous_path(path: Path) -> Path:
    return path.with_name(path.name + ".prev")


def save(path: Path, state: dict[str, Any], keep_previous: bool = True) -> None:
    """Atomically save ``state`` (tensors, numbers, RNG states...) to ``path``."""
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    atomic_write_bytes(path, MAGIC + digest + b"\n" + payload,
                       previous=previous_path(path) if keep_previous else None)


def load(path: Path, map_location="cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save`; raise :class:`CorruptCheckpoint`
    when it is truncated or altered."""
    import torch

    data = path.read_bytes()
    header_end = len(MAGIC) + 65
    if not data.startswith(MAGIC) or len(data) < header_end:
        raise CorruptCheckpoint(f"{path}: not an xpm-train checkpoint (bad header)")
    expected = data[len(MAGIC) : header_end - 1].decode()
    payload = data[header_end:]
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected:
        raise CorruptCheckpoint(
            f"{path}: checksum mismatch (expected {expected[:12]}…, got {actual[:12]}…): "
            "the file is truncated or corrupted"
        )
    return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=False)


def load_latest(path: Path, on_corrupt=None) -> dict[str, Any] | None:
    """The newest intact checkpoint among ``path`` and its ``.prev`` copy.

    ``on_corrupt(path, error)`` is called for each corrupt file skipped.
    Returns None when there is no intact checkpoint (train from scratch).
    """
    for candidate in (path, previous_path(path)):
        if not candidate.exists():
            continue
        try:
            return load(candidate)
        except CorruptCheckpoint as error:
            if on_corrupt is not None:
                on_corrupt(candidate, error)
    return None


def load_weights(path: Path) -> dict[str, Any]:
    """The model state dict stored in a checkpoint (``best.pt`` or ``last.pt``)."""
    state = load_latest(path)
    if state is None:
        raise FileNotFoundError(
            f"No intact checkpoint at {path}: was the training job completed? "
            "Check its state with `xpm-train show`."
        )
    return state["model"]
