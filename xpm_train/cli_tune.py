"""``xpm-train tune ...`` commands (being written)."""

import click


@click.group("tune")
def tune_group():
    """(being written)"""
