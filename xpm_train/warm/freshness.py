"""The fork server's freshness: what it preloads, and whether forking a job
from it now still gives that job today's code in a sound process.

* :func:`preload` imports, once, what every job imports (:data:`PRELOAD`:
  torch, ``torch._dynamo``, experimaestro's job runner, xpm_train's tasks...)
  and runs one optimizer step on a throw-away model (torch's lazy imports),
  leaving no thread, CUDA context or used RNG state behind; it never imports
  the user's plan modules (a job imports them after the fork, from disk);
* **stale code**: :func:`fingerprint` records the modification time and size
  of every file imported (about 2,500: xpm_train, experimaestro, torch...) at
  the server's start; :func:`changed` stats them again before each fork (a
  few ms). Any change (an edited xpm_train module, a ``pip install``) and the
  server (:mod:`.forkserver`) refuses the job (the client starts a fresh
  server and execs the job normally), stops listening and exits once its
  running jobs have ended;
* :func:`fork_safety`: the server must have a single thread and no CUDA
  context when it forks (a forked copy of either is broken).
"""

from __future__ import annotations

import os
import sys

PRELOAD = ("torch", "torch._dynamo", "torch.optim", "experimaestro.run", "xpm_train.learn",
           "xpm_train.evaluate", "xpm_train.tracking.mlflow_sink", "optuna", "xpm_train.tune.trial",
           "xpm_train.tune.task", "matplotlib")
"""Modules imported once by the server (never the user's plan modules): what
Learn and Evaluate jobs import, and what a study's trials (optuna, to report
to the study) and its Tune job (optuna, matplotlib) add"""


def preload() -> None:
    """Import what every job imports, and warm torch's lazy imports, without
    leaving a thread, a CUDA context or a used RNG behind."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    import torch

    state = torch.random.get_rng_state()
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.zeros(1, 2)).sum().backward()
    optimizer.step()
    torch.random.set_rng_state(state)


def fingerprint() -> dict[str, tuple[int, int]]:
    """``{file: (mtime ns, size)}`` of every module file imported so far."""
    found = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and os.path.isabs(path):
            try:
                info = os.stat(path)
            except OSError:
                continue
            found[path] = (info.st_mtime_ns, info.st_size)
    return found


def changed(recorded: dict[str, tuple[int, int]]) -> str | None:
    """The first imported file that changed since ``recorded`` (None: none)."""
    for path, (mtime, size) in recorded.items():
        try:
            info = os.stat(path)
        except OSError:
            return path
        if (info.st_mtime_ns, info.st_size) != (mtime, size):
            return path
    return None


def fork_safety() -> str | None:
    """Why forking now would give a job a broken process (None: safe)."""
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        return f"the server has {threads} threads"
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return "CUDA is initialised in the server"
    return None
