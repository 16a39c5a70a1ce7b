"""``xpm-train pools`` (list the Slurm pools' allocations) and ``xpm-train pools stop``."""

from __future__ import annotations

from pathlib import Path

import click

from .launchers import FILE_OPTION, _config


@click.group("pools", invoke_without_command=True)
@FILE_OPTION
@click.pass_context
def pools_group(context: click.Context, file: Path | None):
    """Allocations of the Slurm launchers with pool: (job ID, nodes, time left,
    steps running, idle since); `stop` ends them."""
    if context.invoked_subcommand is None:
        context.invoke(list_pools, file=file)


@pools_group.command("list")
@FILE_OPTION
def list_pools(file: Path | None):
    """Table of the pools' allocations."""
    from ..launchers.pool.allocations import status
    from ..launchers.units import format_duration

    rows = [("LAUNCHER", "JOB ID", "STATE", "NODES", "TIME LEFT", "STEPS", "IDLE SINCE")]
    for launcher in _pooled(file):
        for s in status(launcher.binpath, launcher.name):
            a = s.allocation
            rows.append((launcher.name, a.jobid, a.state, a.nodelist or str(a.nodes),
                         format_duration(a.time_left), str(s.steps), s.idle_since))
    if len(rows) == 1:
        click.echo("no pool allocation")
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


@pools_group.command("stop")
@click.argument("jobids", nargs=-1)
@click.option("--launcher", "names", multiple=True, help="only this launcher's allocations (repeatable)")
@FILE_OPTION
def stop_pools(jobids: tuple[str, ...], names: tuple[str, ...], file: Path | None):
    """End the pools' allocations (all of them, those of --launcher, or JOBIDS);
    the steps running in them are cancelled, and their jobs fail (a re-run resumes them)."""
    from ..launchers.pool.allocations import allocations, release

    for launcher in _pooled(file):
        if names and launcher.name not in names:
            continue
        chosen = [a.jobid for a in allocations(launcher.binpath, launcher.name)
                  if not jobids or a.jobid in jobids]
        release(launcher.binpath, chosen)
        for jobid in chosen:
            click.echo(f"stopped allocation {jobid} of pool {launcher.name}")


def _pooled(file: Path | None) -> list:
    return [launcher for launcher in _config(file).launchers if getattr(launcher, "pool", None)]


COMMANDS = (pools_group,)
