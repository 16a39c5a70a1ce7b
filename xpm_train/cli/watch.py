"""``xpm-train watch``: a live table of the jobs of a workspace, experiment or study."""

from __future__ import annotations

from pathlib import Path

import click

from .common import workdir_option


@click.command("watch")
@workdir_option
@click.option("--experiment", "-e", help="Only the jobs of this experiment (its current run)")
@click.option("--where", "-w", multiple=True, metavar="TAG=VALUE",
              help="Only the jobs whose tag (or state) has this value (repeatable)")
@click.option("--study", help="Only the trials of this Optuna study (a name or a unique prefix), best first")
@click.option("--sort", "-s", type=click.Choice(["state", "best", "progress", "elapsed", "job"]),
              help="First sort key (the key s cycles through them); default: state, best for a study")
@click.option("--interval", "-n", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="Seconds between refreshes")
@click.option("--once", is_flag=True, help="Print one frame and exit (scripts, tests)")
def watch_command(workdir: Path, experiment, where, study, sort, interval: float, once: bool):
    """A live table, one row per job: state, progress (epoch and step of the
    total), latest and best score, samples/s, elapsed and ETA, the job's GPU
    memory and use. Exits when every job shown has ended; keys: q quit,
    s sort, / filter."""
    from ..watch.sweep import Sweep
    from ..watch.view import loop, refreshed

    sweep = Sweep(workdir, experiment=experiment, where=list(where), study=study)
    if once:
        click.echo("\n".join(refreshed(sweep, sort, height=1_000_000)[1]))
        return
    try:
        loop(sweep, interval, sort)
    except KeyboardInterrupt:
        click.echo("")
