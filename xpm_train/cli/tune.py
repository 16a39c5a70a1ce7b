"""``xpm-train tune ...``: the studies of a workspace.

- ``xpm-train tune list [--workdir W]``: one line per study (trials per
  state, best value);
- ``xpm-train tune show [--workdir W] STUDY``: what the study searches, the
  table of its trials (state, value, epochs, params, Learn job) and its best
  trial. STUDY is a study name or a unique prefix of it.
"""

from __future__ import annotations

from pathlib import Path

import click

from .common import workdir_option


@click.group("tune")
def tune_group():
    """Optuna studies whose trials are cached Learn jobs."""


@tune_group.command("list")
@workdir_option
def list_command(workdir: Path):
    """One line per study of the workspace."""
    from ..analysis import check_workspace
    from ..tune.report import studies_table

    table = studies_table(check_workspace(workdir))
    if not table:
        click.echo(f"No study in {workdir}: run a plan that calls xpm_train.tune.optimize.", err=True)
        return
    for row in table:
        counts = ", ".join(f"{row.get(s, 0)} {s}" for s in ("complete", "pruned", "fail", "running") if row.get(s))
        best = "-" if row["best"] is None else f"{row['best']:.4f}"
        click.echo(f"{row['study']}  {row['trials']} trials ({counts or 'none'})  best {row['metric']} = {best}")


@tune_group.command("show")
@click.argument("study")
@workdir_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def show_command(study: str, workdir: Path, fmt: str):
    """Trials of STUDY (a name or a unique prefix): states, values, params, jobs."""
    from ..analysis import check_workspace
    from ..tune.report import format_trials, study_summary, to_json
    from ..tune.storage import resolve_study, study_dir

    workdir = check_workspace(workdir)
    name = resolve_study(workdir, study)
    summary = study_summary(workdir, name)
    if fmt == "json":
        click.echo(to_json(summary))
        return
    description = summary["description"]
    click.secho(name, bold=True)
    click.echo(f"folder:    {study_dir(workdir, name)}")
    click.echo(f"objective: {description['direction']} {description['metric']}")
    click.echo("space:")
    for entry in description["space"]:
        details = {k: v for k, v in entry.items() if k != "path" and v not in (None, False, {})}
        click.echo(f"  {entry['path']}: {details}")
    click.echo(f"sampler:   {description['sampler']['type']}   pruner: {description['pruner']['type']}")
    click.echo("")
    click.echo(format_trials(summary["trials"]) if summary["trials"] else "(no trial yet)")
    best = summary["best"]
    click.echo("")
    if best is None:
        click.echo("best: none (no trial completed)")
    else:
        click.echo(f"best: trial {best['number']}, {description['metric']} = {best['value']:.4f}, job {best['job']}")
        params = ", ".join(f"{k}={v}" for k, v in best["params"].items())
        click.echo(f"      {params}")
