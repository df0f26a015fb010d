"""Exact per-slot feasibility check of a scenario (used by Scenario validation)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

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
    y[t,i,j,k] with sum_j y[t,i,j,k] <= cap[t,i,k]. One block-diagonal LP solved by HiGHS.
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
    if short.any():
        t, j = np.argwhere(short)[0]
        return int(t), int(j), float(D[t, j] - reach[t, j])

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
    if T * (P + J) > MAX_EXACT_VARIABLES:
        return None
    eye = sp.identity(T, format="csr")
    a_eq = sp.hstack([sp.kron(eye, a_dem), sp.identity(T * J)], format="csr")
    a_ub = sp.hstack(
        [sp.kron(eye, a_cap), sp.csr_matrix((T * a_cap.shape[0], T * J))], format="csr"
    )
    c = np.concatenate([np.zeros(T * P), np.ones(T * J)])
    res = linprog(
        c, A_ub=a_ub, b_ub=cap.ravel(), A_eq=a_eq, b_eq=D.ravel(), bounds=(0, None), method="highs"
    )
    if res.status != 0:  # pragma: no cover - the slack LP is always feasible and bounded
        raise RuntimeError(f"feasibility LP failed: {res.message}")
    slack = res.x[T * P :].reshape(T, J)
    bad = slack > tol
    if bad.any():
        t, j = np.argwhere(bad)[0]
        return int(t), int(j), float(slack[t, j])
    return None
