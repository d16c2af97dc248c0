"""The command line: `trpo COMMAND`, one module per command."""

from trpo.cli.main import main

__all__ = ["main"]
