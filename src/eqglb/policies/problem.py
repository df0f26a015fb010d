"""Vectorised convex problem of equitable GLB, built from small named pieces (cvxpy).

The decision is ``y[t, i, j, k]`` [requests/slot]; only allowed (datacenter, region, model)
triples ("routes" p = 0..P-1) get a variable, so the cvxpy variable is ``x`` of shape
(time, route) with ``y = scale * x`` (``scale`` = mean positive demand, for conditioning).
Every piece is built with sparse matrices; there is no Python loop over slots or routes.
"""

from __future__ import annotations

import math
import time as _time
import warnings
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from eqglb.burdens import BURDENS, burden
from eqglb.costs import Coefficients, Objective
from eqglb.scenario import Dispatch, Scenario, SolveInfo

__all__ = [
    "Routes",
    "SolveError",
    "SwitchingRows",
    "capacity_constraints",
    "demand_constraints",
    "regional_expressions",
    "regularizer",
    "solve_problem",
    "switching_rows",
]


from eqglb.errors import SolveError  # noqa: E402  (defined with every eqglb error)


@dataclass(frozen=True, eq=False)
class Routes:
    """Allowed (datacenter, region, model) triples of a scenario and their incidence matrices.

    Attributes
    ----------
    i, j, k : int arrays (route,)
        Datacenter, region and model index of each route.
    to_region : sparse (route, region)
        1 where the route serves the region.
    to_datacenter : sparse (route, datacenter)
        1 where the route runs at the data centre.
    scale : float
        Variable scale [requests/slot]: y = scale * x.
    """

    i: np.ndarray
    j: np.ndarray
    k: np.ndarray
    to_region: sp.csr_matrix
    to_datacenter: sp.csr_matrix
    scale: float

    @classmethod
    def of(cls, sc: Scenario) -> Routes:
        i, j, k = np.nonzero(np.asarray(sc.allowed))
        P = i.size
        ar = np.arange(P)
        to_r = sp.csr_matrix((np.ones(P), (ar, j)), shape=(P, len(sc.regions)))
        to_d = sp.csr_matrix((np.ones(P), (ar, i)), shape=(P, len(sc.datacenters)))
        d = np.asarray(sc.demand)
        pos = d[d > 0]
        scale = float(pos.mean()) if pos.size else 1.0
        return cls(i, j, k, to_r, to_d, scale)

    @property
    def size(self) -> int:
        return int(self.i.size)

    def gather(self, a: np.ndarray) -> np.ndarray:
        """(time, datacenter, model) coefficients -> (time, route)."""
        return np.asarray(a)[:, self.i, self.k]

    def scatter(self, x: np.ndarray, sc: Scenario) -> np.ndarray:
        """(time, route) values [requests/slot] -> dense y (time, datacenter, region, model)."""
        y = np.zeros(sc.shape)
        y[:, self.i, self.j, self.k] = x
        return y


# ----------------------------------------------------------------------------- pieces
def demand_constraints(x: cp.Variable, sc: Scenario, routes: Routes) -> list[cp.Constraint]:
    """Demand served: ``sum_{i,k} y[t,i,j,k] = demand[t,j]`` for all t, j."""
    return [x @ routes.to_region == np.asarray(sc.demand) / routes.scale]


def capacity_constraints(x: cp.Variable, sc: Scenario, routes: Routes) -> list[cp.Constraint]:
    """Capacity per slot.

    Shared: ``sum_{j,k} r[k] y[t,i,j,k] <= cap[t,i]``; per model:
    ``sum_j y[t,i,j,k] <= cap[t,i,k]``.
    """
    cap = np.asarray(sc.capacity)
    if sc.capacity_mode == "shared":
        r = np.asarray(sc.capacity_per_request)[routes.k]
        a = sp.diags(r) @ routes.to_datacenter
        return [x @ a <= cap / routes.scale]
    N, K = len(sc.datacenters), len(sc.models)
    P = routes.size
    a = sp.csr_matrix((np.ones(P), (np.arange(P), routes.i * K + routes.k)), shape=(P, N * K))
    return [x @ a <= cap.reshape(cap.shape[0], N * K) / routes.scale]


