"""Fast exact solver of the per-slot routing problem of the online policies.

With the dual prices of the online algorithm held fixed, one slot's decision is the
linear program (docs/model.md, "Online equitable GLB", step 1)::

    minimise    sum_{i,j,k} c[i,j,k] y[i,j,k]
    subject to  sum_{i,k} y[i,j,k] = demand[j]                 for every region j
                sum_{j,k} r[k] y[i,j,k] <= cap[i]               (shared capacity), or
                sum_j y[i,j,k] <= cap[i,k]                      (per-model capacity)
                y[i,j,k] >= 0, and y = 0 on routes that are not allowed

with ``c[i,j,k] = energy_cost[i,k] + sum_r gamma_r * (slot increment of regional cost r per
request)`` [USD/request]. It is a transportation problem (per-model capacity) or a
generalised transportation problem (shared capacity with request sizes ``r[k]``).

Two exact paths, tried in order:

1. **Greedy**: every region takes its cheapest allowed (datacenter, model). That minimises
   the problem without capacity rows; when it also respects every capacity it is optimal
   for the full problem (a relaxation's optimum that is feasible is optimal). Cost: a few
   vectorised numpy operations.
2. **HiGHS simplex** (``highspy``), on a model built once: each slot only the column costs
   and the row bounds change. Costs are divided by ``max |c|`` and quantities by the
   largest demand or capacity so HiGHS's absolute tolerances (1e-7) are relative ones.
   Every solve starts cold (``clearSolver``, no basis carried between slots) and HiGHS's
   own scaling is off, so a decision depends only on the slot's data: a run resumed from
   saved state repeats the same decisions exactly, even where the optimum is not unique.
   (With HiGHS's scaling on, scaling state of the model survived ``clearSolver``: on the
   built-in scenario a fresh instance decided 47 of 60 slots otherwise than the instance
   that had solved the slots before (none with scaling off), and a resumed run departed
   from the uninterrupted one at its first slot; with the model scaled here, switching
   it off changes no decision of an uninterrupted run and costs no time.)
   A warm start does not pay at this size: on the built-in week at 10 x 10 x 4
   (``benchmarks/bench_online_slot.py``) a persistent model with HiGHS's default warm
   start takes ~1.5x the time of the same model solved cold, because the costs of
   successive slots differ everywhere and the per-run set-up, not the iterations,
   dominates a 20-row LP; a warm start would also make a decision depend on the basis
   left by the previous slot.

   Per solve, besides ``Highs.run``: the ``threads`` option is set to the number HiGHS's
   scheduler runs by default (:func:`_threads`), which spares every run one read of the
   CPU topology from ``/sys`` (~30 us); the solution is read with ``np.fromiter``.

Ties are broken deterministically (lowest route index on the greedy path; HiGHS is
deterministic for identical input).
"""

from __future__ import annotations

import os
import time as _time
from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp

from eqglb._highs import highs_lp
from eqglb.policies.problem import SolveError
from eqglb.scenario import SolveInfo

__all__ = ["SlotSolution", "SlotSolver", "run_highs"]

_INF = highspy.kHighsInf
_ERROR = highspy.HighsStatus.kError
_NOTSET = highspy.HighsModelStatus.kNotset
#: HiGHS's default number of threads, once guessed (0: HiGHS's own default).
_THREADS: list[int] = []


def _threads() -> int:
    """The number of threads HiGHS's scheduler runs by default: the physical cores this
    process may use (HiGHS's ``available_core_count``; 0 where it cannot be read here).

    Set as the ``threads`` option it saves a run one read of the CPU topology from
    ``/sys`` (the default, 0, reads it again on every run; ~30 us of a ~400 us slot
    solve). Where the guess differs from HiGHS's scheduler the run returns an error
    before solving and the solver retries with 0 (:meth:`SlotSolver._highs`)."""
    if not _THREADS:
        try:
            cores = set()
            for cpu in sorted(os.sched_getaffinity(0)):
                top = f"/sys/devices/system/cpu/cpu{cpu}/topology/"
                with open(top + "physical_package_id") as f1, open(top + "core_id") as f2:
                    cores.add((int(f1.read()), int(f2.read())))
            _THREADS.append(len(cores))
        except (AttributeError, OSError, ValueError):
            _THREADS.append(0)
    return _THREADS[0]


@dataclass(frozen=True, eq=False)
class SlotSolution:
    """Solution of one slot's routing problem.

    Attributes
    ----------
    y : array (datacenter, region, model)
        Requests routed [requests/slot]; demand is met exactly (rows rescaled after a
        simplex solve to remove round-off at solver tolerance).
    objective : float
        ``sum c * y`` [unit of c x requests].
    method : str
        ``"greedy"`` (no capacity binds) or ``"highs"``.
    solve_time : float
        Wall time of the solve [s].
    """

    y: np.ndarray
    objective: float
    method: str
    solve_time: float


