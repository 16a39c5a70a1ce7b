"""The ``xpm-train`` command line: one module per command group.

- :mod:`.jobs`: ``run``, ``results``, ``show``, ``export``, ``reproduce`` (plans and their jobs);
- :mod:`.launchers`: ``launchers list|explain``;
- :mod:`.pools`: ``pools [list]|stop`` (allocations of the Slurm pools);
- :mod:`.tracking`: ``mlflow ui|sync``, ``plot``;
- :mod:`.tune`: ``tune list|show``;
- :mod:`.watch`: ``watch`` (a live table of a sweep's jobs);
- :mod:`.workflows`: ``doctor``, ``gpus``, ``gc`` (operating a workspace);
- :mod:`.common`: the shared ``--workdir`` option and the error handler (an
  error the user can fix: its message, exit code 1; a usage error: exit code
  2; anything else: its traceback).

Every command module imports what it runs lazily, so that the CLI starts fast.
"""

from __future__ import annotations

import click

from . import jobs, launchers, pools, tracking, tune, watch, workflows
from .common import UserErrorGroup


@click.group(cls=UserErrorGroup)
@click.option("--debug", is_flag=True, help="Show tracebacks")
def main(debug: bool):
    """xpm-train: reproducible, deduplicated deep-learning experiments."""


for command in (*jobs.COMMANDS, launchers.launchers_group, pools.pools_group,
                tracking.mlflow_group,
                tracking.plot_command, tune.tune_group, watch.watch_command, *workflows.COMMANDS):
    main.add_command(command)

__all__ = ["main"]
