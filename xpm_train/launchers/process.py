"""The experimaestro side of a local job: its launcher, its processes (their
exit code read once and shared), and a job started by another experiment
adopted rather than started twice.

Launcher: :class:`LocalLauncher` is what ``type: local`` (:mod:`.kinds.local`)
builds for one job size: it makes the job wait for its reservation, starts it
warm, and sizes its thread pools and pins its GPUs at the top of the job script.

Shared exit code: experimaestro 2.7 waits for a local job's process from
several coroutines at once: the scheduler and each host-wide counter the job
holds (cores, memory, job slots: :mod:`.tokens`). The first to wake up reaps
the process and gets its exit code; the others find no child left and get
``-1``, and the scheduler, usually last, logs ``Job ... ended with code -1``
for a job that succeeded. Here the first wait is the only one: every caller
awaits it.

Adoption: when two experiments submit the same job at once, experimaestro
2.7 lets the second one take the job's lock in the instant between the first
one starting the job's process and that process locking the job itself. The
second scheduler then rewrites the job script (truncating the file the first
process is reading: it dies of a ``SyntaxError``, exit 1) and starts a second
process. Our launchers' script and process builders run at that point, under
the job's lock: when the job's ``.pid`` file names a live process, they leave
the script alone and hand the scheduler that process to wait for, as
experimaestro does itself for a job found running at submission.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import TYPE_CHECKING

from experimaestro.connectors.local import LocalConnector, LocalProcess, LocalProcessBuilder
from experimaestro.launchers import Launcher
from experimaestro.scriptbuilder import PythonScriptBuilder

from .gpurun import lock_dir
from .ranks import Layout
from .reservation import Reservation, thread_pool_code

if TYPE_CHECKING:
    from experimaestro.launcherfinder.specs import HostSimpleRequirement

    from .kinds.local import LocalLauncherConfig

logger = logging.getLogger("xpm_train.launchers")


class SharedWaitProcess(LocalProcess):
    """experimaestro's local process, reaped by one wait whose code all callers get."""

    def __init__(self, process):
        super().__init__(process)
        self._exit: asyncio.Future | None = None

    async def aio_wait(self) -> int:
        if self._exit is None:
            self._exit = asyncio.ensure_future(super().aio_wait())
        # shield: a caller cancelled while waiting must not cancel the others' wait
        return await asyncio.shield(self._exit)


def running_process(job):
    """The live local process that ``job``'s ``.pid`` file names (None: no
    file, or its process ended), as experimaestro's own ``PsutilProcess``."""
    import psutil
    from experimaestro.connectors.local import PsutilProcess

    try:
        spec = json.loads(job.pidpath.read_text())
        process = PsutilProcess(int(spec["pid"])) if spec.get("type") == "local" else None
        alive = process is not None and process._process.status() != psutil.STATUS_ZOMBIE
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):  # none, half-written, ended
        return None
    return process if alive else None


class AdoptingScriptBuilder(PythonScriptBuilder):
    """experimaestro's script builder, which leaves the script of a job whose
    process is running alone and records that process in ``adopted`` (keyed
    by the script's path) for :class:`SharedWaitProcessBuilder` to return."""

    def __init__(self, adopted: dict):
        super().__init__()
        self.adopted = adopted

    def write(self, job):
        script = job.jobpath / f"{job.name}.py"
        process = running_process(job) if script.is_file() else None
        if process is None:
            return super().write(job)
        logger.info("job %s is already running (%s), started by another experiment: waiting for it",
                    job.jobpath.name[:8], process)
        self.adopted[os.path.realpath(script)] = process
        return script


class SharedWaitProcessBuilder(LocalProcessBuilder):
    adopted: dict | None = None
    """Processes to return instead of starting the script (see :class:`AdoptingScriptBuilder`)"""

    def start(self, task_mode=False):
        if self.adopted and self.command:
            process = self.adopted.pop(os.path.realpath(self.command[-1]), None)
            if process is not None:
                return process
        return SharedWaitProcess(super().start(task_mode)._process)


class JobConnector(LocalConnector):
    """The local connector, with processes waited for once (same folders and locks)."""

    INSTANCE: "JobConnector | None" = None

    @staticmethod
    def instance() -> "JobConnector":
        if JobConnector.INSTANCE is None:
            JobConnector.INSTANCE = JobConnector(LocalConnector.instance().localpath)
        return JobConnector.INSTANCE

    def processbuilder(self):
        return SharedWaitProcessBuilder()


class LocalLauncher(Launcher):
    """experimaestro launcher for one job size on a ``type: local`` launcher."""

    def __init__(self, config: LocalLauncherConfig, requirement: "HostSimpleRequirement",
                 layout: Layout = Layout()):
        super().__init__(JobConnector.instance(), priority=config.priority)
        self.config = config
        self.reservation = Reservation.of(config, requirement)
        self.layout = layout
        self.devices = [gpu.device for gpu in config.gpus]
        self.gpu_lock_dir = str(lock_dir())
        self.adopted: dict = {}
        """Jobs found running when this launcher was to start them (see :mod:`.process`)"""
        self.addListener(self._reserve)

    def _reserve(self, job) -> None:
        """Make the job wait for its share of every counter (experimaestro tokens)."""
        from .tokens import counter

        for resource, share, total in self.reservation.shares:
            job.dependencies.add(counter(self.config.name, resource, total).dependency(share))

    def processbuilder(self):
        """experimaestro's process builder; the job starts warm (forked by the
        user's fork server, see :mod:`xpm_train.warm.forkclient`) unless turned off."""
        from ..warm.forkclient import warm_command

        builder = super().processbuilder()
        builder.command = warm_command(self.reservation.cores)
        builder.adopted = self.adopted
        return builder

    def scriptbuilder(self):
        """experimaestro's Python script builder, which adopts a job another
        experiment has just started instead of rewriting its script (see :mod:`.process`)."""
        return AdoptingScriptBuilder(self.adopted)

    def launcher_info_code(self) -> str:
        """Job-script lines (inside ``if __name__ == '__main__':``, before torch is
        imported) that size the job's thread pools to its cores and pin its GPUs."""
        code = thread_pool_code(repr(str(self.reservation.cores)))
        if self.devices:
            pin = f"pin({self.reservation.gpus}, {self.devices!r}, {self.gpu_lock_dir!r})\n"
            if self.layout.world_size > 1:  # ranks > 0 (RANK set) use rank 0's GPUs
                pin = "if not os.environ.get('RANK'):\n        " + pin
            code += "    from xpm_train.launchers.gpurun import pin\n    " + pin
        return code

    def __str__(self) -> str:
        return (f"LocalLauncher({self.config.name}, gpus={self.reservation.gpus}, "
                f"reserves={dict((r, s) for r, s, _ in self.reservation.shares)})")
