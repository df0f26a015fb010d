"""The per-slot routing LP with a switching cost and a hard per-slot change limit.

An online policy that prices the change of its routing (docs/switching.md) decides slot t
with the previous slot's routing fractions ``f_prev[p]`` [-] known (``p`` a route
(data centre, region, model); ``f_prev = y_{t-1} / demand_{t-1}``, 0 where the region had no
demand). With ``d[p]`` the demand of the route's region in slot t [requests/slot], the
movement of the slot is ``M_t = 0.5 * sum_p |x[p] - d[p] f_prev[p]|`` [requests] and the
slot's LP is::

    minimise    c . x + s/2 * sum_p m[p]                               [USD]
    subject to  sum_{p in region j} x[p] = demand[j]                    (demand rows)
                capacity rows of :mod:`eqglb.online.slot_solver`
                m[p] >= x[p] - d[p] f_prev[p],  m[p] >= d[p] f_prev[p] - x[p]
                sum_{p in region j} m[p] <= 2 L demand[j]               (change limit)
                x, m >= 0

with ``c`` the policy's price per request of every route [USD/request], ``s`` the
switching cost [USD per request moved] and ``L`` the change limit [-]: the share of a
region's requests whose destination may change in one slot (its total-variation
distance ``0.5 * sum_p |f_t[p] - f_prev[p]|``), None for no limit. At the optimum
``m[p] = |x[p] - d[p] f_prev[p]|`` wherever ``s > 0``.

A region without previous fractions (no demand in the previous slot) has nothing to keep:
the limit does not apply to it. When capacity and demand force more change than ``L``
allows (capacity fell, demand rose), the limit cannot hold everywhere: the solver then
first minimises the total excess change over the limit (requests moved beyond it, summed
over regions), and then the cost with the total excess held at that minimum; :attr:`SwitchingSolution.excess` says by
how many requests each region exceeded its limit, so a service can report it. Every slot is
solved by a new HiGHS instance, cold: the decision depends on the slot's data only (a
resumed run decides alike).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np
import scipy.sparse as sp

from eqglb._highs import highs_lp
from eqglb.online.slot_solver import SlotSolver, _threads, run_highs
from eqglb.policies.problem import SolveError
from eqglb.scenario import SolveInfo

__all__ = ["SwitchingSlotLP", "SwitchingSolution", "check_change_limit"]

_INF = highspy.kHighsInf


def check_change_limit(value: object, what: str = "max_change") -> float | None:
    """``value`` as a change limit in [0, 1] [-], or None; ValueError naming ``what``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(
            f"{what} = {value!r}; give the share of a region's requests that may change "
            "destination per slot, a number in [0, 1]"
        )
    v = float(value)
    if not (0.0 <= v <= 1.0):
        raise ValueError(
            f"{what} = {v!r}; give a share in [0, 1] (0: the weights never change, 1: no limit)"
        )
    return v


@dataclass(frozen=True, eq=False)
class SwitchingSolution:
    """Routing of one slot under a switching cost and change limit.

    Attributes
    ----------
    x : array (route,)
        Requests per route [requests/slot] in the :class:`SlotSolver`'s route order.
    moved : float
        Movement of the slot [requests] (``M_t`` of docs/switching.md).
    excess : array (region,)
        Requests of each region that changed destination beyond the limit
        [requests/slot] (0 everywhere unless capacity forced it; 0 without a limit).
    """

    x: np.ndarray
    moved: float
    excess: np.ndarray


