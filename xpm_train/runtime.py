"""What a training job sets up in its process, and watches while it trains,
owned once for Learn, Evaluate, training functions and LightningFit.

- the device (:func:`start`: the job's ranks on the device that
  :func:`xpm_train.pipeline.pick_device` picks), the cap on its GPU memory
  (:func:`cap_gpu_memory`), the seed and, for Learn, CUDA's deterministic
  algorithms;
- the precision of a forward pass (:func:`autocast_bf16`, :func:`mixed_precision`);
- preemption (:class:`PreemptionFlag`: SIGTERM and SIGUSR1 become a flag
  checked after each step, so a job stops between two steps and saves);
- the finite-loss check (:func:`check_loss`): a diverged run stops, never
  saved as done.

Nothing here imports torch before it is called: the module is on a job's
start-up path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    import torch

    from .distributed import Ranks

logger = logging.getLogger("xpm_train.runtime")


def start(device: str = "auto", *, gpu_memory_fraction: Optional[float] = None, seed: Optional[int] = None,
          deterministic: Optional[bool] = None) -> "Ranks":
    """This process's rank of its job (:func:`xpm_train.distributed.start`: one
    process unless the launcher gave several) on its device, with its GPU
    memory capped (:func:`cap_gpu_memory`), torch seeded with ``seed`` (None:
    not seeded) and, on CUDA when ``deterministic`` is not None, cuDNN's
    autotuning off and deterministic algorithms on (or the reverse)."""
    from . import distributed

    ranks = distributed.start(device)
    cap_gpu_memory(ranks.device, gpu_memory_fraction)
    if seed is not None:
        import torch

        torch.manual_seed(seed)
    if deterministic is not None and ranks.device.type == "cuda":
        import torch

        torch.backends.cudnn.benchmark = not deterministic
        torch.use_deterministic_algorithms(deterministic, warn_only=False)
    return ranks


def cap_gpu_memory(device, fraction: float | None) -> None:
    """Limit this process to ``fraction`` of ``device``'s memory (CUDA only;
    None: the launcher's share, ``$XPM_TRAIN_GPU_MEMORY_FRACTION``, if any)."""
    if fraction is None:
        from .launchers.gpus import GPU_SHARE_ENV

        fraction = float(os.environ.get(GPU_SHARE_ENV) or 0) or None
    if fraction is None:
        return
    if not 0 < fraction <= 1:
        raise ValueError(f"gpu_memory_fraction must be in (0, 1], got {fraction}")
    if device.type != "cuda":
        return
    import torch

    torch.cuda.set_per_process_memory_fraction(fraction, device)


def autocast_bf16(amp: str, device) -> bool:
    """Whether to train under bf16 autocast (see ``Learn.amp``)."""
    if amp not in ("auto", "bf16", "off"):
        raise ValueError(f"amp={amp!r}: use 'auto', 'bf16' or 'off'")
    if amp == "off":
        return False
    if device.type == "cuda":
        import torch

        return amp == "bf16" or torch.cuda.is_bf16_supported()
    if amp == "bf16":
        logger.warning("bf16 autocast on %s: slower than float32 on CPUs without AMX/AVX512-BF16", device)
    return amp == "bf16"


def mixed_precision(bf16: bool, device):
    """The context of a forward pass: bf16 autocast, or none at all (a disabled
    ``torch.autocast`` still costs tens of microseconds per step)."""
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


class PreemptionFlag:
    """Turns SIGTERM and SIGUSR1 into a flag checked after each step; the
    handlers are installed at creation and restored by :meth:`restore` (or at
    the end of a ``with`` block: every trainer's ``execute`` holds one)."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.signal_name: str | None = None
        self._previous = {}
        try:
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not in the main thread: no preemption support
            self._previous = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum, frame):
        self.signal_name = signal.Signals(signum).name

    def reinstall(self) -> None:
        """Handle the signals again, alone (a library replaced the handlers since)."""
        for sig in self._previous:
            signal.signal(sig, self._handle)

    def restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __enter__(self) -> "PreemptionFlag":
        return self

    def __exit__(self, *exc) -> None:
        self.restore()


def check_loss(sums: dict[str, Any], epoch: int, step: int, checked_every: int, ranks=None) -> None:
    """Fail when the epoch's sums (device tensors, :meth:`Objective.sums`,
    the loss included) hold a NaN or inf, on some rank: the training loss
    diverged. One host synchronisation: Learn calls it where it synchronises
    anyway (every ``log_interval`` steps, at the end of an epoch, before a
    preemption checkpoint), so the step is known within ``checked_every``."""
    import torch

    from .summary import DIVERGED_FIX, NonFiniteResult

    local = bool(sums) and not bool(torch.stack([torch.isfinite(v).all() for v in sums.values()]).all())
    if ranks.any(local) if ranks is not None else local:
        loss = float(sums["loss"]) if "loss" in sums else float("nan")
        raise NonFiniteResult(
            f"Learn: the training loss became non-finite (summed loss {loss}{'' if local else ' on another rank'}) "
            f"in epoch {epoch}, at or before step {step} (checked every {checked_every} steps): every later step "
            "would train on broken weights, so the job stops and ends failed (never cached as done). "
            f"Fix: {DIVERGED_FIX}")
