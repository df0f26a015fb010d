"""Offline policies: the exact equitable optimum and the LP baselines of docs/model.md.

Every policy here is an object with one verb, ``plan(scenario) -> Dispatch``, plus
``state()``. All are solved as one vectorised cvxpy problem over the whole horizon
(HiGHS for LPs, Clarabel otherwise; ``solver`` and ``solver_options`` pass through).

Model-size rule of the baselines (``model_rule``):

* ``"best"`` (default): the best allowed model unless capacity forces otherwise. Per slot,
  the total quality loss ``sum s[k] y`` is first minimised; the baseline's own cost is then
  minimised subject to keeping that slot minimum (lexicographic, exact per slot). For
  Nearest the order is reversed: least latency first, then the best models.
* ``"weighted"``: the baseline's cost valued in USD by the objective's weight (1 for energy
  cost, ``mu_carbon`` for carbon, ``mu_water`` for water) plus the objective's quality term
  with q = 1 (``mu_social * sum_j S_j``); when that weight is 0 the rule falls back to
  ``"best"``.
* ``"free"``: only the baseline's own cost (it will pick the least energy-hungry model).

Nearest always minimises latency first (each region to its closest allowed data centre,
spilling over to the next closest when capacity is short) and then applies the rule to
choose models: ``best`` quality, ``weighted`` energy cost + quality value, ``free`` energy.
"""

from __future__ import annotations

import math
import time as _time
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np

from eqglb.burdens import burden, datacenter_burdens
from eqglb.certify import SideRows, lagrangian_bound, relative_gap, switching_prices
from eqglb.costs import Coefficients, Objective, coefficients, objective_value, regional_costs
from eqglb.policies.problem import (
    Routes,
    capacity_constraints,
    demand_constraints,
    dispatch_from,
    regional_expressions,
    regularizer,
    solve_problem,
    switching_rows,
)
from eqglb.scenario import Dispatch, Scenario, SolveInfo

__all__ = [
    "MODEL_RULES",
    "EquitableOffline",
    "LinearBaseline",
    "eglb_baseline",
    "weighted_total",
]

MODEL_RULES = ("best", "weighted", "free")

#: Relative slack allowed on a lexicographic stage's per-slot optimum.
LEX_TOL = 1e-7

#: Clarabel settings of the one tighter solve of a conic problem with a switching cost
#: whose first certificate missed ``tol``.
_TIGHT = {
    "max_iter": 1000,
    "tol_feas": 1e-10,
    "tol_gap_abs": 1e-10,
    "tol_gap_rel": 1e-10,
}


def _reference_scale(sc: Scenario, coef: Coefficients, routes: Routes, obj: Objective) -> float:
    """Rough magnitude of the objective [USD] used to scale it to O(1) for the solver."""
    total = float(np.asarray(sc.demand).sum())
    ec = float(np.abs(routes.gather(coef.energy_cost)).mean())
    c = float(routes.gather(coef.carbon).mean())
    w = float(routes.gather(coef.water).mean())
    social = float(np.max(coef.quality)) * (1.0 if coef.social_average else total)
    per = obj.energy_weight * ec + obj.mu_carbon * c + obj.mu_water * w
    for name, t in obj.active():  # further data-centre burdens (health, ...)
        if name not in ("carbon", "water") and burden(name).side == "datacenter":
            per += t.mu * float(routes.gather(coef.site[name]).mean())
    ref = total * per + obj.mu_social * social
    return ref if ref > 0 and math.isfinite(ref) else 1.0


