"""Readers and writers: the eqglb scenario folder format and real-data formats.

Each module is imported where used, e.g. ``from eqglb.io.scenario_format import read_scenario``.
The names below are also importable from ``eqglb.io`` itself, on first use (PEP 562), so
importing a sibling module does not load them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eqglb.io.health import (
        grid_mapping,
        health_cost_for,
        load_health_2023,
        read_health_2023,
    )

_LAZY = {
    "grid_mapping": "eqglb.io.health",
    "health_cost_for": "eqglb.io.health",
    "load_health_2023": "eqglb.io.health",
    "read_health_2023": "eqglb.io.health",
}

__all__ = ["grid_mapping", "health_cost_for", "load_health_2023", "read_health_2023"]
assert set(__all__) == set(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'eqglb.io' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
