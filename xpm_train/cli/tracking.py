"""``xpm-train mlflow ui|sync`` and ``xpm-train plot``.

mlflow is imported by the sub-commands only (never when the CLI starts).
"""

from __future__ import annotations

from pathlib import Path

import click

from .common import workdir_option

URI_HELP = ("MLflow URI (default: MLFLOW_TRACKING_URI, else the workspace store "
            "WORKDIR/mlflow/mlflow.db)")


@click.group("mlflow")
def mlflow_group():
    """MLflow view of the workspace: UI server and sync from job folders."""


@mlflow_group.command("ui")
@workdir_option
@click.option("--port", type=int, default=None, help="Port (default: a free one)")
@click.option("--uri", default=None, help="Store to serve (default: the workspace store)")
def ui_command(workdir: Path, port: int | None, uri: str | None):
    """Serve the MLflow UI of the workspace store on 127.0.0.1 (Ctrl-C stops it)."""
    import signal
    import sys

    from ..analysis import check_workspace
    from ..tracking import store
    from ..tracking.service import start_server, stop_server

    uri = uri or store.workspace_uri(check_workspace(workdir))
    click.echo(f"Starting the MLflow UI on {uri} (the MLflow server takes a while to start) ...", err=True)
    process, url = start_server(uri, port, progress=lambda waited: click.echo(
        f"  ... still starting ({waited:.0f} s)", err=True))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the server with us
    click.echo(url)
    click.echo("Press Ctrl-C to stop.", err=True)
    try:
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_server(process)


@mlflow_group.command("sync")
@workdir_option
@click.option("--experiment", "-e", default=None,
              help="Only the jobs of this experimaestro experiment (and file new runs under it)")
@click.option("--uri", default=None, help=URI_HELP)
def sync_command(workdir: Path, experiment: str | None, uri: str | None):
    """Push to MLflow what finished jobs have and MLflow lacks (idempotent)."""
    from ..tracking.sync import sync_workspace

    report = sync_workspace(workdir, uri=uri, experiment=experiment)
    click.echo(report.summary())


@click.command("plot")
@click.argument("jobs", nargs=-1, required=True)
@workdir_option
@click.option("--metric", "-m", default="val_accuracy", show_default=True,
              help="<split>_<name>: val_accuracy, train_loss, train_step_loss, eval_accuracy...")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="PNG file (default: <metric>.png)")
def plot_command(jobs: tuple[str, ...], workdir: Path, metric: str, out: Path | None):
    """Learning curves of JOB... (IDs, hash prefixes or folders), one line per
    job labelled by its tags."""
    from ..analysis import resolve
    from ..tracking.plots import compare_curves

    lines = []
    for job in jobs:
        info = resolve(job, workdir)
        label = " ".join(f"{k}={v}" for k, v in info.tags.items()) or f"{info.name} {info.hash[:8]}"
        lines.append((label, info.path))
    path = compare_curves(lines, metric, out or Path(f"{metric}.png"))
    click.echo(str(path))
