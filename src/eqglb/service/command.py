"""Deprecated: ``eqglb serve`` is registered by the CLI itself (:data:`eqglb.cli.COMMANDS`).

Importing this module registers nothing; it re-exports the service's command function
for code of earlier releases.
"""

from eqglb.service.server import serve_command

__all__ = ["serve_command"]