def run_highs(h: highspy.Highs) -> tuple[highspy.HighsStatus, highspy.HighsModelStatus]:
    """``h.run()`` and the model status, for an instance built with ``threads=_threads()``.

    Where HiGHS's scheduler runs another number of threads than :func:`_threads` guessed,
    HiGHS refuses the run before solving (error, status not set): the instance is set
    to the default (0) and the run repeated, and instances built later start at 0; the
    solve itself is the same either way.
    """
    run_status = h.run()
    status = h.getModelStatus()
    if run_status == _ERROR and status == _NOTSET:
        value = h.getOptionValue("threads")  # (status, value) in some highspy versions
        if (value[-1] if isinstance(value, tuple) else value) != 0:
            _THREADS[:] = [0]  # instances built from now on
            h.setOptionValue("threads", 0)
            run_status = h.run()
            status = h.getModelStatus()
    return run_status, status


class SlotSolver:
    """Exact per-slot routing LP with a reusable HiGHS model (see the module docstring).

    Parameters
    ----------
    allowed : bool array (datacenter, region, model)
        Routes that may carry requests.
    capacity_per_request : array (model,)
        Capacity units one request of each model takes [units/request] (shared mode).
    capacity_mode : {"shared", "per_model"}
        One capacity pool per data centre [units/slot] or one per (data centre, model)
        [requests/slot].
    greedy : bool
        Try the greedy path first (exact when no capacity binds).
    """

    def __init__(
        self,
        allowed: np.ndarray,
        capacity_per_request: np.ndarray,
        capacity_mode: str = "shared",
        *,
        greedy: bool = True,
    ) -> None:
        allowed = np.asarray(allowed, dtype=bool)
        if allowed.ndim != 3:
            raise ValueError(
                f"allowed has shape {allowed.shape}; expected (datacenter, region, model)"
            )
        if capacity_mode not in ("shared", "per_model"):
            raise ValueError(f"capacity_mode {capacity_mode!r}; use 'shared' or 'per_model'")
        N, J, K = allowed.shape
        self.shape = (N, J, K)
        self.capacity_mode = capacity_mode
        self.greedy = greedy
        r = np.asarray(capacity_per_request, dtype=float)
        self.r = r
        # routes grouped by region (region-major order) so each region's routes are contiguous
        j, i, k = np.nonzero(allowed.transpose(1, 0, 2))
        self.i, self.j, self.k = i, j, k
        P = i.size
        self.n_routes = P
        counts = np.bincount(j, minlength=J)
        if (counts == 0).any():
            raise ValueError(f"region index {int(np.argmin(counts))} has no allowed route")
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        self._pos = np.arange(P) - starts[j]  # position inside the region's block
        self._flat = np.ravel_multi_index((i, j, k), (N, J, K))  # cell of each route
        self._pad_shape = (J, int(counts.max()))
        # capacity rows: shared -> one per datacenter; per_model -> one per (datacenter, model)
        if capacity_mode == "shared":
            cap_row = i
            cap_coef = r[k]
            n_cap = N
        else:
            cap_row = i * K + k
            cap_coef = np.ones(P)
            n_cap = N * K
        self._cap_row, self._cap_coef, self._n_cap = cap_row, cap_coef, n_cap
        # HiGHS model: columns = routes; rows = J demand rows then n_cap capacity rows
        index = np.empty(2 * P, dtype=np.int32)
        value = np.empty(2 * P)
        index[0::2], value[0::2] = j, 1.0
        index[1::2], value[1::2] = J + cap_row, cap_coef
        A = sp.csc_matrix((value, index, np.arange(P + 1) * 2), shape=(J + n_cap, P))
        h = highs_lp(
            A,
            np.zeros(P),
            np.zeros(J + n_cap),
            np.zeros(J + n_cap),
            presolve="off",
            solver="simplex",
            # no scaling: with it, scaling state of the model survives clearSolver and
            # earlier slots sway later ones (measured: 47 of 60 built-in slots decided
            # otherwise by an instance with history than by a fresh one, i.e. by a
            # resumed run; none without); the model is scaled here already
            simplex_scale_strategy=0,
            threads=_threads(),
        )
        self._h = h
        # greedy path: the (region, position) cells of each route, flat; where every region
        # has the same number of routes the cost vector itself is the (region, route) table
        self._pad_flat = j * self._pad_shape[1] + self._pos
        self._uniform = bool((counts == counts[0]).all())
        self._starts = starts
        self._col_idx = np.arange(P, dtype=np.int32)
        self._row_idx = np.arange(J + n_cap, dtype=np.int32)
        self._row_lo = np.empty(J + n_cap)
        self._row_lo[J:] = -_INF
        self._row_hi = np.empty(J + n_cap)

    # ------------------------------------------------------------------ helpers
    def gather(self, a: np.ndarray) -> np.ndarray:
        """(datacenter, region, model) array -> (route,) vector in this solver's order."""
        return np.asarray(a)[self.i, self.j, self.k]

    def scatter(self, x: np.ndarray) -> np.ndarray:
        """(route,) vector -> dense (datacenter, region, model) array."""
        y = np.zeros(self.shape)
        y.reshape(-1)[self._flat] = x  # y[self.i, self.j, self.k] = x
        return y

    def _capacity_vector(self, capacity: np.ndarray) -> np.ndarray:
        cap = np.asarray(capacity, dtype=float)
        return cap.reshape(-1)

    def used(self, x: np.ndarray) -> np.ndarray:
        """Capacity used by route flows ``x`` (route,): (datacenter,) or (datacenter*model,)."""
        return np.bincount(self._cap_row, weights=self._cap_coef * x, minlength=self._n_cap)

    # ------------------------------------------------------------------ solving
    def solve_routes(
        self, cost: np.ndarray, demand: np.ndarray, capacity: np.ndarray
    ) -> tuple[np.ndarray, str]:
        """Optimal route flows for per-route costs.

        Parameters
        ----------
        cost : array (route,)
            Cost per request of each route, in this solver's route order [any unit].
        demand : array (region,)
            Requests to serve [requests/slot].
        capacity : array (datacenter,) or (datacenter, model)
            Capacity of the slot [units/slot] or [requests/slot].

        Returns
        -------
        x : array (route,) [requests/slot], method : {"greedy", "highs"}

        Raises
        ------
        SolveError
            If HiGHS does not find an optimal solution (e.g. the slot is infeasible).
        """
        c = np.asarray(cost, dtype=float)
        d = np.asarray(demand, dtype=float)
        cap = self._capacity_vector(capacity)
        if self.greedy:
            if self._uniform:
                pad = c.reshape(self._pad_shape)
            else:
                pad = np.full(self._pad_shape, np.inf)
                pad.reshape(-1)[self._pad_flat] = c
            sel = self._starts + pad.argmin(axis=1)  # each region's cheapest route
            w = self._cap_coef[sel] * d  # capacity the greedy routing uses per region
            used = np.bincount(self._cap_row[sel], weights=w, minlength=self._n_cap)
            if (used <= cap * (1.0 + 1e-12)).all():
                x = np.zeros(self.n_routes)
                x[sel] = d
                return x, "greedy"
        return self._highs(c, d, cap), "highs"

    def _highs(self, c: np.ndarray, d: np.ndarray, cap: np.ndarray) -> np.ndarray:
        J = self.shape[1]
        cmax = float(np.abs(c).max()) if c.size else 0.0
        cs = c / cmax if cmax > 0 else c
        qscale = max(float(d.max(initial=0.0)), float(cap.max(initial=0.0)), 1e-300)
        self._row_lo[:J] = d / qscale
        self._row_hi[:J] = d / qscale
        self._row_hi[J:] = cap / qscale
        h = self._h
        h.changeColsCost(self.n_routes, self._col_idx, cs)
        h.changeRowsBounds(  # type: ignore[attr-defined]  # highspy binds it at runtime
            self._row_idx.size, self._row_idx, self._row_lo, self._row_hi
        )
        h.clearSolver()  # cold start: decisions depend on the slot's data only
        run_status, status = run_highs(h)
        if status != highspy.HighsModelStatus.kOptimal:
            msg = h.modelStatusToString(status)
            if run_status == highspy.HighsStatus.kError:
                msg = f"error ({msg})"
            raise SolveError(
                f"per-slot routing problem: HiGHS status {msg!r}; the slot's demand cannot "
                "be served within capacity and routing (check capacity and allowed routes)",
                SolveInfo(status=msg.lower(), solver="HIGHS"),
            )
        x = np.fromiter(h.getSolution().col_value, float, self.n_routes)
        np.maximum(x, 0.0, out=x)  # np.clip(x, 0.0, None)
        x *= qscale
        served = np.bincount(self.j, weights=x, minlength=J)
        if served.min(initial=1.0) > 0:
            fac = d / served
        else:
            fac = np.divide(d, served, out=np.zeros_like(d), where=served > 0)
        x *= fac[self.j]
        return x

    def solve(self, cost: np.ndarray, demand: np.ndarray, capacity: np.ndarray) -> SlotSolution:
        """Optimal dispatch of one slot for dense costs (datacenter, region, model).

        Parameters
        ----------
        cost : array (datacenter, region, model)
            Cost per request [any unit, e.g. USD/request]; entries on routes that are not
            allowed are ignored.
        demand : array (region,) [requests/slot]
        capacity : array (datacenter,) [units/slot] or (datacenter, model) [requests/slot]
        """
        t0 = _time.perf_counter()
        c = self.gather(cost)
        x, method = self.solve_routes(c, demand, capacity)
        return SlotSolution(self.scatter(x), float(c @ x), method, _time.perf_counter() - t0)
