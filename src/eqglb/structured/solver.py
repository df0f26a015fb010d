"""Structured exact solver of the offline equitable problem (Dantzig-Wolfe decomposition).

Only the regional totals (carbon and water per data centre, quality loss per region: at
most 2N + J numbers) couple the time slots; each slot alone is a small transportation-type
LP (see :mod:`eqglb.structured.coupling`). :class:`StructuredOffline` exploits this with
column generation:

1. *pricing*: at block prices ``gamma`` every slot LP is solved with the slot cost
   ``c_t + sum_b gamma_b g_b[t]`` by the batched warm-started simplex of
   :mod:`eqglb.structured.slotlp` (all slots in lock step); the sum of the slot optima is
   the Lagrangian dual function, a certified lower bound on the optimum (each slot's
   bound comes from an exactly dual-feasible point, so round-off cannot overstate it);
2. *master*: the slot vertices found so far are columns of a restricted master problem
   (a small conic program, :mod:`eqglb.structured.master`, solved by the structured
   interior-point method of :mod:`eqglb.structured.ipm`, with Clarabel or the HiGHS
   simplex as exact fallback) whose optimum is a feasible dispatch (convex combinations
   of feasible slot dispatches), an upper bound, and whose duals are the next prices;
3. the loop stops when the certified gap, upper minus lower bound, is at most ``tol``
   relative. Prices are stabilised (Wentges smoothing towards the best lower-bound point,
   with the weight adapted as in Pessoa et al. 2018), which cuts the zig-zag of plain
   column generation; long horizons start from the prices of a sampled problem.

The method is exact: with exact pricing and no column left to add, the master optimum
equals the dual bound (strong duality of the convex program).
"""

from __future__ import annotations

import contextlib
import math
import time as _time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eqglb.certify import relative_gap
from eqglb.costs import Objective, coefficients, objective_value, regional_costs
from eqglb.policies.problem import Routes
from eqglb.scenario import Dispatch, Scenario, SolveInfo
from eqglb.structured.colgen import Pricing, column_generation
from eqglb.structured.coupling import Block, Coupling, coupling_of
from eqglb.structured.master import ColumnPool, MasterSolution
from eqglb.structured.slotlp import SlotLPs, SlotSolution

__all__ = ["StructuredOffline", "slot_lps"]