def regional_expressions(
    x: cp.Variable, coef: Coefficients, routes: Routes
) -> dict[str, cp.Expression]:
    """Energy cost [USD] and the regional total of every burden (:mod:`eqglb.burdens`).

    Data-centre burdens (datacenter,): ``C_i = sum_{t,j,k} carbon[t,i,k] y[t,i,j,k]``,
    likewise water W [L] and health H [USD]; quality loss (region,):
    ``S_j = sum_{t,i,k} quality[j,k] y[t,i,j,k]``.
    """
    s = routes.scale
    out: dict[str, cp.Expression] = {
        "energy": cp.sum(cp.multiply(routes.gather(coef.energy_cost), x)) * s
    }
    for name, b in BURDENS.items():
        if b.side == "region":
            qp = coef.quality[routes.j, routes.k]
            out[name] = (cp.sum(x, axis=0) @ (sp.diags(qp) @ routes.to_region)) * s
        else:
            g = coef.site[name]
            if name not in ("carbon", "water") and not np.any(g):
                out[name] = cp.Constant(np.zeros(routes.to_datacenter.shape[1]))
                continue
            out[name] = (
                cp.sum(cp.multiply(routes.gather(g), x), axis=0) @ routes.to_datacenter
            ) * s
    return out


@dataclass(frozen=True, eq=False)
class SwitchingRows:
    """The movement of docs/switching.md in the model: ``delta == f[1:] - f[:-1]``.

    Attributes
    ----------
    delta : cp.Variable (time - 1, route)
        Change of each route's routing fraction from slot t - 1 to slot t [-].
    rows : cp.Constraint
        ``delta[t-1, p] == g[t, p] x[t, p] - g[t-1, p] x[t-1, p]`` with
        ``g[t, p] = scale / demand[t, j_p]`` (0 where the demand is 0), so that
        ``g x = y / demand = f``.
    weight : array (time - 1, route)
        ``0.5 * demand[t, j_p]`` [requests]: the movement is ``sum weight * |delta|``.
    """

    delta: cp.Variable
    rows: cp.Constraint
    weight: np.ndarray

    def movement(self) -> cp.Expression:
        """Total movement ``sum_{t>=1} M_t`` [requests] (convex: a weighted L1 norm)."""
        return cp.sum(cp.multiply(self.weight, cp.abs(self.delta)))


def switching_rows(x: cp.Variable, sc: Scenario, routes: Routes) -> SwitchingRows | None:
    """The routing-fraction changes of ``x`` between consecutive slots (None for one slot).

    ``f[t,p] = y[t,p] / demand[t,j_p]``; the movement of slot t >= 1 is
    ``M_t = sum_p 0.5 demand[t,j_p] |f[t,p] - f[t-1,p]|`` [requests] (docs/switching.md).
    The changes are explicit variables so that the duals of their defining rows price the
    certificate (:func:`eqglb.certify.switching_prices`).
    """
    T = sc.n_time
    if T < 2:
        return None
    d = np.asarray(sc.demand, dtype=float)[:, routes.j]  # (T, P)
    g = np.divide(routes.scale, d, out=np.zeros_like(d), where=d > 0)
    delta = cp.Variable((T - 1, routes.size))
    rows = delta == cp.multiply(g[1:], x[1:]) - cp.multiply(g[:-1], x[:-1])
    return SwitchingRows(delta, rows, 0.5 * d[1:])


def _norm(v: cp.Expression, q: float) -> cp.Expression:
    if q == 1.0:
        return cp.sum(v)  # v >= 0 by construction
    if math.isinf(q):
        return cp.max(v)
    return cp.pnorm(v, q)  # type: ignore[arg-type]  # cvxpy accepts any real p >= 1


def regularizer(obj: Objective, ex: dict[str, cp.Expression]) -> cp.Expression:
    """``sum_b mu_b ||v_b||_q_b`` over the burdens (or the combined environmental norm)."""
    terms: list[cp.Expression] = []
    combinable = [k for k in obj.terms if burden(k).combinable]
    for name, t in obj.terms.items():
        if obj.combined_environment and name in combinable:
            if name == combinable[0] and any(obj.terms[k].mu > 0 for k in combinable):
                env = sum(obj.terms[k].mu * ex[k] for k in combinable[1:])
                terms.append(_norm(obj.terms[name].mu * ex[name] + env, obj.q_carbon))
            continue
        if t.mu > 0:
            terms.append(t.mu * _norm(ex[name], t.q))
    return cp.sum(cp.hstack(terms)) if terms else cp.Constant(0.0)


# ----------------------------------------------------------------------------- solving
_CVX_OK = {cp.OPTIMAL: "optimal", cp.OPTIMAL_INACCURATE: "optimal_inaccurate"}


