"""``python -m tagcode`` runs the CLI."""

from tagcode.cli import main

main()
