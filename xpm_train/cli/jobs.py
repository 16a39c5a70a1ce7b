"""``xpm-train run``, ``results``, ``show``, ``export`` and ``reproduce``: plans and the jobs they made."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import workdir_option


@click.command("run", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("params", type=click.Path(path_type=Path))
@workdir_option
@click.option("--conf", "-c", multiple=True, metavar="KEY=VALUE", help="Override a key of params.yaml")
@click.pass_context
def run_command(ctx, params: Path, workdir: Path, conf):
    """Run a plan: ``experimaestro run-experiment --workdir W PARAMS``, after
    checking that PARAMS (a params.yaml or its folder) and its plan file exist.
    Other options are passed to experimaestro."""
    import yaml
    from experimaestro.experiments.cli import experiments_cli

    if params.is_dir():
        params = params / "params.yaml"
    if not params.is_file():
        raise click.BadParameter(
            f"{params}: no such file. Give a plan's params.yaml or its folder, "
            "e.g. experiments/quickstart", param_hint="PARAMS")
    try:
        content = yaml.safe_load(params.read_text()) or {}
    except yaml.YAMLError as error:
        raise click.BadParameter(f"{params} is not valid YAML: {error}", param_hint="PARAMS")
    if not isinstance(content, dict):
        raise click.BadParameter(f"{params} must be a mapping of keys to values", param_hint="PARAMS")
    plan = params.parent / content.get("file", "experiment")
    if "module" not in content and not plan.with_suffix(".py").is_file():
        raise click.BadParameter(
            f"{params}: its plan file {plan.with_suffix('.py')} does not exist "
            "(key 'file' names it, relative to the YAML file)", param_hint="PARAMS")
    args = ["--workdir", str(workdir)]
    for item in conf:
        args += ["-c", item]
    experiments_cli.main([*args, *ctx.args, str(params)], prog_name="xpm-train run")


@click.command("results")
@workdir_option
@click.option("--experiment", "-e", help="Only the jobs of this experiment (its last run)")
@click.option("--where", "-w", multiple=True, metavar="TAG=VALUE", help="Keep jobs whose tag or column (model, state, a metric) has this value (repeatable)")
@click.option("--task", "-t", help="Only jobs whose task ID ends with this (e.g. learn, evaluate)")
@click.option("--sort", "-s", help="Sort by this column, best first (ascending for mse, loss...; "
              "'score' and the metric it is, e.g. 'objective', follow each job's declared direction)")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def results_command(workdir, experiment, where, task, sort, fmt):
    """One row per job: ID, task, state, tags, final metrics."""
    from ..analysis import format_table, results, sort_best

    frame = results(workdir, experiment=experiment, where=list(where))
    if task and not frame.empty:
        frame = frame[frame["task"].str.endswith(task)]
    if sort:
        if sort not in frame.columns:
            raise click.BadParameter(
                f"no column '{sort}'; columns: {', '.join(frame.columns)}", param_hint="--sort"
            )
        frame = sort_best(frame, sort)
    if frame.empty:
        click.echo("No job matches.", err=True)
        return
    if fmt == "csv":
        click.echo(frame.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(frame.to_json(orient="records", indent=2))
    else:
        click.echo(format_table(frame))


@click.command("export")
@click.argument("job")
@click.option("--to", "to", required=True, type=click.Path(path_type=Path), help="New folder to write")
@workdir_option
def export_command(job: str, to: Path, workdir: Path):
    """Export a trained model (weights, config, metrics, README) to a new folder."""
    from ..export import export

    target = export(job, to, workdir)
    click.echo(f"exported to {target}: " + ", ".join(sorted(p.name for p in target.iterdir())))


@click.command("show")
@click.argument("job")
@workdir_option
def show_command(job, workdir):
    """Config, tags, state, metrics, paths and logs of JOB (ID, hash prefix or folder)."""
    from ..analysis import resolve
    from ..jobfolder import PARAMS

    info = resolve(job, workdir)
    params = json.loads((info.path / PARAMS).read_text())
    task_object = next(o for o in params["objects"] if o.get("identifier") == info.hash)
    click.secho(info.id, bold=True)
    click.echo(f"state:  {info.state}")
    click.echo(f"folder: {info.path}")
    click.echo("tags:   " + (", ".join(f"{k}={v}" for k, v in info.tags.items()) or "(none)"))
    for kind, path in info.log_paths.items():
        click.echo(f"std{kind}: {path}{'' if path.exists() else ' (missing)'}")
    click.echo("config:")
    click.echo(describe_config(task_object, {o["id"]: o for o in params["objects"]}, indent="  "))
    click.echo(describe_provenance(info.path))
    metrics = info.metrics()
    if metrics:
        from ..analysis import flatten

        click.echo("metrics:")
        for key, value in flatten(metrics).items():
            click.echo(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")


@click.command("reproduce")
@click.argument("job")
@workdir_option
@click.option("--into", type=click.Path(path_type=Path), default=None,
              help="Workspace of the reproduction (default: a new temporary folder)")
def reproduce_command(job: str, workdir: Path, into: Path | None):
    """Run JOB's exact config again in another workspace and compare weights
    (bit for bit), metrics and the environment recorded. Exits 0 when the
    copy is identical, 1 when it differs (the differences are printed)."""
    from ..reproduce import reproduce

    result = reproduce(job, workdir, into)
    click.echo("\n".join(result.lines()))
    if not result.identical:
        raise SystemExit(1)


def describe_provenance(folder: Path) -> str:
    """The ``provenance:`` section of ``show``: what made the job's result."""
    from ..jobfolder import PROVENANCE
    from ..provenance import read

    recorded = read(folder)
    if recorded is None:
        return "provenance: (none recorded: the job ran before xpm-train recorded it)"
    lines = ["provenance:"]
    for key, value in recorded.summary().items():
        if key != "code_sha256":
            lines.append(f"  {key}: {value or '-'}")
    code = ", ".join(f"{name} {digest[:12]}" for name, digest in recorded.code.items())
    lines.append(f"  code: {code or '(no module of yours)'}")
    lines.append(f"  packages: {len(recorded.packages)} (list in {folder / PROVENANCE})")
    return "\n".join(lines)


def describe_config(obj: dict, objects: dict, indent: str) -> str:
    """The fields of a serialized config, nested configs expanded."""
    lines = [f"{indent}type: {obj['typename']}"]
    for key, value in obj.get("fields", {}).items():
        if isinstance(value, dict) and value.get("type") == "python":
            lines.append(f"{indent}{key}:")
            lines.append(describe_config(objects[value["value"]], objects, indent + "  "))
        elif isinstance(value, dict) and value.get("type") == "path":
            lines.append(f"{indent}{key}: {value['value']}")
        else:
            lines.append(f"{indent}{key}: {json.dumps(value)}")
    return "\n".join(lines)


COMMANDS = (run_command, results_command, show_command, export_command, reproduce_command)
