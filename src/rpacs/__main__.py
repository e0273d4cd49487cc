"""``python -m rpacs``: the command line, as the ``rpacs`` script runs it."""

from .cli.main import main

main()
