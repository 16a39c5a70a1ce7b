"""Host-wide counters of what local jobs hold (experimaestro ``CounterToken``).

One counter per local launcher and resource (cores, memory in MiB, GPUs,
jobs), and per Slurm launcher with ``max_submitted`` (jobs submitted, see
:mod:`.slurmlimit`). They live in files shared by every experiment of the host, so two
experiments running at once together never exceed what ``launchers.yaml``
declares. The folder is ``$XPM_TRAIN_TOKENS_DIR``, by default experimaestro's
own token folder (``$XPM_WORKDIR/tokens``, i.e. ``~/.local/share/experimaestro/tokens``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from experimaestro.tokens import CounterToken

TOKENS_DIR_ENV = "XPM_TRAIN_TOKENS_DIR"

_tokens: dict[Path, "HostCounter"] = {}
"""One token object per folder in this process (experimaestro keys its own cache by name)."""


def tokens_dir() -> Path:
    """Folder of the counters."""
    if os.environ.get(TOKENS_DIR_ENV):
        return Path(os.environ[TOKENS_DIR_ENV])
    from experimaestro.connectors.local import LocalConnector

    return LocalConnector.instance().localpath / "tokens"


RECHECK_SECONDS = 1.0
"""Longest wait before a job waiting for a counter checks it again."""

READ_ATTEMPTS = 10
"""Reads of a counter's ``informations.json`` before giving up on it"""


class HostCounter(CounterToken):
    """experimaestro's ``CounterToken``, re-checked at least every second.

    experimaestro 2.7 wakes a waiting job when another process releases its
    share (file watching, with a polling fallback). A release seen by the
    file watcher between the job's failed attempt and the start of its wait
    is lost: the fallback poller then finds nothing new and the job waits
    until something else changes, possibly forever (seen with two
    experiments sharing a one-GPU counter). Bounding each wait makes the job
    try again instead. Its size is also read again while another experiment
    rewrites it (:meth:`_read_informations`).
    """

    def _read_informations(self) -> int:
        """experimaestro's reader of the counter's size, read again while the
        file is being rewritten: experimaestro writes it in place (truncate,
        then write) whenever an experiment creates the counter, so a second
        experiment starting at the same moment could read it empty and fail
        its plan with a ``JSONDecodeError``."""
        for attempt in range(READ_ATTEMPTS):
            try:
                return super()._read_informations()
            except json.JSONDecodeError:
                if attempt == READ_ATTEMPTS - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    async def async_wait(self, timeout: float = 0) -> bool:
        bounded = min(timeout, RECHECK_SECONDS) if timeout > 0 else RECHECK_SECONDS
        await super().async_wait(timeout=bounded)
        return True


def counter(launcher: str, resource: str, total: int) -> HostCounter:
    """The counter of ``resource`` for launcher ``launcher``, holding ``total``."""
    name = f"xpm-train.{launcher}.{resource}"
    path = tokens_dir() / f"{name}.counter"
    token = _tokens.get(path)
    if token is None:
        token = _tokens[path] = HostCounter(name, path, total)
    return token
