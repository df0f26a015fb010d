"""What a comparison of policies shows: term split, model mix, equity effect, price of
fairness, per-term switches, the frontier over q and the provenance of a run.

Everything here is computed from :class:`eqglb.simulate.Evaluation` objects (recomputed
costs, never a solver's numbers) and the scored :class:`eqglb.costs.Objective`.

Definitions (all in [USD] unless stated):

* *term split*: the scored objective = energy + quality + carbon + water terms, each its
  weight times its (normalised) norm;
* *equity effect*: the equitable optimum (q of the run) against the equity-oblivious
  optimum of the same objective and weights at q = 1 (``weighted``): change of the worst
  data centre's carbon and water and of the worst region's quality loss [%];
* *price of fairness*: how much more the equitable dispatch costs in the equity-oblivious
  (q = 1) objective than the q = 1 optimum [%] (>= 0 up to the certified gaps), and its
  energy cost against the true cost-only optimum (``cost-only``);
* *levelling down*: regions whose quality loss rises while the worst region's falls.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from eqglb.burdens import BURDENS, further_burdens
from eqglb.costs import Objective
from eqglb.simulate import pct_change

if TYPE_CHECKING:
    from eqglb.scenario import Dispatch, Scenario
    from eqglb.simulate import Evaluation

__all__ = [
    "equity_effect",
    "frontier",
    "model_mix",
    "provenance",
    "scenario_hash",
    "solve_cache",
    "switches",
    "term_split",
]

TERMS = ("energy", "quality", "carbon", "water")


def _vec(d: Mapping[str, float]) -> np.ndarray:
    return np.asarray(list(d.values()), dtype=float)


def term_split(ev: Evaluation, objective: Objective) -> dict[str, float]:
    """The scored objective of ``ev`` split into its terms [USD] (they sum to it).

    With a combined environmental norm its value is reported under ``carbon`` and
    ``water`` in proportion to their weighted totals. With a switching cost its value
    ``switching_cost * movement`` is ``switching``.
    """
    from eqglb.costs import objective_terms

    o = objective
    terms = objective_terms(o, _regional(ev))
    out = {
        "energy": terms["energy"],
        "quality": terms.get("social", 0.0),
        "carbon": terms.get("carbon", 0.0),
        "water": terms.get("water", 0.0),
    }
    for name, _t in o.active():  # further burdens (health, ...) when priced
        if name not in ("social", "carbon", "water"):
            out[name] = terms.get(name, 0.0)
    if "environment" in terms:
        tc, tw = o.mu_carbon * _vec(ev.carbon).sum(), o.mu_water * _vec(ev.water).sum()
        share = tc / (tc + tw) if tc + tw > 0 else 0.5
        out["carbon"] = terms["environment"] * share
        out["water"] = terms["environment"] * (1 - share)
    if o.switching_cost > 0:
        out["switching"] = o.switching_cost * float(ev.summary["movement"]["requests"])
    return {k: float(v) for k, v in out.items()}


def term_shares(ev: Evaluation, objective: Objective) -> dict[str, float]:
    """Each term's share of the objective [-] (by absolute value)."""
    split = term_split(ev, objective)
    tot = sum(abs(v) for v in split.values())
    return {k: (abs(v) / tot if tot > 0 else 0.0) for k, v in split.items()}


def model_mix(sc: Scenario, dispatch: Dispatch) -> dict[str, float]:
    """Share of all requests served by each model [-]."""
    per = np.asarray(dispatch.y).sum(axis=(0, 1, 2))
    tot = float(per.sum())
    return {m: (float(v) / tot if tot > 0 else 0.0) for m, v in zip(sc.models, per, strict=True)}


