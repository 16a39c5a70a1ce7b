"""``xpm-train doctor``, ``xpm-train gpus`` and ``xpm-train gc``: operating a workspace."""

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


@click.command("gc")
@click.argument("jobs", nargs=-1)
@workdir_option
@click.option("--apply", "apply_", is_flag=True, help="Remove (without it, only show what would go)")
@click.option("--keep-best", type=int, metavar="K", help="Also remove the trials of each study outside its best K")
@click.option("--include-latest", is_flag=True, help="Also reclaim the jobs of each experiment's latest run")
@click.option("--verbose", "-v", is_flag=True, help="List every path (and every kept job)")
def gc_command(jobs, workdir: Path, apply_: bool, keep_best, include_latest: bool, verbose: bool):
    """Reclaim disk: orphan jobs, checkpoints of pruned and failed jobs, done
    jobs' resume checkpoints, trials outside the best K, unused prepared data.
    Shows what would go and the bytes freed, by reason; --apply removes it.
    JOBS (IDs, hash prefixes or folders): only these jobs. See docs/operating.md."""
    from ..reclaim.apply import apply
    from ..reclaim.describe import describe, human
    from ..reclaim.plan import plan

    reclaim = plan(workdir, keep_best=keep_best, include_latest=include_latest, jobs=jobs)
    click.echo(describe(reclaim, verbose))
    if not apply_:
        if reclaim.removals:
            click.echo("Nothing removed (dry run): add --apply to remove it.")
        return
    done = apply(reclaim)
    for note in done.notes:
        click.echo(note)
    click.echo(f"Removed {done.removed} item(s): {done.bytes} bytes ({human(done.bytes)}) freed.")


COMMANDS = (doctor_command, gpus_command, gc_command)