def _lexicographic_bounds(
    sc: Scenario,
    routes: Routes,
    stages: list[np.ndarray],
    solver: str | None,
    opts: dict[str, Any],
    fixed: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
    """Solve the stages in order; return per-slot constraints ``sum_p c[t,p] x <= b[t]``.

    ``fixed`` rows (the mean-RTT budgets) hold in every stage and are not returned."""
    bounds: list[tuple[np.ndarray, np.ndarray]] = []
    spent = 0.0
    for c in stages:
        x = cp.Variable((sc.n_time, routes.size), nonneg=True)
        cons = demand_constraints(x, sc, routes) + capacity_constraints(x, sc, routes)
        cons += [cp.sum(cp.multiply(cb, x), axis=1) <= bb for cb, bb in (fixed or []) + bounds]
        cs = c / max(float(np.abs(c).max()), 1e-300)
        prob = cp.Problem(cp.Minimize(cp.sum(cp.multiply(cs, x))), cons)
        info = solve_problem(prob, lp=True, solver=solver, solver_options=opts)
        spent += info.solve_time
        per_slot = np.sum(cs * np.asarray(x.value), axis=1)
        slack = LEX_TOL * (np.abs(per_slot) + 1.0)
        bounds.append((cs, per_slot + slack))
    return bounds, spent


@dataclass
class LinearBaseline:
    """Equity-oblivious baseline minimising a linear cost (Nearest, Energy, Carbon, Water).

    Parameters
    ----------
    kind : {"nearest", "energy", "carbon", "water"}
        Cost minimised: latency [ms x requests], energy cost [USD], total carbon [kg]
        or total water [L].
    model_rule : {"best", "weighted", "free"}
        How model sizes are picked (module docstring). Nearest applies it after latency.
    objective : Objective
        Supplies ``mu_social`` for ``model_rule="weighted"``.
    """

    kind: str = "energy"
    model_rule: str = "best"
    objective: Objective = field(default_factory=Objective)
    solver: str | None = None
    solver_options: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    tol: float = 1e-6

    def __post_init__(self) -> None:
        kinds = ("nearest", "energy", *(b.name for b in datacenter_burdens()))
        if self.kind not in kinds:
            raise ValueError(f"unknown baseline kind {self.kind!r}; use one of {kinds}")
        if self.model_rule not in MODEL_RULES:
            raise ValueError(f"model_rule {self.model_rule!r}; use one of {MODEL_RULES}")
        self.name = self.name or self.kind

    def _cost(self, sc: Scenario, coef: Coefficients, routes: Routes) -> np.ndarray:
        if self.kind == "nearest":
            lat = sc.nearest_latency()[routes.i, routes.j]
            return np.broadcast_to(lat[None, :], (sc.n_time, routes.size)).astype(float)
        arr = coef.energy_cost if self.kind == "energy" else coef.site[self.kind]
        return routes.gather(arr)

    def plan(self, sc: Scenario) -> Dispatch:
        coef = coefficients(sc, social_average=self.objective.social_average)
        routes = Routes.of(sc)
        own = self._cost(sc, coef, routes)
        qual = np.broadcast_to(coef.quality_loss[routes.k][None, :], own.shape).astype(float)
        qp = coef.quality[routes.j, routes.k]
        # "weighted": the baseline's own cost valued in USD by the objective's per-unit
        # weight plus the same linear quality value mu_s * sum_j S_j (the q = 1 valuation)
        unit = self.objective.unit_weights()
        mu_s = unit["mu_social"]
        usd = {"nearest": 0.0, "energy": 1.0}.get(self.kind) or unit.get(f"mu_{self.kind}", 0.0)
        rule = self.model_rule
        if rule == "weighted" and self.kind != "nearest" and usd == 0.0:
            rule = "best"  # no USD value for this cost: fall back to best models first
        weighted = usd * own + mu_s * qp[None, :]
        own_unit = {"nearest": "ms x requests", "energy": "USD"}.get(self.kind) or burden(
            self.kind
        ).unit
        if self.kind == "nearest":
            # latency first; then the model by the rule (quality, or energy + quality value)
            energy = routes.gather(coef.energy_cost)
            second = {"best": qual, "weighted": energy + mu_s * qp[None, :], "free": energy}[rule]
            stages = [own, second]
            unit_last = {"best": "requests x quality loss", "weighted": "USD", "free": "USD"}[rule]
        elif rule == "best":
            stages = [qual, own]
            unit_last = own_unit
        elif rule == "weighted":
            stages = [weighted]
            unit_last = "USD"
        else:
            stages = [own]
            unit_last = own_unit
        bounds, spent = _lexicographic_bounds(
            sc, routes, stages[:-1], self.solver, self.solver_options
        )
        x = cp.Variable((sc.n_time, routes.size), nonneg=True)
        cons = demand_constraints(x, sc, routes) + capacity_constraints(x, sc, routes)
        side = [cp.sum(cp.multiply(cb, x), axis=1) <= bb for cb, bb in bounds]
        cons += side
        last = stages[-1]
        vs = max(float(np.abs(last).max()), 1e-300) * routes.scale
        prob = cp.Problem(cp.Minimize(cp.sum(cp.multiply(last / vs * routes.scale, x))), cons)
        info = solve_problem(
            prob, lp=True, solver=self.solver, solver_options=self.solver_options, value_scale=vs
        )
        dispatch = dispatch_from(x, sc, routes, self.name, info)
        # certificate of the last stage's own problem (earlier stages' rows relaxed with
        # their duals): value and bound in the unit of the last stage
        t0 = _time.perf_counter()
        yr = np.asarray(dispatch.y)[:, routes.i, routes.j, routes.k]
        value = float(np.sum(last * yr))
        rows = [
            SideRows(cb * (vs / routes.scale), bb * vs, _dual(con, sc.n_time))
            for con, (cb, bb) in zip(side, bounds, strict=True)
        ]
        lower = lagrangian_bound(sc, linear=last, side=rows)
        gap = relative_gap(value, lower)
        ok = gap <= self.tol and dispatch_feasible(sc, dispatch)
        info = SolveInfo(
            "optimal" if ok else "feasible",
            info.solver,
            info.solve_time + spent + (_time.perf_counter() - t0),
            value,
            lower,
            info.iterations,
            {
                **info.extra,
                "model_rule": self.model_rule,
                "stages": len(stages),
                "gap": gap,
                "objective_unit": unit_last,
                "certificate": "lagrangian (slot LPs)",
                "problem": self.describe(rule),
            },
        )
        return Dispatch(dispatch.y, policy=self.name, info=info)

    def describe(self, rule: str | None = None) -> str:
        """What this baseline minimises, in words."""
        rule = rule or self.model_rule
        own = {"nearest": "latency", "energy": "energy cost [USD]"}.get(
            self.kind
        ) or f"total {burden(self.kind).label}"
        if self.kind == "nearest":
            then = {
                "best": "then the best models",
                "free": "then energy cost",
                "weighted": "then energy cost + mu_s sum_j S_j",
            }[rule]
            return f"least {own} first, {then}"
        if rule == "weighted":
            unit = "" if self.kind == "energy" else f"mu_{burden(self.kind).symbol.lower()} "
            return f"{unit}{own} + mu_s sum_j S_j (quality valued at q = 1)"
        if rule == "best":
            return f"best achievable quality per slot first, then {own}"
        return f"{own} only (models chosen by that cost)"

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "model_rule": self.model_rule}


