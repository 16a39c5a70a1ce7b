"""``xpm-train launchers list`` and ``xpm-train launchers explain SPEC``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..launchers.lookup import ENV

FILE_OPTION = click.option(
    "--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"launchers file to use (default: ${ENV}, then the project's launchers.yaml, "
    "then ~/.config/xpm-train/launchers.yaml)",
)


@click.group("launchers")
def launchers_group():
    """Launchers declared in launchers.yaml, and where a spec would run."""


@launchers_group.command("list")
@FILE_OPTION
def list_launchers(file: Path | None):
    """Table of the launchers and what they offer."""
    config = _config(file)
    click.echo(f"launchers: {config.source}")
    rows = [("NAME", "TYPE", "PRIO", "TAGS", "CORES", "MEMORY", "GPUS", "MAX TIME", "WHERE")]
    rows.extend(_row(launcher) for launcher in config.launchers)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if config.default_spec:
        click.echo(f"default spec: {config.default_spec}")


@launchers_group.command("explain")
@click.argument("spec", default="")
@click.option("--tag", "tags", multiple=True, help="only launchers with this tag (repeatable)")
@FILE_OPTION
def explain_spec(spec: str, tags: tuple[str, ...], file: Path | None):
    """For each launcher: fits SPEC, or the requirement that does not; then the choice.

    SPEC is an experimaestro spec such as "duration=2h & cuda(mem=8G)*1 & cpu(cores=4)";
    "A | B" tries A first. Exits with 1 when no launcher fits.
    """
    from ..launchers.explain import explain

    from ..launchers.match import SpecError
    from ..launchers.ranks import RanksSpecError

    config = _config(file)
    try:
        explanation = explain(spec, tags, config=config)
    except (SpecError, RanksSpecError) as e:  # a usage error of the argument
        raise click.BadParameter(str(e), param_hint="SPEC") from None
    click.echo(explanation.render())
    if explanation.choice is None:
        sys.exit(1)


def _config(file: Path | None):
    """The launchers of ``file``, else of the lookup order (an invalid file: a
    ``LaunchersConfigError``, shown by the CLI's error handler)."""
    from ..launchers.finder import resolve_config

    return resolve_config(file, None)


def _row(launcher) -> tuple[str, ...]:
    from ..launchers.units import format_duration, format_memory

    def shown(field: str, text: str) -> str:
        return f"{text} (auto)" if field in launcher.auto else text

    gpus, where = launcher.listing()
    return (
        launcher.name, launcher.type, str(launcher.priority), ",".join(launcher.tags) or "-",
        shown("cores", str(launcher.cores)), shown("memory", format_memory(launcher.memory)),
        shown("gpus", gpus or "none"), format_duration(launcher.max_time), where,
    )
