"""Local job processes whose exit code is read once and shared.

experimaestro 2.7 waits for a local job's process from several coroutines at
once: the scheduler and each host-wide counter the job holds (cores, memory,
job slots: :mod:`.tokens`). The first to wake up reaps the process and gets
its exit code; the others find no child left and get ``-1``, and the
scheduler, usually last, logs ``Job ... ended with code -1`` for a job that
succeeded. Here the first wait is the only one: every caller awaits it.
"""

from __future__ import annotations

import asyncio

from experimaestro.connectors.local import LocalConnector, LocalProcess, LocalProcessBuilder


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


class SharedWaitProcessBuilder(LocalProcessBuilder):
    def start(self, task_mode=False):
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
