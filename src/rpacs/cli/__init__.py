"""The ``rpacs`` command line: thin commands over the services."""

from .main import cli, main

__all__ = ["cli", "main"]
