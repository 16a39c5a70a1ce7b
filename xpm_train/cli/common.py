"""What every ``xpm-train`` command shares: the ``--workdir`` option and the error handler."""

from __future__ import annotations

from pathlib import Path

import click

DEFAULT_WORKDIR = "workspace"


def workdir_option(function):
    """``--workdir``: the experimaestro workspace a command reads (or checks)."""
    return click.option(
        "--workdir",
        type=click.Path(path_type=Path),
        default=DEFAULT_WORKDIR,
        show_default=True,
        help="experimaestro workspace (the --workdir given to run-experiment)",
    )(function)


class UserErrorGroup(click.Group):
    """Shows an error the user can fix (:class:`xpm_train.errors.UserError`: a bad
    file or value, a missing workspace, job or study) as its message, without a
    traceback, and exits with 1. Usage errors are click's (exit code 2). Any
    other exception is a bug: its traceback is kept. ``--debug`` keeps every traceback."""

    def invoke(self, ctx: click.Context):
        from ..errors import UserError

        try:
            return super().invoke(ctx)
        except UserError as error:
            if ctx.params.get("debug"):
                raise
            click.secho(f"Error: {error}", fg="red", err=True)
            click.echo("(run with --debug for the traceback)", err=True)
            ctx.exit(1)
