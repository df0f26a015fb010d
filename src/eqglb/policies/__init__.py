"""Policies: baselines, offline equitable solver, online algorithms; one registry by name.

``make_policy(name, objective=..., **options)`` builds any registered policy; offline
policies have ``plan(scenario) -> Dispatch``, online ones ``decide(slot)`` and are driven by
:mod:`eqglb.simulate`. The registry itself is :mod:`eqglb.registry` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eqglb.burdens import datacenter_burdens
from eqglb.costs import Objective
from eqglb.defaults import DEFAULT_MODEL_RULE, DEFAULT_TOL
from eqglb.policies.offline import (
    MODEL_RULES,
    EquitableOffline,
    LinearBaseline,
    eglb_baseline,
)
from eqglb.policies.problem import SolveError
from eqglb.registry import DESCRIPTIONS, REGISTRY, make_policy, policy_names, register

__all__ = [
    "DESCRIPTIONS",
    "MODEL_RULES",
    "REGISTRY",
    "EquitableOffline",
    "LinearBaseline",
    "SolveError",
    "make_policy",
    "policy_names",
    "register",
]


def _baseline(kind: str, name: str | None = None, rule: str | None = None) -> Callable[..., Any]:
    def f(objective: Objective, model_rule: str = DEFAULT_MODEL_RULE, **kw: Any) -> LinearBaseline:
        if kw.get("tol") is None:
            kw.pop("tol", None)
        return LinearBaseline(
            kind=kind, model_rule=rule or model_rule, objective=objective, name=name or kind, **kw
        )

    return f


def _exact(objective: Objective, model_rule: str | None, name: str, **kw: Any) -> Any:
    """The certified exact solver for ``objective`` under ``model_rule``.

    The structured solver (Dantzig-Wolfe, certified gap) unless the rule is ``"best"``
    (per-slot quality rows it does not model), a cvxpy ``solver`` is named, or the
    objective has a switching cost (it couples consecutive slots, which the structured
    solver cannot carry; docs/switching.md); then the cvxpy model, certified by a
    Lagrangian bound priced at its duals.
    """
    tol = kw.pop("tol", None) or DEFAULT_TOL
    switching = objective.switching_cost > 0
    if model_rule == "best" or kw.get("solver") or kw.get("solver_options") or switching:
        rule = "best" if model_rule == "best" else "free"
        return EquitableOffline(objective=objective, model_rule=rule, name=name, tol=tol, **kw)
    from eqglb.structured import StructuredOffline

    kw.pop("strict", None)
    return StructuredOffline(objective=objective, name=name, tol=tol, **kw)


register(
    "cost-only",
    "true cost-only optimum: minimum energy cost [USD], models chosen by "
    "cost alone (no quality value); the reference the price of fairness is measured "
    "against",
)(_baseline("energy", name="cost-only", rule="free"))
register(
    "nearest",
    "least latency first (each region to its closest allowed data "
    "centre), then the model rule (weighted: energy cost + mu_s sum_j S_j)",
)(_baseline("nearest"))
register(
    "energy",
    "minimum energy cost [USD] + the shared quality value mu_s sum_j S_j "
    "(model rule 'weighted'; 'free': energy cost only)",
)(_baseline("energy"))
for _b in datacenter_burdens():  # one baseline per data-centre burden: carbon, water, health
    register(
        _b.name,
        f"minimum mu_{_b.symbol.lower()} x total {_b.label} [USD] + mu_s sum_j S_j (model "
        f"rule 'weighted'; 'free': total {_b.label} [{_b.unit}] only)",
    )(_baseline(_b.name))


@register(
    "weighted",
    "equity-oblivious optimum: the same objective and weights with q = 1 "
    "on every term (energy + mu_s sum S + mu_c sum C + mu_w sum W), certified",
)
def _weighted(objective: Objective, model_rule: str | None = None, **kw: Any) -> Any:
    return _exact(objective.with_q(1), model_rule, kw.pop("name", "weighted"), **kw)


@register(
    "eglb",
    "eGLB: energy + minimax carbon and water (q = inf on C and W, the same "
    "weights) + mu_s sum_j S_j under model rule 'weighted', certified",
)
def _eglb(objective: Objective, model_rule: str = DEFAULT_MODEL_RULE, **kw: Any) -> Any:
    base = eglb_baseline(objective, model_rule=model_rule)
    return _exact(base.objective, base.model_rule, kw.pop("name", "eglb"), **kw)


@register(
    "equitable",
    "exact offline equitable optimum (hindsight) of the scored objective "
    "at the given q and weights, certified gap (structured solver)",
)
def _equitable(objective: Objective, model_rule: str | None = None, **kw: Any) -> Any:
    # "best" keeps each slot's best achievable total quality as a service floor; any other
    # rule lets the objective's own quality term choose the model sizes
    return _exact(objective, model_rule, kw.pop("name", "equitable"), **kw)


@register(
    "reference",
    "the plain cvxpy model of the equitable problem (HiGHS / Clarabel), "
    "certified by a Lagrangian bound at its duals; the test reference",
)
def _reference(objective: Objective, model_rule: str | None = None, **kw: Any) -> EquitableOffline:
    rule = "best" if model_rule == "best" else "free"
    kw.setdefault("name", "reference")
    kw["tol"] = kw.get("tol") or DEFAULT_TOL
    return EquitableOffline(objective=objective, model_rule=rule, **kw)
