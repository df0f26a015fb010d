"""Exact per-slot feasibility check of a scenario (used by Scenario validation)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from eqglb.scenario import Scenario

#: Largest number of LP variables the exact check builds; above it only the cheap
#: necessary conditions run and the solver reports infeasibility itself.
MAX_EXACT_VARIABLES = 4_000_000


def first_unservable(sc: Scenario) -> tuple[int, int, float] | None:
    """First (slot, region, unserved requests) that no dispatch can serve, or None.

    Shared capacity: route (i, j) may use its least capacity-hungry allowed model
    ``rmin[i, j] = min_k r[k]`` (any feasible dispatch can be moved there), so the check is
    the LP  min sum s  s.t.  sum_i x[t,i,j] + s[t,j] = demand[t,j],
    sum_j rmin[i,j] x[t,i,j] <= cap[t,i],  x, s >= 0.  Per-model capacity uses
    y[t,i,j,k] with sum_j y[t,i,j,k] <= cap[t,i,k]. The slots are independent: slots that
    a cheap sufficient condition does not clear are solved one by one, in order, by one
    warm-started HiGHS model (memory of one slot, not of the horizon).
    """
    T, N, J, K = sc.shape
    D = np.asarray(sc.demand)
    allowed = np.asarray(sc.allowed)
    tol = 1e-7 * np.maximum(1.0, D)
    # cheap necessary condition: each region alone within its reachable capacity
    if sc.capacity_mode == "shared":
        r = np.asarray(sc.capacity_per_request)
        rmin = np.where(allowed, r[None, None, :], np.inf).min(axis=2)  # (N, J)
        route = np.isfinite(rmin)
        # capacity reachable by each region, in requests: (T, N) @ (N, J)
        reach = np.asarray(sc.capacity) @ np.where(
            route, 1.0 / np.where(route, rmin, 1.0), 0.0
        )  # (T, J)
    else:
        route3 = allowed  # (N, J, K)
        reach = np.einsum("tnk,njk->tj", np.asarray(sc.capacity), route3.astype(float))
    short = D - reach > tol
    found: tuple[int, int, float] | None = None
    if short.any():
        t, j = np.argwhere(short)[0]
        found = (int(t), int(j), float(D[t, j] - reach[t, j]))
    horizon = found[0] if found is not None else T  # slots before it need the exact check

    if sc.capacity_mode == "shared":
        ii, jj = np.nonzero(route)
        P = ii.size
        w = rmin[ii, jj]
        a_dem = sp.csr_matrix((np.ones(P), (jj, np.arange(P))), shape=(J, P))
        a_cap = sp.csr_matrix((w, (ii, np.arange(P))), shape=(N, P))
        cap = np.asarray(sc.capacity).reshape(T, -1)
    else:
        ii, jj, kk = np.nonzero(allowed)
        P = ii.size
        a_dem = sp.csr_matrix((np.ones(P), (jj, np.arange(P))), shape=(J, P))
        a_cap = sp.csr_matrix((np.ones(P), (ii * K + kk, np.arange(P))), shape=(N * K, P))
        cap = np.asarray(sc.capacity).reshape(T, -1)
    if horizon == 0 or horizon * (P + J) > MAX_EXACT_VARIABLES:
        return found
    # cheap sufficient condition: every data centre could take the whole demand of every
    # region that reaches it (then any one reachable site per region is a dispatch)
    if sc.capacity_mode == "shared":
        worst = D @ np.where(route, rmin, 0.0).T  # (T, N) units
    else:
        worst = np.einsum("tj,njk->tnk", D, allowed.astype(float)).reshape(T, -1)
    todo = np.flatnonzero(~(worst[:horizon] <= cap[:horizon] * (1.0 + 1e-12)).all(axis=1))
    earlier = _slot_lps(a_dem, a_cap, D, cap, todo, tol) if todo.size else None
    return earlier if earlier is not None else found


def _slot_lps(
    a_dem: sp.csr_matrix,
    a_cap: sp.csr_matrix,
    D: np.ndarray,
    cap: np.ndarray,
    slots: np.ndarray,
    tol: np.ndarray,
) -> tuple[int, int, float] | None:
    """The slack LP ``min sum s`` s.t. ``a_dem x + s = D[t]``, ``a_cap x <= cap[t]``,
    ``x, s >= 0`` of each slot of ``slots`` in order (slots are independent: one HiGHS
    model, only the row bounds change, warm-started); the first slot with unserved
    demand as (slot, region, unserved requests [requests/slot]), or None."""
    from eqglb._highs import highs_lp

    J, P = a_dem.shape
    n_cap = a_cap.shape[0]
    A = sp.vstack(
        [sp.hstack([a_dem, sp.identity(J)]), sp.hstack([a_cap, sp.csr_matrix((n_cap, J))])]
    )
    rows = J + n_cap
    h = highs_lp(A, np.r_[np.zeros(P), np.ones(J)], np.zeros(rows), np.zeros(rows), presolve="off")
    idx = np.arange(rows, dtype=np.int32)
    lo = np.full(rows, -np.inf)
    hi = np.empty(rows)
    for t in slots.tolist():
        # quantities in units of the slot's largest, so HiGHS's absolute tolerances are
        # relative ones
        scale = max(float(D[t].max(initial=0.0)), float(cap[t].max(initial=0.0)), 1e-300)
        lo[:J] = hi[:J] = D[t] / scale
        hi[J:] = cap[t] / scale
        h.changeRowsBounds(rows, idx, lo, hi)
        h.run()
        status = h.modelStatusToString(h.getModelStatus())
        if status != "Optimal":  # pragma: no cover - the slack LP is feasible and bounded
            raise RuntimeError(f"feasibility LP of slot {t} failed: HiGHS status {status!r}")
        slack = np.asarray(h.getSolution().col_value)[P:] * scale
        bad = slack > tol[t]
        if bad.any():
            j = int(np.argmax(bad))
            return t, j, float(slack[j])
    return None
