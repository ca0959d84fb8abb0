"""``python -m gwalign.cli``: the ``gwalign`` command."""

from gwalign.cli import main

main()
