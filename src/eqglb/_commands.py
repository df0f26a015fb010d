"""Built-in subcommands that live outside :mod:`eqglb.cli`, and their eager registration.

The ``eqglb`` command imports these lazily (:data:`eqglb.cli.LAZY_COMMANDS`): ``eqglb
--help`` lists them from one-line help texts and a module is imported only when its
command runs. Importing this module instead registers every one of them on
:data:`eqglb.cli.app` at once (for a typer app with every command, e.g. in
``typer.testing.CliRunner``).
"""

from __future__ import annotations

import importlib

import typer

from eqglb.cli import LAZY_COMMANDS, app

__all__ = ["COMMANDS"]

#: (command name, module, attribute) of every lazy command (see eqglb.cli.LAZY_COMMANDS)
COMMANDS = [(name, spec.module, spec.attribute) for name, spec in LAZY_COMMANDS.items()]


def _register() -> None:
    """Register every lazy command on :data:`eqglb.cli.app` now."""
    known = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    for name, module, attr in COMMANDS:
        if name in known:
            continue
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):  # pragma: no cover - optional part missing
            continue
        if isinstance(obj, typer.Typer):
            app.add_typer(obj, name=name)
        else:
            app.command(name)(obj)


_register()
