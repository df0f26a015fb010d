"""Registers ``eqglb serve`` on the command line when imported.

Add ``"eqglb.service.command"`` to :data:`eqglb.cli.SUBCOMMAND_MODULES` (or call
``eqglb.cli.app.command("serve")(serve_command)`` yourself).
"""

from eqglb.cli import app
from eqglb.service.server import serve_command

app.command("serve")(serve_command)

__all__ = ["serve_command"]