def solve_problem(
    problem: cp.Problem,
    *,
    lp: bool,
    solver: str | None = None,
    solver_options: dict[str, Any] | None = None,
    value_scale: float = 1.0,
) -> SolveInfo:
    """Solve with HiGHS (LP) or Clarabel (otherwise) unless ``solver`` names another.

    Returns the status as data; raises :class:`SolveError` when no usable point exists.
    ``value_scale`` converts the problem's value back to [USD].
    """
    name = (solver or ("HIGHS" if lp else "CLARABEL")).upper()
    opts = dict(solver_options or {})
    if name == "HIGHS":
        opts.setdefault("output_flag", False)
    t0 = _time.perf_counter()
    try:
        with warnings.catch_warnings():
            # cvxpy warns on inaccurate solutions; the status is returned as data instead
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            problem.solve(solver=name, **opts)
            if (
                problem.status == cp.OPTIMAL_INACCURATE
                and name == "CLARABEL"
                and not solver_options
            ):
                # one retry with more iterations and tighter feasibility before flagging
                problem.solve(
                    solver=name,
                    max_iter=1000,
                    tol_feas=1e-9,
                    tol_gap_abs=1e-9,
                    tol_gap_rel=1e-9,
                    static_regularization_constant=1e-10,
                )
    except (cp.error.SolverError, ValueError) as exc:
        # ValueError: cvxpy could not unpack the solver's answer (status unknown) or an
        # option the solver refused; both are a failed solve, reported cleanly
        info = SolveInfo(
            status="solver_error",
            solver=name,
            solve_time=_time.perf_counter() - t0,
            extra={"message": str(exc)},
        )
        raise SolveError(
            f"{name} failed: {exc}; try another solver (--solver) or q in {{1, inf}} with HIGHS",
            info,
        ) from exc
    wall = _time.perf_counter() - t0
    stats = problem.solver_stats
    status = _CVX_OK.get(problem.status, str(problem.status))
    extra: dict[str, Any] = {
        "cvxpy_status": problem.status,
        "compile_time": getattr(problem, "compilation_time", None),
    }
    dual_bound = None
    raw = getattr(stats, "extra_stats", None)
    if raw is not None and hasattr(raw, "obj_val_dual"):  # Clarabel
        # its dual objective is a bound only if its dual point is feasible, which it does
        # not prove: recorded for diagnosis, never used as a certificate
        try:
            extra["clarabel_dual_objective"] = float(raw.obj_val_dual) * value_scale
            extra["r_prim"] = float(raw.r_prim)
            extra["r_dual"] = float(raw.r_dual)
        except (TypeError, ValueError):
            pass
    value = problem.value
    objective = float(value) * value_scale if value is not None and np.isfinite(value) else None
    if raw is not None and hasattr(raw, "primal_dual_objective_error"):  # HiGHS
        for key in (
            "max_primal_infeasibility",
            "max_dual_infeasibility",
            "primal_dual_objective_error",
            "simplex_iteration_count",
            "ipm_iteration_count",
            "dual_solution_status",
        ):
            extra[key] = getattr(raw, key)
        # No bound from HiGHS's own figures: objective minus the primal-dual objective
        # error ignores dual infeasibility and is not a valid bound. Callers certify the
        # result with eqglb.certify.lagrangian_bound instead.
    # "optimal" here is only the solver's claim: uncertified until a caller checks a bound
    extra["solver_status"] = status
    info = SolveInfo(
        status="inaccurate",
        solver=name,
        solve_time=wall,
        objective=objective,
        dual_bound=dual_bound,
        iterations=getattr(stats, "num_iters", None),
        extra=extra,
    )
    if status not in ("optimal", "optimal_inaccurate"):
        failed = SolveInfo(
            status="infeasible" if "infeasible" in status else "failed",
            solver=name,
            solve_time=wall,
            extra=extra,
        )
        raise SolveError(
            f"{name} returned status {status!r}: no dispatch; check that demand "
            "can be served (Scenario validation) or try another solver",
            failed,
        )
    return info


def dispatch_from(
    x: cp.Variable, sc: Scenario, routes: Routes, policy: str, info: SolveInfo
) -> Dispatch:
    """Dense dispatch from a solved variable: tiny negative round-off clipped to 0 and each
    (slot, region) rescaled so demand is met exactly (changes are at solver tolerance)."""
    xv = np.asarray(x.value, dtype=float)
    xv = np.clip(xv, 0.0, None) * routes.scale
    served = xv @ routes.to_region  # (T, J)
    d = np.asarray(sc.demand)
    fac = np.divide(d, served, out=np.zeros_like(d), where=served > 0)
    xv = xv * fac[:, routes.j]
    return Dispatch(routes.scatter(xv, sc), policy=policy, info=info)