def equity_effect(
    evals: Mapping[str, Evaluation],
    objective: Objective,
    *,
    equitable: str = "equitable",
    oblivious: str = "weighted",
    cost_only: str = "cost-only",
) -> dict[str, Any] | None:
    """Equity effect, price of fairness and levelling down (module docstring), or None
    when the equitable or the equity-oblivious row is missing."""
    if equitable not in evals or oblivious not in evals:
        return None
    e, b = evals[equitable], evals[oblivious]
    q1 = objective.with_q(1)
    from eqglb.costs import objective_value

    def j1(ev: Evaluation) -> float:
        return objective_value(q1, _regional(ev))

    worst = {}
    for name, key in _worst_keys(e, b):
        old, new = float(ev_max(b, key)), float(ev_max(e, key))
        worst[name] = {"oblivious": old, "equitable": new, "change_pct": pct_change(new, old)}
    s_old, s_new = _vec(b.social), _vec(e.social)
    worse = [
        r for r, o, n in zip(b.social, s_old, s_new, strict=True) if n > o * (1 + 1e-6) + 1e-12
    ]
    level: dict[str, Any] = {
        "regions_worse": worse,
        "n_regions": len(s_old),
        "mean_quality_loss": {
            "oblivious": float(b.summary["totals"]["mean_quality_loss"]),
            "equitable": float(e.summary["totals"]["mean_quality_loss"]),
        },
    }
    # levelling down: the worst region gains while the others lose on average
    level["levelling_down"] = (
        bool(worse)
        and worst["quality_loss_max"]["change_pct"] <= 0
        and level["mean_quality_loss"]["equitable"]
        > level["mean_quality_loss"]["oblivious"] * (1 + 1e-9)
    )
    out: dict[str, Any] = {
        "equitable": equitable,
        "oblivious": oblivious,
        "worst": worst,
        "price_of_fairness": {
            "q1_objective_usd": {"oblivious": j1(b), "equitable": j1(e)},
            "pct": pct_change(j1(e), j1(b)),
        },
        "levelling": level,
        "energy_cost_usd": {"oblivious": b.energy_cost, "equitable": e.energy_cost},
    }
    if cost_only in evals:
        c = evals[cost_only].energy_cost
        out["cost_only"] = {
            "energy_cost_usd": c,
            "equitable_vs_cost_only_pct": pct_change(e.energy_cost, c),
            "oblivious_vs_cost_only_pct": pct_change(b.energy_cost, c),
        }
    return out


def _worst_keys(*evs: Evaluation) -> list[tuple[str, str]]:
    """``(column, burden)`` of the worst-place figures reported for ``evs``: carbon, water,
    quality, then every further burden all of them report (``health_max_usd``)."""
    keys = [("carbon_max_kg", "carbon"), ("water_max_l", "water"), ("quality_loss_max", "social")]
    for name in further_burdens(evs):
        keys.append((f"{name}_max_{BURDENS[name].unit.lower().replace(' ', '_')}", name))
    return keys


def ev_max(ev: Evaluation, key: str) -> float:
    return float(max(getattr(ev, key).values()))


def _regional(ev: Evaluation) -> Any:
    from eqglb.costs import RegionalCosts

    vectors = {"carbon": _vec(ev.carbon), "water": _vec(ev.water), "social": _vec(ev.social)}
    vectors.update({k: _vec(v) for k, v in ev.burdens.items()})
    return RegionalCosts(ev.energy_cost, vectors)


#: Certified optima already solved, keyed by :func:`_key` of their objective.
SolveCache = dict[tuple[Any, ...], "Evaluation"]


def _key(objective: Objective) -> tuple[Any, ...]:
    """Cache key of an objective: its active terms and flags, floats to 12 significant
    digits (the same objective reached through per-unit weights and back compares equal;
    the q of a term with weight 0 does not matter)."""

    def r(v: Any) -> Any:
        return float(f"{v:.12g}") if isinstance(v, float) else v

    terms = tuple((k, r(t.mu), r(t.q)) for k, t in objective.active())
    return (
        terms,
        objective.combined_environment,
        objective.social_average,
        r(objective.energy_weight),
        objective.norm_sizes,
    )


def solve_cache(
    objective: Objective,
    evals: Mapping[str, Evaluation],
    *,
    equitable: str = "equitable",
    oblivious: str = "weighted",
) -> SolveCache:
    """A cache holding the run's equitable (at ``objective``) and equity-oblivious (at
    q = 1) optima, so :func:`switches` and :func:`frontier` do not solve them again."""
    cache: SolveCache = {}
    if equitable in evals:
        cache[_key(objective)] = evals[equitable]
    if oblivious in evals:
        cache[_key(objective.with_q(1))] = evals[oblivious]
    return cache


def _solve(
    sc: Scenario,
    objective: Objective,
    model_rule: str,
    label: str,
    tol: float,
    cache: SolveCache | None,
) -> Evaluation:
    """The certified optimum of ``objective`` (from ``cache`` when it is there)."""
    from eqglb.policies import make_policy
    from eqglb.simulate import run_policy

    key = _key(objective)
    if cache is not None and key in cache:
        return cache[key]
    pol = make_policy("equitable", objective, model_rule=model_rule, name=label, tol=tol)
    ev = run_policy(sc, pol, objective)[1]
    if cache is not None:
        cache[key] = ev
    return ev


