"""Run policies and score any dispatch the same way.

:func:`evaluate` recomputes every cost of a dispatch from the per-request coefficients of
:mod:`eqglb.costs`; it never reads a solver's objective value. :func:`run_policy` drives a
policy over a scenario and returns its dispatch and evaluation.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eqglb.burdens import BURDENS, burden
from eqglb.costs import Objective, coefficients, objective_value, regional_costs
from eqglb.metrics import summarize
from eqglb.scenario import Dispatch, Scenario, SolveInfo, check_dispatch_shape

__all__ = [
    "FEASIBILITY_TOL",
    "Evaluation",
    "Feasibility",
    "compare",
    "evaluate",
    "movement",
    "overheads",
    "pct_change",
    "routing_fractions",
    "run_policy",
]

#: Largest relative violation of demand or capacity [-] (and flow on a forbidden route or
#: negative flow [requests/slot]) a dispatch returned by :func:`run_policy` may have.
FEASIBILITY_TOL = 1e-6


@dataclass(frozen=True)
class Feasibility:
    """Largest violations of a dispatch's constraints (0 for a feasible dispatch).

    Attributes
    ----------
    demand : float
        max_t,j |sum_{i,k} y - demand| relative to max(1, demand) [-].
    capacity : float
        max_t,i (used - cap) / max(1, cap), clipped at 0 [-].
    routing : float
        Largest flow on a route that is not allowed [requests/slot].
    negative : float
        Largest negative entry magnitude [requests/slot].
    """

    demand: float
    capacity: float
    routing: float
    negative: float

    def ok(self, tol: float = 1e-6) -> bool:
        return max(self.demand, self.capacity, self.routing, self.negative) <= tol


def routing_fractions(demand: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Routing fractions ``f[t,i,j,k] = y[t,i,j,k] / demand[t,j]`` [-] (0 where the demand
    is 0) of a dispatch ``y`` (time, datacenter, region, model) [requests/slot]."""
    d = np.asarray(demand, dtype=float)
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d > 0)
    return np.asarray(y, dtype=float) * inv[:, None, :, None]


def movement(sc: Scenario | np.ndarray, y: np.ndarray) -> np.ndarray:
    """Requests moved between routes in every slot [requests] (docs/switching.md).

    ``M_t = sum_j demand[t,j] * 0.5 * sum_{i,k} |f[t,i,j,k] - f[t-1,i,j,k]|`` for t >= 1
    with the routing fractions of :func:`routing_fractions`, and ``M_0 = 0``: the number
    of region j's requests of slot t whose (data centre, model) differs from what the
    previous slot's split would have given them. With constant demand it is
    ``0.5 * sum |y_t - y_{t-1}|``. ``sc`` is a scenario or its demand (time, region).
    The switching cost of an objective is ``switching_cost * movement(sc, y).sum()``
    [USD].
    """
    d = np.asarray(sc.demand if isinstance(sc, Scenario) else sc, dtype=float)
    y = np.asarray(y, dtype=float)
    out = np.zeros(d.shape[0])
    if d.shape[0] < 2:
        return out
    f = routing_fractions(d, y)
    change = np.abs(f[1:] - f[:-1]).sum(axis=(1, 3))  # (T-1, J) [-]
    out[1:] = 0.5 * np.einsum("tj,tj->t", d[1:], change)
    return out