@dataclass
class EquitableOffline:
    """Hindsight-optimal equitable GLB: the convex program of docs/model.md, solved exactly.

    ``minimise energy cost + mu_s ||S||_qs + mu_c ||C||_qc + mu_w ||W||_qw``
    subject to demand served, capacity and routing, optionally with per-slot quality
    bounds from a baseline's ``model_rule="best"`` (used by the eGLB baseline), and with
    the scenario's mean-RTT budgets ``Scenario.rtt_budget_ms`` [ms] as per-slot rows
    (this model is the only path that carries them; see :mod:`eqglb.slo`), and with the
    objective's switching cost ``switching_cost * sum_t M_t`` [USD] when it is positive
    (the movement ``M_t`` [requests] of docs/switching.md, an L1 norm of fraction changes
    modelled with one variable per route and slot pair; this model is the only exact path
    for it).

    Parameters
    ----------
    objective : Objective
        Weights [USD per unit] and norm orders.
    solver : str or None
        cvxpy solver name; default HiGHS when the problem is an LP (q in {1, inf}),
        Clarabel otherwise.
    solver_options : dict
        Passed to ``problem.solve``.
    strict : bool
        Raise instead of returning a flagged dispatch when the solve is not certified.
    tol : float
        Relative gap [-] (:func:`eqglb.certify.relative_gap`) below which the result is
        called optimal. The gap is certified by a Lagrangian bound priced at the solver's
        duals (:func:`eqglb.certify.lagrangian_bound`); an uncertified solve is reported
        as ``feasible`` with its gap, never as optimal.
    """

    objective: Objective = field(default_factory=Objective)
    solver: str | None = None
    solver_options: dict[str, Any] = field(default_factory=dict)
    model_rule: str = "free"
    strict: bool = False
    name: str = "equitable"
    tol: float = 1e-6

    def build(self, sc: Scenario) -> tuple[cp.Problem, cp.Variable, Routes, float, float]:
        """The cvxpy problem, its variable, routes, objective scale [USD] and lexi time [s].

        The regional totals are explicit variables ``u == expression`` (one per term),
        so that their duals give the block prices of the certificate; the handles are
        kept in ``self._handles``.
        """
        coef = coefficients(sc, social_average=self.objective.social_average)
        obj = _drop_zero_terms(self.objective, sc, coef)
        routes = Routes.of(sc)
        spent = 0.0
        bounds: list[tuple[np.ndarray, np.ndarray]] = []
        budget = _rtt_budget_bounds(sc, routes)
        if self.model_rule == "best":
            qual = np.broadcast_to(
                coef.quality_loss[routes.k][None, :], (sc.n_time, routes.size)
            ).astype(float)
            bounds, spent = _lexicographic_bounds(
                sc, routes, [qual], self.solver, self.solver_options, budget
            )
        elif (
            self.model_rule == "weighted"
            and obj.mu_social > 0
            and not math.isinf(obj.q_social)
            and obj.q_social != 1.0
        ):
            raise ValueError("model_rule='weighted' needs q_social in {1, inf} or mu_social 0")
        x = cp.Variable((sc.n_time, routes.size), nonneg=True)
        cons = demand_constraints(x, sc, routes) + capacity_constraints(x, sc, routes)
        bounds = bounds + budget
        side = [cp.sum(cp.multiply(cb, x), axis=1) <= bb for cb, bb in bounds]
        cons += side
        ex = regional_expressions(x, coef, routes)
        totals: dict[str, tuple[cp.Variable, cp.Constraint]] = {}
        q_of = {
            "social": obj.q_social,
            "carbon": obj.q_carbon,
            "water": obj.q_carbon if obj.combined_environment else obj.q_water,
        }
        for key in ("social", "carbon", "water"):
            # minimax terms: explicit totals whose duals price the certificate (finite q:
            # the norm's gradient at the solution is the price, see _certify)
            if not math.isinf(q_of[key]):
                continue
            u = cp.Variable(ex[key].shape)
            eq = u == ex[key]
            totals[key] = (u, eq)
            cons.append(eq)
            ex[key] = u
        ref = _reference_scale(sc, coef, routes, obj)
        value = obj.energy_weight * ex["energy"] + regularizer(obj, ex)
        switching = switching_rows(x, sc, routes) if obj.switching_cost > 0 else None
        if switching is not None:
            # the movement [requests] priced at switching_cost [USD/request]
            cons.append(switching.rows)
            value = value + obj.switching_cost * switching.movement()
        prob = cp.Problem(cp.Minimize(value / ref), cons)
        self._handles: dict[str, Any] = {
            "totals": totals,
            "side": list(zip(side, bounds, strict=True)),
            "objective": obj,
            "coef": coef,
            "switching": switching,
        }
        return prob, x, routes, ref, spent

    def plan(self, sc: Scenario) -> Dispatch:
        prob, x, routes, ref, spent = self.build(sc)
        info = solve_problem(
            prob,
            lp=self.objective.is_linear,
            solver=self.solver,
            solver_options=self.solver_options,
            value_scale=ref,
        )
        dispatch = dispatch_from(x, sc, routes, self.name, info)
        info = self._certify(sc, dispatch, routes, ref, info, spent)
        conic = not self.objective.is_linear and (self.solver or "CLARABEL").upper() == "CLARABEL"
        if (
            not info.ok
            and conic
            and not self.solver_options
            and self._handles.get("switching") is not None
        ):
            # the duals of the fraction-change rows price the certificate; at Clarabel's
            # default tolerances they can leave a gap just above tol: one tighter solve
            first = info.solve_time
            info = solve_problem(
                prob, lp=False, solver="CLARABEL", solver_options=_TIGHT, value_scale=ref
            )
            dispatch = dispatch_from(x, sc, routes, self.name, info)
            info = self._certify(sc, dispatch, routes, ref, info, spent + first)
        if self.strict and not info.ok:
            from eqglb.policies.problem import SolveError

            raise SolveError(f"solve is {info.status}; not returned because strict=True", info)
        return Dispatch(dispatch.y, policy=self.name, info=info)

    def _certify(
        self,
        sc: Scenario,
        dispatch: Dispatch,
        routes: Routes,
        ref: float,
        info: SolveInfo,
        spent: float,
    ) -> SolveInfo:
        """Recompute the objective of the dispatch and bound the optimum from the duals.

        The switching cost, when there is one, is relaxed at the duals of the rows that
        define the fraction changes (:func:`eqglb.certify.switching_prices`)."""
        from eqglb.simulate import movement

        h: dict[str, Any] = self._handles
        obj: Objective = h["objective"]
        t0 = _time.perf_counter()
        value = objective_value(obj, regional_costs(h["coef"], np.asarray(dispatch.y)))
        moved = float(movement(sc, np.asarray(dispatch.y)).sum())
        value += obj.switching_cost * moved
        extra = None
        sw = h.get("switching")
        if sw is not None:
            # cvxpy's dual of ``delta == change`` enters its Lagrangian as nu.(delta -
            # change), so the price of a fraction change is -nu [USD / ref]
            nu = _dual(sw.rows, int(np.prod(sw.delta.shape)))
            extra = switching_prices(sc.demand, routes.j, -ref * nu, obj.switching_cost)
        side = []
        for con, (cb, bb) in h["side"]:
            nu = _dual(con, sc.n_time)
            # the row is sum cb x <= bb with y = scale x, in objective units / ref
            side.append(SideRows(cb * (ref / routes.scale), bb * ref, nu))
        rc = regional_costs(h["coef"], np.asarray(dispatch.y))
        grad = _norm_gradients(obj, rc)
        gamma = dict(grad)
        for key, (_u, eq) in h["totals"].items():
            # cvxpy's dual y of ``u == expression`` enters its Lagrangian as y.(u - expr),
            # so the price of the regional total is -y (in objective units / ref)
            gamma[key] = -ref * _dual(eq, int(_u.shape[0]) if _u.shape else 1)
        if obj.combined_environment and "environment" not in gamma:
            gamma["environment"] = (
                gamma["carbon"] / obj.mu_carbon
                if obj.mu_carbon > 0
                else gamma["water"] / max(obj.mu_water, 1e-300)
            )
        best = lagrangian_bound(sc, obj, gamma=gamma, side=side, coef=h["coef"], extra=extra)
        gap = relative_gap(value, best)
        ok = gap <= self.tol and dispatch_feasible(sc, dispatch)
        status = "optimal" if ok else ("feasible" if math.isfinite(best) else "inaccurate")
        return SolveInfo(
            status,
            info.solver,
            info.solve_time + spent + (_time.perf_counter() - t0),
            value,
            best,
            info.iterations,
            {
                **info.extra,
                "gap": gap,
                "certificate": "lagrangian (slot LPs)",
                "problem": obj.describe(),
                "model_rule": self.model_rule,
                **({"movement_requests": moved} if obj.switching_cost > 0 else {}),
            },
        )

    def state(self) -> dict[str, Any]:
        return {"objective": self.objective.describe(), "solver": self.solver}


