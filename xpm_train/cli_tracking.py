"""``xpm-train mlflow ...`` commands (being written)."""

import click


@click.group("mlflow")
def mlflow_group():
    """(being written)"""
