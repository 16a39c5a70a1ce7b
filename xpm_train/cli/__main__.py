"""``python -m xpm_train.cli`` runs the ``xpm-train`` command."""

from . import main

main(prog_name="xpm-train")
