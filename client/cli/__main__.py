"""``python -m client.cli``."""

from client.cli.app import main

main()
