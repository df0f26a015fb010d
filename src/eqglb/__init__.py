"""eqglb: equitable geographical load balancing (GLB) of AI inference.

The top-level names are imported on first use (PEP 562), so ``import eqglb.cli`` (and
``eqglb --help``) does not pay for numpy and pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eqglb.scenario import DIMS, Dispatch, Scenario, ScenarioError, SolveInfo
    from eqglb.units import PlausibilityError, PlausibilityWarning

__all__ = ["DIMS", "Dispatch", "PlausibilityError", "PlausibilityWarning", "Scenario",
           "ScenarioError", "SolveInfo"]
__version__ = "0.1.0"

_LAZY = {"DIMS": "eqglb.scenario", "Dispatch": "eqglb.scenario", "Scenario": "eqglb.scenario",
         "ScenarioError": "eqglb.scenario", "SolveInfo": "eqglb.scenario",
         "PlausibilityError": "eqglb.units", "PlausibilityWarning": "eqglb.units"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'eqglb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