def check_feasibility(sc: Scenario, y: np.ndarray) -> Feasibility:
    """Constraint violations of ``y`` (time, datacenter, region, model) [requests/slot]."""
    d = np.asarray(sc.demand)
    dem = np.abs(y.sum(axis=(1, 3)) - d) / np.maximum(1.0, d)
    cap = np.asarray(sc.capacity)
    if sc.capacity_mode == "shared":
        used = np.einsum("tnjk,k->tn", y, np.asarray(sc.capacity_per_request))
    else:
        used = y.sum(axis=2)
    capv = np.clip((used - cap) / np.maximum(1.0, cap), 0.0, None)
    route = np.where(np.asarray(sc.allowed)[None], 0.0, np.abs(y))
    return Feasibility(
        float(dem.max()), float(capv.max()), float(route.max()), float(max(0.0, -y.min()))
    )


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Every cost of one dispatch, recomputed.

    Attributes
    ----------
    policy : str
    energy_cost : float [USD]
    carbon : dict datacenter -> [kg CO2]
    water : dict datacenter -> [L]
    social : dict region -> quality loss (average per request [-], or total [requests])
    burdens : dict burden -> dict place -> value
        The regional vector of every burden of :mod:`eqglb.burdens` reported for this
        scenario (quality, carbon, water always; health when the scenario carries it or
        the objective prices it), keyed by data centre or region, in the burden's unit
        (``ev.health`` reads ``burdens["health"]``).
    summary : dict cost name -> metrics (total, max, mean, max_over_mean, lq_norm, jain, gini)
        and ``summary["movement"]``: ``requests`` moved between routes over the horizon
        [requests], the slot that moved most (``max_slot`` [requests]) and ``cost_usd``,
        the switching cost ``switching_cost * requests`` [USD] (0 without one); the per
        slot movement [requests] is ``extra["movement_per_slot"]``.
    objective : float or None
        Equitable objective of the dispatch under ``objective_spec`` [USD], including its
        switching cost ``switching_cost * movement`` when it has one.
    feasibility : Feasibility
    info : SolveInfo or None
        Status of the solve that produced the dispatch.
    """

    policy: str
    energy_cost: float
    carbon: dict[str, float]
    water: dict[str, float]
    social: dict[str, float]
    summary: dict[str, dict[str, float]]
    objective: float | None
    feasibility: Feasibility
    info: SolveInfo | None = None
    objective_spec: Objective | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    burdens: dict[str, dict[str, float]] = field(default_factory=dict)

    def __getattr__(self, key: str) -> dict[str, float]:
        b = self.__dict__.get("burdens", {})
        if key in b:
            return b[key]
        raise AttributeError(f"'Evaluation' object has no attribute {key!r}")

    @property
    def flagged(self) -> bool:
        """True when an exact solve is not certified optimal, or the dispatch is not
        feasible (a heuristic or online policy, status ``feasible`` with no bound, is not
        flagged for lacking a certificate)."""
        bad_solve = self.info is not None and not self.info.ok and self.info.exact
        return bad_solve or not self.feasibility.ok()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (per-region vectors keyed by name)."""
        info = None
        if self.info is not None:
            # the policy's own problem (a baseline's own cost, in its own unit) is kept
            # apart from the scored objective: its bound certifies that problem only
            info = {
                "status": str(self.info.status),
                "solver": self.info.solver,
                "solve_time_s": self.info.solve_time,
                "certified_gap": self.info.gap,
                "own_problem": self.info.extra.get("problem"),
                "own_objective": self.info.objective,
                "own_bound": self.info.dual_bound,
                "own_unit": self.info.extra.get("objective_unit", "USD"),
                "iterations": self.info.iterations,
            }
        return {
            "policy": self.policy,
            "objective": self.objective,
            "energy_cost": self.energy_cost,
            "carbon_kg": self.carbon,
            "water_l": self.water,
            "quality_loss": self.social,
            **{
                f"{k}_{_unit_key(k)}": v
                for k, v in self.burdens.items()
                if k not in ("carbon", "water", "social")
            },
            "summary": self.summary,
            "feasibility": vars(self.feasibility),
            "flagged": self.flagged,
            "solve": info,
            "objective_spec": None
            if self.objective_spec is None
            else self.objective_spec.describe(),
        }

    def to_frame(self) -> Any:
        """Long ``pandas.DataFrame`` (policy, quantity, dimension, name, value, unit): carbon
        and water per datacenter [kg CO2], [L], social per region, energy cost and
        objective [USD]; see :func:`eqglb.labels.evaluation_to_frame`."""
        from eqglb.labels import evaluation_to_frame

        return evaluation_to_frame(self)

    def to_xarray(self) -> Any:
        """``xarray.Dataset`` of the regional vectors, totals and summaries, scalar coord
        ``policy``; see :func:`eqglb.labels.evaluation_to_xarray` (``xarray`` extra)."""
        from eqglb.labels import evaluation_to_xarray

        return evaluation_to_xarray(self)


