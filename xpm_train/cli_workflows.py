"""``xpm-train doctor`` and ``xpm-train gpus`` (being written)."""

import click


def register(main: click.Group) -> None:
    """Add this module's commands to ``main``."""