@contextlib.contextmanager
def _single_blas_thread() -> Iterator[None]:
    """One BLAS thread while solving (if threadpoolctl is installed).

    The solver's dense products are small (M x L times L x M with M <= a few hundred);
    multi-threaded BLAS only adds synchronisation, and on a loaded machine it can be
    ten times slower than one thread.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


#: Horizons of at least this many slots start from prices of a sampled problem.
WARM_MIN_SLOTS = 96
#: Number of slots (about) of the sampled problem.
WARM_SAMPLE = 48
#: Relative gap to which the sampled problem is solved.
WARM_TOL = 1e-3


def _capacity_rows(sc: Scenario, routes: Routes) -> tuple[np.ndarray, np.ndarray]:
    """Capacity pool of each route and the units one request takes in it."""
    if sc.capacity_mode == "shared":
        return routes.i, np.asarray(sc.capacity_per_request)[routes.k]
    return routes.i * sc.shape[3] + routes.k, np.ones(routes.size)


def _capacity(sc: Scenario) -> np.ndarray:
    """Capacity right-hand sides (time, pool) [units/slot]."""
    cap = np.asarray(sc.capacity)
    return cap.reshape(cap.shape[0], -1)


def refuse_switching(objective: Objective, path: str) -> None:
    """Raise ValueError when ``objective`` has a switching cost, which ``path`` (a solver
    that decomposes by slot) cannot carry; the message names the policy that can."""
    if objective.switching_cost > 0:
        raise ValueError(
            f"objective has switching_cost = {objective.switching_cost:g} USD per request "
            f"moved, which couples consecutive slots; the {path} solver decomposes by slot "
            'and cannot carry it. Use policy "reference" (eqglb.policies.EquitableOffline, '
            'the cvxpy model, certified; make_policy("equitable") routes there by itself) '
            "or set switching_cost to 0 (docs/switching.md)"
        )


def slot_lps(sc: Scenario, routes: Routes) -> SlotLPs:
    """The batched slot LPs of ``sc`` over ``routes`` (demand and capacity rows)."""
    return SlotLPs(routes.j, *_capacity_rows(sc, routes), np.asarray(sc.demand), _capacity(sc))


@dataclass
class StructuredOffline:
    """Exact offline equitable GLB by Dantzig-Wolfe decomposition over the time slots.

    Solves the same convex program as :class:`eqglb.policies.EquitableOffline`
    (``energy cost + mu_s ||S||_qs + mu_c ||C||_qc + mu_w ||W||_qw`` subject to demand,
    capacity and routing) for any q >= 1, including q = inf, and certifies the result
    with a dual bound.

    Parameters
    ----------
    objective : Objective
        Weights [USD per unit] and norm orders.
    tol : float
        Target relative certified gap [-] (:func:`eqglb.certify.relative_gap`).
    max_iter : int
        Most column-generation iterations.
    time_limit : float or None
        Wall-clock limit [s]; the best dispatch found so far is returned with its
        certified gap (status ``"feasible"`` if above ``tol``).
    smoothing : float
        Initial Wentges smoothing weight in [0, 1): prices are
        ``smoothing * best_bound_prices + (1 - smoothing) * master_prices`` [-].
    adaptive : bool
        Adjust the smoothing weight after every iteration from the direction of a
        subgradient at the smoothed prices (Pessoa, Sadykov, Uchoa and Vanderbeck,
        INFORMS J. Computing 2018).
    max_age : int or None
        Columns unused (zero weight) for this many iterations leave the master.
    warm_start : bool
        Start long horizons (>= 96 slots) from the prices of the same problem on a
        sample of about 48 slots, each standing for T/48 slots.
    progress : callable or None
        Called after every iteration with a dict (iteration, upper [USD], lower [USD],
        gap [-], columns, elapsed [s]).
    name : str
        Policy name on the returned dispatch.
    """

    objective: Objective = field(default_factory=Objective)
    tol: float = 1e-6
    max_iter: int = 500
    time_limit: float | None = None
    smoothing: float = 0.5
    adaptive: bool = True
    progress: Callable[[dict[str, Any]], None] | None = None
    max_age: int | None = 3
    warm_start: bool = True
    master: str = "auto"
    name: str = "structured"

    def __post_init__(self) -> None:
        if not (self.tol > 0 and math.isfinite(self.tol)):
            raise ValueError(f"tol = {self.tol!r}; give a positive relative gap, e.g. 1e-6")
        if not 0 <= self.smoothing < 1:
            raise ValueError(f"smoothing = {self.smoothing!r}; it must lie in [0, 1)")
        if int(self.max_iter) < 1:
            raise ValueError(f"max_iter = {self.max_iter!r}; give at least 1")
        refuse_switching(self.objective, "structured")

    def state(self) -> dict[str, Any]:
        return {"objective": self.objective.describe(), "tol": self.tol, "max_iter": self.max_iter}

    # ------------------------------------------------------------------ solve
    def plan(self, sc: Scenario) -> Dispatch:
        """Certified optimal dispatch of ``sc`` (info.dual_bound, info.extra['gap'])."""
        with _single_blas_thread():
            return self._plan(sc)

    def _plan(self, sc: Scenario) -> Dispatch:
        t_start = _time.perf_counter()
        from eqglb.slo import refuse_budget

        refuse_budget(sc, "structured")
        refuse_switching(self.objective, "structured")
        obj = self.objective
        T, N, J, _ = sc.shape
        coef = coefficients(sc, social_average=obj.social_average)
        routes = Routes.of(sc)
        cp = coupling_of(obj, coef, routes.i, routes.j, routes.k, N, J)
        lps = slot_lps(sc, routes)
        slots = np.arange(T)
        stats = {"pricing_time": 0.0, "master_time": 0.0, "master_iterations": 0}

        def price(gamma: list[np.ndarray]) -> SlotSolution:
            t0 = _time.perf_counter()
            sol = lps.solve(slots, cp.prices(slots, gamma))
            stats["pricing_time"] += _time.perf_counter() - t0
            return sol

        if not cp.blocks:  # separable: one pass of slot LPs is the whole problem
            sol = price([])
            x = np.zeros((T, routes.size))
            mask = sol.routes >= 0
            np.add.at(
                x,
                (np.broadcast_to(slots[:, None], mask.shape)[mask], sol.routes[mask]),
                sol.values[mask],
            )
            lower = float(sol.bound.sum())
            return self._finish(
                sc,
                obj,
                coef,
                routes,
                x,
                lower,
                0,
                "optimal",
                stats,
                lps,
                t_start,
                master=None,
                method="separable slot LPs",
            )

        gamma0 = None
        warm_info: dict[str, Any] = {}
        if self.warm_start and T >= WARM_MIN_SLOTS:
            t0 = _time.perf_counter()
            gamma0 = self._sampled_prices(sc, routes, cp, warm_info)
            warm_info["warm_start_time"] = _time.perf_counter() - t0
        res = self._column_generation(
            cp,
            lps,
            T,
            routes.size,
            stats,
            t_start,
            gamma0=gamma0,
            tol=self.tol,
            max_iter=int(self.max_iter),
            report=True,
        )
        stats.update(warm_info)
        return self._finish(
            sc,
            obj,
            coef,
            routes,
            res["x"],
            res["lower"],
            res["iterations"],
            res["status"],
            stats,
            lps,
            t_start,
            master=res["master"],
            columns=res["columns"],
            method="dantzig-wolfe",
        )

    def _sampled_prices(
        self, sc: Scenario, routes: Routes, cp: Coupling, info: dict[str, Any]
    ) -> list[np.ndarray]:
        """Prices from the same problem on every k-th slot, each standing for k slots.

        The sampled problem keeps the slot constraints and weights each sampled slot's
        costs and regional contributions by T / (number sampled), so its regional totals
        estimate the full horizon's; its prices are a good start for the full solve.
        """
        T = sc.n_time
        k = max(1, T // WARM_SAMPLE)
        sample = np.arange(0, T, k)
        weight = T / sample.size
        sub = Coupling(
            cp.linear[sample] * weight,
            tuple(
                Block(
                    b.name,
                    b.weight,
                    b.q,
                    b.index,
                    b.size,
                    (b.coef * weight) if b.coef.shape[0] == 1 else b.coef[sample] * weight,
                )
                for b in cp.blocks
            ),
        )
        lps = SlotLPs(
            routes.j,
            *_capacity_rows(sc, routes),
            np.asarray(sc.demand)[sample],
            _capacity(sc)[sample],
        )
        sub_stats: dict[str, Any] = {
            "pricing_time": 0.0,
            "master_time": 0.0,
            "master_iterations": 0,
        }
        res = self._column_generation(
            sub,
            lps,
            sample.size,
            routes.size,
            sub_stats,
            _time.perf_counter(),
            gamma0=None,
            tol=WARM_TOL,
            max_iter=50,
            report=False,
        )
        info["warm_start_iterations"] = res["iterations"]
        info["warm_start_slots"] = int(sample.size)
        return res["center"]

    def _column_generation(
        self,
        cp: Coupling,
        lps: SlotLPs,
        T: int,
        n_route: int,
        stats: dict[str, Any],
        t_start: float,
        *,
        gamma0: list[np.ndarray] | None,
        tol: float,
        max_iter: int,
        report: bool,
    ) -> dict[str, Any]:
        """The column-generation loop (:mod:`eqglb.structured.colgen`) over slot vertices."""
        slots = np.arange(T)
        pool = ColumnPool(T, lps.m, cp.size)

        def price(gamma: list[np.ndarray]) -> Pricing:
            t0 = _time.perf_counter()
            sol = lps.solve(slots, cp.prices(slots, gamma))
            stats["pricing_time"] += _time.perf_counter() - t0
            f, a = pool.summarise(cp, sol, slots)
            return Pricing(float(sol.bound.sum()), f, a, slots, (cp, sol))

        def on_iteration(it: int, upper: float, lower: float, gap: float, cols: int) -> None:
            self._report(it, upper, lower, gap, cols, t_start)

        res = column_generation(
            cp,
            pool,
            price,
            gamma0=gamma0,
            tol=tol,
            max_iter=max_iter,
            smoothing=self.smoothing,
            adaptive=self.adaptive,
            max_age=self.max_age,
            master=self.master,
            time_limit=self.time_limit,
            t_start=t_start,
            stats=stats,
            on_iteration=on_iteration if report else None,
        )
        return {
            "x": res["snapshot"].dispatch(T, n_route),
            "lower": res["lower"],
            "upper": res["upper"],
            "iterations": res["iterations"],
            "status": res["status"],
            "master": res["best"],
            "columns": res["columns"],
            "center": res["center"],
        }

    def _report(
        self, it: int, upper: float, lower: float, gap: float, columns: int, t_start: float
    ) -> None:
        if self.progress is not None:
            self.progress(
                {
                    "iteration": it,
                    "upper": upper,
                    "lower": lower,
                    "gap": gap,
                    "columns": columns,
                    "elapsed": _time.perf_counter() - t_start,
                }
            )

    def _finish(
        self,
        sc: Scenario,
        obj: Objective,
        coef: Any,
        routes: Routes,
        x: np.ndarray,
        lower: float,
        iterations: int,
        status: str,
        stats: dict[str, Any],
        lps: SlotLPs,
        t_start: float,
        master: MasterSolution | None,
        columns: int = 0,
        method: str = "dantzig-wolfe",
    ) -> Dispatch:
        y = routes.scatter(x, sc)
        value = objective_value(obj, regional_costs(coef, y))  # recomputed, not trusted
        gap = relative_gap(value, lower)
        if status == "optimal" and gap > self.tol:
            status = "feasible"
        extra = {
            "gap": gap,
            "gap_abs": value - lower,
            "iterations": iterations,
            "problem": obj.describe(),
            "certificate": "lagrangian (slot LPs)",
            "columns": columns,
            "pricing_time": stats["pricing_time"],
            "master_time": stats["master_time"],
            "master_iterations": stats["master_iterations"],
            "simplex_steps": lps.steps,
            "simplex_pivots": lps.pivots,
            "fallback_slots": lps.fallbacks,
            "method": method,
            **{k: v for k, v in stats.items() if k.startswith("warm_start")},
        }
        if master is not None:
            extra["master_status"] = master.status
        info = SolveInfo(
            status=status,
            solver="eqglb-structured",
            solve_time=_time.perf_counter() - t_start,
            objective=value,
            dual_bound=lower,
            iterations=iterations,
            extra=extra,
        )
        return Dispatch(y, policy=self.name, info=info)
