"""Reclaiming disk (``xpm-train gc``): what a workspace can lose, and losing it.

One module per step: :mod:`xpm_train.reclaim.plan` decides (the removals,
each with its path, bytes and reason, and the jobs kept and why; nothing is
touched), :mod:`xpm_train.reclaim.apply` removes them and marks the MLflow
runs of the removed jobs deleted, and :mod:`xpm_train.reclaim.describe` is
the table ``xpm-train gc`` prints.
"""
