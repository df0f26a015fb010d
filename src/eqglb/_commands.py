"""Registers the subcommands that live in their own modules on the ``eqglb`` typer app.

Imported by :func:`eqglb.cli.main` before parsing (see ``cli.SUBCOMMAND_MODULES``); each
subcommand module keeps its heavy imports (Ray, FastAPI) inside its functions.
"""

from __future__ import annotations

import importlib

from eqglb.cli import app

#: (command name, module, attribute): a typer-compatible function to register
COMMANDS = [
    ("sweep", "eqglb.sweep", "sweep_command"),
    ("solve", "eqglb.solve_command", "solve_command"),
    ("signals", "eqglb.signals.command", "signals_command"),
]


def _register() -> None:
    known = {c.name for c in app.registered_commands}
    for name, module, attr in COMMANDS:
        if name in known:
            continue
        try:
            func = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):  # pragma: no cover - optional part missing
            continue
        app.command(name)(func)


_register()


def _register_groups() -> None:
    """Command groups (``eqglb reproduce egl2022``) register themselves on the app."""
    if any(getattr(g, "name", None) == "reproduce" for g in app.registered_groups):
        return
    try:
        from eqglb.reproduce import register_cli
    except ImportError:  # pragma: no cover - optional part missing
        return
    register_cli(app)


_register_groups()
