"""``eqglb policies``: list the registered policies."""

from __future__ import annotations

from rich.markup import escape

from eqglb.cli import common
from eqglb.defaults import DEFAULT_POLICIES

__all__ = ["policies_command"]


def policies_command() -> None:
    """List the registered policies with a description of each."""
    from rich.table import Table

    from eqglb.policies import DESCRIPTIONS, REGISTRY

    common.load_plugins()
    tab = Table(title="eqglb policies", title_justify="left", header_style="bold")
    tab.add_column("name", style="bold", no_wrap=True)
    tab.add_column("description")
    tab.add_column("default", justify="center")
    for name in REGISTRY:
        tab.add_row(
            escape(name),
            escape(DESCRIPTIONS.get(name, "")),
            "yes" if name in DEFAULT_POLICIES else "",
        )
    common.stdout().print(tab)