def switches(
    sc: Scenario,
    objective: Objective,
    *,
    model_rule: str = "weighted",
    tol: float = 1e-6,
    cache: SolveCache | None = None,
) -> list[dict[str, Any]]:
    """Which regulariser moves which burden: the optimum with equity (the run's q) on one
    term at a time, the others at q = 1, same weights; plus all at q = 1 and all at q.

    Returns rows with ``equity_on`` ("none", "quality", "carbon", "water", "all"), the
    worst burdens (``carbon_max_kg``, ``water_max_l``, ``quality_loss_max``) and the
    energy cost [USD]. ``cache`` (:func:`solve_cache`) holds optima already solved.
    """
    o = objective
    on = ["social", "carbon", "water"] + [
        k for k, _t in o.active() if k not in ("social", "carbon", "water")
    ]
    cases = {"none": o.with_q(1)}
    for name in on:  # equity on one burden, q = 1 on the others
        label = "quality" if name == "social" else name
        cases[label] = o.with_terms(**{f"q_{k}": 1.0 for k in BURDENS if k != name})
    cases["all"] = o
    evs = {
        label: _solve(sc, obj, model_rule, f"equity on {label}", tol, cache)
        for label, obj in cases.items()
    }
    keys = _worst_keys(*evs.values())
    rows = []
    for label, obj in cases.items():
        ev = evs[label]
        rows.append(
            {
                "equity_on": label,
                "objective": obj.describe(),
                **{col: ev_max(ev, key) for col, key in keys},
                "energy_cost_usd": ev.energy_cost,
                "status": str(ev.info.status) if ev.info else None,
            }
        )
    return rows


def frontier(
    sc: Scenario,
    objective: Objective,
    qs: Sequence[float | str] = (1, 1.5, 2, 3, 4, "inf"),
    *,
    model_rule: str = "weighted",
    tol: float = 1e-6,
    cache: SolveCache | None = None,
) -> list[dict[str, Any]]:
    """The price-of-fairness frontier: the certified optimum at each q (same weights).

    Each row: ``q``, ``energy_cost`` [USD], ``objective`` (at that q) [USD],
    ``q1_objective`` [USD], ``carbon_max`` [kg], ``water_max`` [L], ``quality_max`` [-],
    ``status``, ``gap``. ``cache`` (:func:`solve_cache`) holds optima already solved.
    """
    from eqglb.costs import objective_value

    q1 = objective.with_q(1)
    rows = []
    for q in qs:
        obj = objective.with_q(q)
        ev = _solve(sc, obj, model_rule, f"q={q}", tol, cache)
        rc = _regional(ev)
        rows.append(
            {
                "q": obj.q_carbon,
                "energy_cost": ev.energy_cost,
                "objective": objective_value(obj, rc),
                "q1_objective": objective_value(q1, rc),
                "carbon_max": ev_max(ev, "carbon"),
                "water_max": ev_max(ev, "water"),
                "quality_max": ev_max(ev, "social"),
                **{
                    f"{k}_max": ev_max(ev, k)
                    for k in ev.burdens
                    if k not in ("social", "carbon", "water")
                },
                "status": str(ev.info.status) if ev.info else None,
                "gap": ev.info.gap if ev.info else None,
            }
        )
    return rows


def scenario_hash(sc: Scenario) -> str:
    """The first 16 hex digits of :func:`eqglb.scenario.scenario_fingerprint` (the key
    the sweep store uses too)."""
    from eqglb.scenario import scenario_fingerprint

    return scenario_fingerprint(sc)[:16]


def provenance(
    sc: Scenario,
    objective: Objective,
    *,
    model_rule: str,
    argv: Sequence[str] | None = None,
    days: int | None = None,
    seed: int | None = None,
    tol: float | None = None,
) -> dict[str, Any]:
    """What produced a result: version, command line, scenario, weights, q, rule, solver."""
    from eqglb import __version__

    def qs(q: float) -> str | float:
        return "inf" if math.isinf(q) else q

    shown = ["social", "carbon", "water"] + [
        k for k, _t in objective.active() if k not in ("social", "carbon", "water")
    ]

    return {
        "eqglb_version": __version__,
        "command": " ".join(["eqglb", *(sys.argv[1:] if argv is None else argv)]),
        "scenario": {
            "name": sc.name,
            "hash": scenario_hash(sc),
            "slots": sc.n_time,
            "days": days,
            "seed": seed,
            "start": f"{sc.time[0]:%Y-%m-%dT%H:%MZ}",
            "shape": dict(zip(("time", "datacenter", "region", "model"), sc.shape, strict=True)),
        },
        "objective": objective.describe(),
        "weights_per_unit": objective.unit_weights(),
        "weights_applied": {f"mu_{k}": objective.terms[k].mu for k in shown},
        "normalised_norms": objective.norm_sizes is not None,
        "q": {k: qs(objective.terms[k].q) for k in shown},
        "combined_environment": objective.combined_environment,
        "quality": "average loss per request"
        if objective.social_average
        else "total loss [requests]",
        "model_rule": model_rule,
        "tolerance": tol,
        "units": {
            "mu_social": "USD per unit of S",
            "mu_carbon": "USD/kg CO2",
            "mu_water": "USD/L",
            **{f"mu_{k}": BURDENS[k].weight_unit for k in shown[3:]},
            "objective": "USD",
        },
    }