def _norm_gradients(obj: Objective, rc: Any) -> dict[str, np.ndarray]:
    """Block prices for terms with 1 < q < inf: ``w grad ||u||_q`` at the solution's
    totals, ``w (u / ||u||_q) ** (q - 1)`` (the optimal price when the solution is
    optimal; any other point still gives a valid, looser bound)."""
    from eqglb.costs import norm_terms
    from eqglb.metrics import lq_norm

    out: dict[str, np.ndarray] = {}
    for name, w, q, u in norm_terms(obj, rc):
        u = np.clip(np.asarray(u, float), 0.0, None)
        if q == 1.0 or math.isinf(q):
            continue
        n = lq_norm(u, q)
        out[name] = w * (u / n) ** (q - 1.0) if n > 0 else np.zeros_like(u)
    return out


def _rtt_budget_bounds(sc: Scenario, routes: Routes) -> list[tuple[np.ndarray, np.ndarray]]:
    """The mean-RTT budget of each region with one (``Scenario.rtt_budget_ms``) as per-slot
    rows ``sum_p c[t,p] x[t,p] <= b[t]`` in the scaled variable x = y / scale, normalised
    by the largest RTT: ``sum_{i,k} rtt[i,j] y[t,i,j,k] <= budget_j demand[t,j]``. Like the
    lexicographic rows they are relaxed with their duals in the certificate (SideRows)."""
    from eqglb.slo import budget_rows

    out = []
    for _j, a, b in budget_rows(sc, routes):
        norm = max(float(np.abs(a).max()), 1e-300)
        out.append(
            (np.broadcast_to(a / norm, (sc.n_time, routes.size)).copy(), b / (routes.scale * norm))
        )
    return out


