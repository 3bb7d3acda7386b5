"""``python -m analyzer`` runs the ``mailflow`` command line."""

from analyzer.cli import main

main(prog_name="mailflow")
