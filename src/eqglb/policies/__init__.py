"""Policies: baselines, offline equitable solver, online algorithms; one registry by name.

``make_policy(name, objective=..., **options)`` builds any registered policy; offline
policies have ``plan(scenario) -> Dispatch``, online ones ``decide(slot)`` and are driven by
:mod:`eqglb.simulate`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eqglb.costs import Objective
from eqglb.policies.offline import (
    MODEL_RULES,
    EquitableOffline,
    LinearBaseline,
    eglb_baseline,
    weighted_total,
)
from eqglb.policies.problem import SolveError

__all__ = [
    "MODEL_RULES",
    "REGISTRY",
    "EquitableOffline",
    "LinearBaseline",
    "SolveError",
    "make_policy",
    "policy_names",
    "register",
]

#: name -> factory(objective, **options) -> policy object
REGISTRY: dict[str, Callable[..., Any]] = {}
#: name -> one-line description (units stated)
DESCRIPTIONS: dict[str, str] = {}


def register(name: str, description: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator adding a policy factory ``f(objective, **options)`` to the registry."""

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        REGISTRY[name] = f
        DESCRIPTIONS[name] = description
        return f

    return deco


def _baseline(kind: str) -> Callable[..., Any]:
    def f(objective: Objective, model_rule: str = "best", **kw: Any) -> LinearBaseline:
        return LinearBaseline(kind=kind, model_rule=model_rule, objective=objective, **kw)

    return f


register("nearest", "each region to its closest allowed data centre (least latency)")(
    _baseline("nearest"))
register("energy", "minimum energy cost [USD]")(_baseline("energy"))
register("carbon", "minimum total carbon [kg CO2]")(_baseline("carbon"))
register("water", "minimum total water [L]")(_baseline("water"))


@register("weighted", "objective with q = 1 on every term (equity-oblivious weighted total)")
def _weighted(objective: Objective, model_rule: str | None = None, **kw: Any) -> EquitableOffline:
    return weighted_total(objective, **kw)


@register("eglb", "eGLB: energy + mu_c max_i C_i + mu_w max_i W_i, no quality term")
def _eglb(objective: Objective, model_rule: str = "best", **kw: Any) -> EquitableOffline:
    return eglb_baseline(objective, model_rule=model_rule, **kw)


@register("equitable", "exact offline equitable optimum (hindsight) for the given q and weights")
def _equitable(objective: Objective, model_rule: str | None = None,
               **kw: Any) -> EquitableOffline:
    # "best" keeps each slot's best achievable total quality as a service floor; any other
    # rule lets the objective's own quality term choose the model sizes
    rule = "best" if model_rule == "best" else "free"
    return EquitableOffline(objective=objective, model_rule=rule, **kw)


def policy_names() -> list[str]:
    return list(REGISTRY)


def make_policy(name: str, objective: Objective | None = None, **options: Any) -> Any:
    """Build the policy registered as ``name`` (ValueError listing the names otherwise)."""
    try:
        factory = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; choose from {policy_names()}") from None
    return factory(objective or Objective(), **options)


# Policies defined in their own packages register themselves on import (they import
# `register` from this module, which is complete by now).
import eqglb.online  # noqa: E402,F401
import eqglb.structured  # noqa: E402,F401