def evaluate(sc: Scenario, dispatch: Dispatch, objective: Objective | None = None) -> Evaluation:
    """Score ``dispatch`` on ``sc``: costs, regional vectors and fairness metrics.

    Parameters
    ----------
    objective : Objective, optional
        Weights and q used for the objective value and for the L_q norms in the summary
        (q of each term); default: all mu = 0 and q = 2.
    """
    check_dispatch_shape(sc, dispatch)
    obj = objective or Objective()
    coef = coefficients(sc, social_average=obj.social_average)
    y = np.asarray(dispatch.y)
    rc = regional_costs(coef, y)
    shown = [k for k, v in rc.vectors.items() if k in _CORE or np.any(v) or obj.terms[k].mu > 0]
    summary = {k: summarize(rc.vectors[k], obj.terms[k].q) for k in ("carbon", "water", "social")}
    summary.update({k: summarize(rc.vectors[k], obj.terms[k].q) for k in shown if k not in summary})
    if obj.combined_environment:
        summary["environment"] = summarize(
            obj.mu_carbon * rc.carbon + obj.mu_water * rc.water, obj.q_carbon
        )
    total_requests = float(np.asarray(sc.demand).sum())
    mean_loss = float(np.einsum("tnjk,k->", y, np.asarray(sc.quality_loss))) / max(
        total_requests, 1e-300
    )
    summary["totals"] = {
        "energy_cost": rc.energy_cost,
        "carbon": float(rc.carbon.sum()),
        "water": float(rc.water.sum()),
        **{k: float(rc.vectors[k].sum()) for k in shown if k not in ("carbon", "water", "social")},
        "mean_quality_loss": mean_loss,
        "requests": total_requests,
    }
    from eqglb.slo import latency_summary

    lat = latency_summary(sc, y)  # RTT per region [ms] and SLO violations (eqglb.slo)
    if lat is not None:
        summary["latency"] = lat
    moved = movement(sc, y)
    moved_total = float(moved.sum())
    switching_usd = obj.switching_cost * moved_total
    summary["movement"] = {
        "requests": moved_total,
        "max_slot": float(moved.max()) if moved.size else 0.0,
        "cost_usd": switching_usd,
    }
    return Evaluation(
        policy=dispatch.policy,
        energy_cost=rc.energy_cost,
        carbon=dict(zip(sc.datacenters, map(float, rc.carbon), strict=True)),
        water=dict(zip(sc.datacenters, map(float, rc.water), strict=True)),
        social=dict(zip(sc.regions, map(float, rc.social), strict=True)),
        burdens={
            k: dict(
                zip(
                    sc.regions if burden(k).side == "region" else sc.datacenters,
                    map(float, rc.vectors[k]),
                    strict=True,
                )
            )
            for k in shown
        },
        summary=summary,
        objective=objective_value(obj, rc) + switching_usd,
        feasibility=check_feasibility(sc, y),
        info=dispatch.info,
        objective_spec=obj,
        extra={"movement_per_slot": moved},
    )


#: The burdens every evaluation reports (others only when present).
_CORE = ("carbon", "water", "social")


def _unit_key(name: str) -> str:
    """Suffix of a burden's per-place key in :meth:`Evaluation.to_dict` (``health_usd``)."""
    unit = burden(name).unit
    return {"kg CO2": "kg", "L": "l", "-": "loss"}.get(unit, unit.lower().replace(" ", "_"))


def pct_change(a: float, b: float) -> float:
    """Change of ``a`` against ``b`` [%]: 0 when both are 0, inf when only ``b`` is."""
    return 100.0 * (a - b) / abs(b) if b != 0 else (0.0 if a == b else math.inf)


def overheads(ev: Evaluation, baseline: Evaluation) -> dict[str, float]:
    """Percent change of ``ev`` versus ``baseline`` [%] for the headline numbers."""
    out = {"energy_cost": pct_change(ev.energy_cost, baseline.energy_cost)}
    if ev.objective is not None and baseline.objective is not None:
        out["objective"] = pct_change(ev.objective, baseline.objective)
    order = ("carbon", "water", "social", *(k for k in BURDENS if k not in _CORE))
    for cost in [k for k in order if k in ev.summary and k in baseline.summary]:
        for m in ("total", "max", "max_over_mean"):
            out[f"{cost}_{m}"] = pct_change(ev.summary[cost][m], baseline.summary[cost][m])
    return out


def compare(
    evals: Mapping[str, Evaluation] | Iterable[Evaluation], baseline: str = "energy"
) -> dict[str, dict[str, float]]:
    """Overheads of every evaluation versus the one named ``baseline`` [%]."""
    d = evals if isinstance(evals, Mapping) else {e.policy: e for e in evals}
    if baseline not in d:
        raise KeyError(f"baseline {baseline!r} not among the evaluated policies {list(d)}")
    return {name: overheads(ev, d[baseline]) for name, ev in d.items()}


def run_policy(
    sc: Scenario,
    policy: Any,
    objective: Objective | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Dispatch, Evaluation]:
    """Plan (offline) or simulate (online) ``policy`` on ``sc`` and evaluate the dispatch.

    ``progress(done, total)`` is called after each slot of an online policy.
    """
    t0 = _time.perf_counter()
    if hasattr(policy, "plan"):
        dispatch = policy.plan(sc)
    else:  # online policies: driven slot by slot by the causal simulator
        from eqglb.online import simulate_online

        dispatch = simulate_online(sc, policy, progress=progress)
    ev = evaluate(sc, dispatch, objective)
    ev.extra["wall_time_s"] = _time.perf_counter() - t0
    if not ev.feasibility.ok(FEASIBILITY_TOL):
        # no dispatch that violates demand, capacity or routing is ever returned as a result
        from eqglb.policies.problem import SolveError

        f = ev.feasibility
        worst = max(vars(f).items(), key=lambda kv: kv[1])
        raise SolveError(
            f"policy {dispatch.policy!r} returned a dispatch that violates "
            f"{worst[0]} by {worst[1]:.3g} (relative); it is not returned. Try "
            "another policy or solver, or report the scenario",
            dispatch.info,
        )
    return dispatch, ev