def _drop_zero_terms(obj: Objective, sc: Scenario, coef: Coefficients) -> Objective:
    """``obj`` without the terms whose cost is 0 on every route (a constant 0: a weight on
    it, however large, changes nothing, but it ruins the solver's scaling)."""
    i, j, k = np.nonzero(np.asarray(sc.allowed))
    changes: dict[str, Any] = {}
    for name, _t in obj.active():
        g = np.asarray(coef.of(name))
        if not np.any(g[j, k] if burden(name).side == "region" else g[:, i, k]):
            changes[f"mu_{name}"] = 0.0
    return obj.replace(**changes) if changes else obj


def _dual(con: cp.Constraint, n: int) -> np.ndarray:
    """Dual value of a cvxpy constraint as a float array (zeros when unavailable)."""
    v = con.dual_value
    if v is None:
        return np.zeros(n)
    return np.nan_to_num(np.asarray(v, dtype=float).ravel(), nan=0.0, posinf=0.0, neginf=0.0)


def dispatch_feasible(sc: Scenario, dispatch: Dispatch, tol: float = 1e-6) -> bool:
    """Whether a dispatch meets demand, capacity and routing to ``tol`` (relative)."""
    from eqglb.simulate import check_feasibility

    return check_feasibility(sc, np.asarray(dispatch.y)).ok(tol)


def weighted_total(objective: Objective, **kw: Any) -> EquitableOffline:
    """Weighted-total baseline: the same weights with q = 1 on every term (an LP)."""
    kw.setdefault("name", "weighted")
    return EquitableOffline(objective=objective.with_q(1), **kw)


def eglb_baseline(objective: Objective, model_rule: str = "best", **kw: Any) -> EquitableOffline:
    """eGLB baseline: q = inf on carbon and water, no quality term (arXiv 2307.05494).

    Without a quality term the model size follows ``model_rule``: ``"best"`` keeps each
    slot's minimum quality loss; ``"free"`` lets cost pick (smallest models).
    """
    kw.setdefault("name", "eglb")
    mu_social = objective.unit_weights()["mu_social"] if model_rule == "weighted" else 0.0
    obj = objective.with_terms(
        mu_social=mu_social, q_social=1.0, q_carbon=math.inf, q_water=math.inf
    )
    obj = obj.replace(combined_environment=False)
    if model_rule == "weighted":
        model_rule = "free"
    return EquitableOffline(objective=obj, model_rule=model_rule, **kw)
