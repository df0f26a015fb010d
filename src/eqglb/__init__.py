"""eqglb: equitable geographical load balancing (GLB) of AI inference.

The top-level names are imported on first use (PEP 562), so ``import eqglb.cli`` (and
``eqglb --help``) does not pay for numpy and pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eqglb.builtin import builtin_scenario
    from eqglb.burdens import BURDENS
    from eqglb.costs import Objective
    from eqglb.defaults import build_objective
    from eqglb.fields import FIELDS
    from eqglb.io.egl2022 import load_egl2022
    from eqglb.io.scenario_format import read_scenario, write_scenario
    from eqglb.policies import SolveError, make_policy, policy_names
    from eqglb.scenario import DIMS, Dispatch, Scenario, ScenarioError, SolveInfo, SolveStatus
    from eqglb.simulate import Evaluation, compare, evaluate, run_policy
    from eqglb.units import PlausibilityError, PlausibilityWarning

__version__ = "0.1.0"

_LAZY = {
    "BURDENS": "eqglb.burdens",
    "FIELDS": "eqglb.fields",
    "load_egl2022": "eqglb.io.egl2022",
    "DIMS": "eqglb.scenario",
    "Dispatch": "eqglb.scenario",
    "Scenario": "eqglb.scenario",
    "ScenarioError": "eqglb.scenario",
    "SolveInfo": "eqglb.scenario",
    "SolveStatus": "eqglb.scenario",
    "PlausibilityError": "eqglb.units",
    "PlausibilityWarning": "eqglb.units",
    "Objective": "eqglb.costs",
    "build_objective": "eqglb.defaults",
    "builtin_scenario": "eqglb.builtin",
    "read_scenario": "eqglb.io.scenario_format",
    "write_scenario": "eqglb.io.scenario_format",
    "make_policy": "eqglb.policies",
    "policy_names": "eqglb.policies",
    "SolveError": "eqglb.policies",
    "Evaluation": "eqglb.simulate",
    "evaluate": "eqglb.simulate",
    "run_policy": "eqglb.simulate",
    "compare": "eqglb.simulate",
}

__all__ = [
    "BURDENS",
    "DIMS",
    "FIELDS",
    "Dispatch",
    "Evaluation",
    "Objective",
    "PlausibilityError",
    "PlausibilityWarning",
    "Scenario",
    "ScenarioError",
    "SolveError",
    "SolveInfo",
    "SolveStatus",
    "build_objective",
    "builtin_scenario",
    "compare",
    "evaluate",
    "load_egl2022",
    "make_policy",
    "policy_names",
    "read_scenario",
    "run_policy",
    "write_scenario",
]
assert set(__all__) == set(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'eqglb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