class SwitchingSlotLP:
    """HiGHS model of the slot LP above over the routes of ``routes`` (built once).

    Parameters
    ----------
    routes : SlotSolver
        The policy's slot solver: its route order, capacity rows and request sizes.
    switching_cost : float
        Price of one request moved [USD per request] (>= 0).
    max_change : float, optional
        Change limit L in [0, 1] [-]; None: no limit.
    """

    def __init__(
        self, routes: SlotSolver, switching_cost: float, max_change: float | None = None
    ) -> None:
        sw = float(switching_cost)
        if not (np.isfinite(sw) and sw >= 0):
            raise ValueError(f"switching_cost = {switching_cost!r}; give a price >= 0")
        self.routes = routes
        self.switching_cost = sw
        self.max_change = check_change_limit(max_change)
        N, J, K = routes.shape
        P = routes.n_routes
        n_cap = routes._n_cap
        self._J, self._P, self._ncap = J, P, n_cap
        # columns: x (P), m (P), e (J: excess over the limit); rows: demand (J),
        # capacity (n_cap), m - x >= -d f (P), m + x >= d f (P), sum m - e <= 2 L d (J)
        p = np.arange(P)
        r0, r1, r2, r3 = J, J + n_cap, J + n_cap + P, J + n_cap + 2 * P
        rows = np.concatenate(
            [routes.j, r0 + routes._cap_row, r1 + p, r2 + p, r1 + p, r2 + p, r3 + routes.j]
        )
        cols = np.concatenate([p, p, p, p, P + p, P + p, P + p])
        one = np.ones(P)
        vals = np.concatenate([one, routes._cap_coef, -one, one, one, one, one])
        e = np.arange(J)  # excess rows, then one row of the total excess
        rows = np.concatenate([rows, r3 + e, np.full(J, r3 + J)])
        cols = np.concatenate([cols, 2 * P + e, 2 * P + e])
        vals = np.concatenate([vals, -np.ones(J), np.ones(J)])
        self._nrow = r3 + J + 1
        self._ncol = 2 * P + J
        self._A = sp.csc_matrix((vals, (rows, cols)), shape=(self._nrow, self._ncol))
        self._col_idx = np.arange(self._ncol, dtype=np.int32)
        self._row_idx = np.arange(self._nrow, dtype=np.int32)
        self._e_idx = np.arange(2 * P, 2 * P + J, dtype=np.int32)

    def solve(
        self,
        cost: np.ndarray,
        demand: np.ndarray,
        capacity: np.ndarray,
        f_prev: np.ndarray,
        has_prev: np.ndarray,
    ) -> SwitchingSolution:
        """Optimal routing of one slot.

        Parameters
        ----------
        cost : array (route,)
            The policy's price per request of each route [USD/request].
        demand : array (region,)
            Requests to serve [requests/slot].
        capacity : array (datacenter,) [units/slot] or (datacenter, model) [requests/slot]
        f_prev : array (route,)
            Previous slot's routing fractions [-] (each region's sum 1, or 0 without
            demand).
        has_prev : bool array (region,)
            Regions with previous fractions (the limit applies to them only).
        """
        rt = self.routes
        J, P, ncap = self._J, self._P, self._ncap
        c = np.asarray(cost, dtype=float)
        d = np.asarray(demand, dtype=float)
        cap = np.asarray(capacity, dtype=float).reshape(-1)
        cmax = max(float(np.abs(c).max(initial=0.0)), self.switching_cost / 2.0)
        cscale = 1.0 / cmax if cmax > 0 else 1.0
        qscale = 1.0 / max(float(d.max(initial=0.0)), float(cap.max(initial=0.0)), 1e-300)
        target = d[rt.j] * np.asarray(f_prev, dtype=float) * qscale  # d f_prev, scaled
        lo = np.empty(self._nrow)
        hi = np.empty(self._nrow)
        lo[:J] = hi[:J] = d * qscale
        lo[J : J + ncap], hi[J : J + ncap] = -_INF, cap * qscale
        r1 = J + ncap
        lo[r1 : r1 + P], hi[r1 : r1 + P] = -target, _INF
        lo[r1 + P : r1 + 2 * P], hi[r1 + P : r1 + 2 * P] = target, _INF
        lo[r1 + 2 * P :] = -_INF
        limited = np.asarray(has_prev, dtype=bool) & (self.max_change is not None)
        L = self.max_change if self.max_change is not None else 1.0
        hi[r1 + 2 * P : -1] = np.where(limited, 2.0 * L * d * qscale, _INF)
        hi[-1] = _INF
        col_cost = np.concatenate([c * cscale, np.full(P, self.switching_cost / 2 * cscale)])
        # a new HiGHS instance per slot: a reused one carries state (e.g. its random
        # perturbation) from solve to solve, and a resumed run would decide otherwise
        h = highs_lp(
            self._A,
            np.concatenate([col_cost, np.zeros(J)]),
            lo,
            hi,
            col_upper=np.concatenate([np.full(2 * P, _INF), np.zeros(J)]),
            presolve="off",
            solver="simplex",
            threads=_threads(),  # one /sys read less per run (slot_solver._threads)
        )
        status = self._run(h)
        excess = np.zeros(J)
        if status == highspy.HighsModelStatus.kInfeasible and self.max_change is not None:
            # the limit cannot hold everywhere: least total excess first, then the cost
            h.changeColsBounds(J, self._e_idx, np.zeros(J), np.full(J, _INF))
            h.changeColsCost(
                self._ncol, self._col_idx, np.concatenate([np.zeros(2 * P), np.ones(J)])
            )
            status = self._run(h)
            if status == highspy.HighsModelStatus.kOptimal:
                e = float(np.clip(np.asarray(h.getSolution().col_value)[2 * P :], 0, None).sum())
                hi[-1] = e * (1.0 + 1e-9) + 1e-12  # phase 2 feasible at solver tolerance
                h.changeRowsBounds(self._nrow, self._row_idx, lo, hi)  # type: ignore[attr-defined]
                h.changeColsCost(self._ncol, self._col_idx, np.concatenate([col_cost, np.zeros(J)]))
                status = self._run(h)
        if status != highspy.HighsModelStatus.kOptimal:
            msg = h.modelStatusToString(status)
            raise SolveError(
                f"per-slot routing problem with switching: HiGHS status {msg!r}; the slot's "
                "demand cannot be served within capacity and routing (check capacity and "
                "allowed routes)",
                SolveInfo(status=msg.lower(), solver="HIGHS"),
            )
        sol = np.asarray(h.getSolution().col_value, dtype=float)
        x = np.clip(sol[:P], 0.0, None) / qscale
        served = np.bincount(rt.j, weights=x, minlength=J)
        x = x * np.divide(d, served, out=np.zeros_like(d), where=served > 0)[rt.j]
        dev = np.abs(x - d[rt.j] * np.asarray(f_prev, dtype=float))  # [requests] per route
        moved = 0.5 * float(dev.sum())
        if self.max_change is not None:
            per = 0.5 * np.bincount(rt.j, weights=dev, minlength=J)  # moved per region
            excess = np.where(limited, np.clip(per - L * d, 0.0, None), 0.0)
            excess[excess <= 1e-9 * np.maximum(d, 1.0)] = 0.0  # solver round-off
        return SwitchingSolution(x, moved, excess)

    @staticmethod
    def _run(h: Any) -> object:
        return run_highs(h)[1]
