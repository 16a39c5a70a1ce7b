"""``xpm-train doctor`` and ``xpm-train gpus``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import workdir_option


@click.command("doctor")
@workdir_option
def doctor_command(workdir: Path):
    """Check Python, torch/CUDA, experimaestro, the workspace, launchers.yaml,
    Slurm and MLflow: one line per check (OK, WARN, FAIL) with the fix.
    Exits 1 when a check FAILs (WARN: works, with less)."""
    from ..doctor import FAIL, WARN, run_checks

    checks = run_checks(workdir)
    colors = {"OK": "green", WARN: "yellow", FAIL: "red"}
    for check in checks:
        click.secho(check.line(), fg=colors[check.status])
    failed = sum(check.status == FAIL for check in checks)
    warned = sum(check.status == WARN for check in checks)
    click.echo(f"{len(checks)} checks: {failed} FAIL, {warned} WARN")
    sys.exit(1 if failed else 0)


@click.command("gpus")
def gpus_command():
    """GPU inventory and current use (memory, utilisation, processes)."""
    from ..doctor import gpu_inventory

    source, gpus = gpu_inventory()
    if not gpus:
        click.echo("No GPU: nvidia-smi is not installed or lists none, and torch sees no CUDA device; "
                   "jobs run on CPU.")
        return
    click.echo(f"{len(gpus)} GPU(s) (from {source}):")
    click.echo(f"{'GPU':>3}  {'model':<28} {'used':>6} / {'total':>6}      util  processes")
    for gpu in gpus:
        click.echo(gpu.line())


COMMANDS = (doctor_command, gpus_command)
