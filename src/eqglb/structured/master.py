"""Dantzig-Wolfe master problem over per-slot columns, solved by Clarabel.

A *column* l of slot t is a feasible dispatch ``x_l`` of that slot (a vertex of its
polytope X_t) summarised by its linear cost ``f_l = c_t . x_l`` [USD] and its
contribution ``a_l`` to the stacked regional totals u. The restricted master is

    minimise    sum_l f_l lam_l + sum_b w_b s_b
    subject to  sum_{l of slot t} lam_l = 1            for every slot t     (dual -pi_t)
                sum_l a_l lam_l - u = 0                                     (dual gamma)
                ||u_b||_{q_b} <= s_b                     for every block b
                lam >= 0,

a conic program (linear for q = inf, second-order cone for q = 2, power cones otherwise)
with one variable per column, solved by the interior-point solver Clarabel. Its duals are
the prices ``gamma`` [USD per unit of u] and ``pi_t`` [USD] of the pricing step: a new
column of slot t improves the master iff ``f + gamma . a - pi_t < 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from eqglb.structured.coupling import Coupling
from eqglb.structured.slotlp import SlotSolution

__all__ = ["ColumnPool", "Combination", "HighsMaster", "MasterSolution", "solve_master"]


class ColumnPool:
    """Columns of every slot (sparse vertices) with their costs and coupling vectors.

    Parameters
    ----------
    n_time : int
        Number of slots T.
    width : int
        Non-zeros per column at most (rows of a slot LP).
    size : int
        Number of coupling totals M.
    """

    def __init__(self, n_time: int, width: int, size: int) -> None:
        self.T, self.width, self.M = n_time, width, size
        self.slot = np.zeros(0, dtype=np.intp)
        self.routes = np.zeros((0, width), dtype=np.intp)
        self.values = np.zeros((0, width))
        self.f = np.zeros(0)
        self.a = sp.csr_matrix((0, size))
        self.born = np.zeros(0, dtype=np.int64)
        self.last_used = np.zeros(0, dtype=np.int64)
        self.ids = np.zeros(0, dtype=np.int64)
        self._next_id = 0

    def __len__(self) -> int:
        return int(self.slot.size)

    def summarise(
        self, cp: Coupling, sol: SlotSolution, pick: np.ndarray
    ) -> tuple[np.ndarray, sp.csr_matrix]:
        """Linear cost f (n,) [USD] and coupling rows a (n, M) of the picked solutions."""
        t = sol.slots[pick]
        routes = sol.routes[pick]
        vals = sol.values[pick]
        mask = routes >= 0
        r0 = np.where(mask, routes, 0)
        lin = np.take_along_axis(cp.linear[t], r0, axis=1)
        f = np.sum(np.where(mask, lin * vals, 0.0), axis=1)
        n = t.size
        rows, cols, data = [], [], []
        off = cp.offsets
        rr = np.broadcast_to(np.arange(n)[:, None], routes.shape)
        for b_i, b in enumerate(cp.blocks):
            g = np.take_along_axis(b.rows(t), r0, axis=1)
            rows.append(rr[mask])
            cols.append(off[b_i] + b.index[r0[mask]])
            data.append((g * vals)[mask])
        if rows:
            a = sp.csr_matrix(
                (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))),
                shape=(n, self.M),
            )
        else:
            a = sp.csr_matrix((n, self.M))
        a.sum_duplicates()
        return f, a

    def add(
        self,
        cp: Coupling,
        sol: SlotSolution,
        pick: np.ndarray,
        iteration: int,
        summary: tuple[np.ndarray, sp.csr_matrix] | None = None,
    ) -> None:
        """Append the picked solutions of ``sol`` as columns (``summary``: their f and a
        if already computed for every slot of ``sol``)."""
        if pick.size == 0:
            return
        if summary is None:
            f, a = self.summarise(cp, sol, pick)
        else:
            f, a = summary[0][pick], summary[1][pick]
        self.slot = np.concatenate([self.slot, sol.slots[pick]])
        self.routes = np.concatenate([self.routes, sol.routes[pick]])
        self.values = np.concatenate([self.values, sol.values[pick]])
        self.f = np.concatenate([self.f, f])
        self.a = sp.vstack([self.a, a], format="csr")
        self.born = np.concatenate([self.born, np.full(pick.size, iteration)])
        self.last_used = np.concatenate([self.last_used, np.full(pick.size, iteration)])
        self.ids = np.concatenate([self.ids, self._next_id + np.arange(pick.size)])
        self._next_id += pick.size

    def add_picked(self, pricing: Any, pick: np.ndarray, iteration: int) -> None:
        """Add the picked candidates of a :class:`eqglb.structured.colgen.Pricing`."""
        cp, sol = pricing.payload
        self.add(cp, sol, pick, iteration, summary=(pricing.f, pricing.a))

    def snapshot(self, lam: np.ndarray) -> Combination:
        """The weighted combination the master's ``lam`` stands for."""
        return self.combination(lam)

    def keep(self, sel: np.ndarray) -> None:
        """Keep only columns ``sel`` (bool or index array)."""
        self.slot, self.routes, self.values = self.slot[sel], self.routes[sel], self.values[sel]
        self.f, self.a = self.f[sel], self.a[sel]
        self.born, self.last_used = self.born[sel], self.last_used[sel]
        self.ids = self.ids[sel]

    def combination(self, lam: np.ndarray) -> Combination:
        """The columns with positive weight and their weights (a copy)."""
        sel = np.flatnonzero(lam > 0)
        return Combination(self.slot[sel], self.routes[sel], self.values[sel], lam[sel])


@dataclass(frozen=True)
class Combination:
    """A convex combination of columns: the slot dispatch it stands for.

    Attributes
    ----------
    slot : int array (column,)
    routes : int array (column, width)
        Route of each basic entry, -1 for none.
    values : array (column, width) [requests/slot]
    lam : array (column,)
        Weights, summing to 1 over the columns of each slot [-].
    """

    slot: np.ndarray
    routes: np.ndarray
    values: np.ndarray
    lam: np.ndarray

    def dispatch(self, n_time: int, n_route: int) -> np.ndarray:
        """Dense slot dispatch x (time, route) = sum_l lam_l x_l [requests/slot]."""
        x = np.zeros((n_time, n_route))
        mask = self.routes >= 0
        w = (self.lam[:, None] * self.values)[mask]
        tt = np.broadcast_to(self.slot[:, None], self.routes.shape)[mask]
        np.add.at(x, (tt, self.routes[mask]), w)
        return x


@dataclass(frozen=True)
class MasterSolution:
    """Solution of the restricted master.

    Attributes
    ----------
    lam : array (column,)
        Convex weights, normalised to sum to 1 per slot.
    u : array (M,)
        Regional totals ``sum_l lam_l a_l`` [unit of each block].
    value : float
        ``f . lam + regulariser(u)`` recomputed from ``lam`` [USD] (an upper bound).
    gamma : array (M,)
        Dual prices of the regional totals [USD per unit].
    pi : array (time,)
        Dual prices of the convexity rows [USD].
    status : str
    iterations : int
    reduced : array (column,)
        ``f + a . gamma`` of every column [USD] (``pi`` is its minimum per slot; a
        column's reduced cost is ``reduced - pi[slot]``).
    """

    lam: np.ndarray
    u: np.ndarray
    value: float
    gamma: np.ndarray
    pi: np.ndarray
    status: str
    iterations: int
    reduced: np.ndarray


def _scaling(pool: ColumnPool, cp: Coupling) -> tuple[np.ndarray, np.ndarray, float]:
    """Block scales sigma_b [unit of u], per-row scales (M,) and objective scale F [USD]."""
    L, T = len(pool), pool.T
    off = cp.offsets
    per_plan = T / max(L, 1)  # columns -> one plan (average column of every slot)
    tot = np.asarray(abs(pool.a).sum(axis=0)).ravel() * per_plan
    sigma = np.array(
        [max(float(tot[off[n] : off[n + 1]].mean()), 1e-300) for n in range(len(cp.blocks))]
    )
    sig_row = np.repeat(sigma, [b.size for b in cp.blocks]) if cp.blocks else np.zeros(0)
    F = float(np.abs(pool.f).sum()) * per_plan + sum(
        b.weight * s for b, s in zip(cp.blocks, sigma, strict=True)
    )
    return sigma, sig_row, max(F, 1e-300)


def _finish(
    pool: ColumnPool, cp: Coupling, lam: np.ndarray, gamma: np.ndarray, status: str, iterations: int
) -> MasterSolution:
    T = pool.T
    lam = np.clip(lam, 0.0, None)
    per = np.bincount(pool.slot, lam, minlength=T)
    lam = lam / np.where(per > 0, per, 1.0)[pool.slot]
    u = np.asarray(pool.a.T @ lam).ravel()
    value = float(pool.f @ lam) + cp.regularizer(u)
    red = pool.f + np.asarray(pool.a @ gamma).ravel()
    pi = np.full(T, np.inf)
    np.minimum.at(pi, pool.slot, red)
    return MasterSolution(lam, u, value, gamma, pi, status, iterations, red)


def solve_master(
    pool: ColumnPool, cp: Coupling, *, tol: float = 1e-9, max_iter: int = 120, method: str = "auto"
) -> MasterSolution:
    """Solve the restricted master.

    ``method``: ``"auto"`` or ``"ipm"``: the structured interior-point method of
    :mod:`eqglb.structured.ipm` (every q >= 2; its central duals make column generation
    converge fast), else Clarabel; ``"clarabel"``; ``"highs"`` (simplex, exact vertex
    solution; only when every block has q = inf).
    """
    from eqglb.structured.ipm import ipm_master, supports

    if method == "highs":
        return solve_master_highs(pool, cp)
    if method == "clarabel" or (method == "auto" and not supports(cp)):
        return solve_master_clarabel(pool, cp, tol=tol, max_iter=max_iter)
    sigma, sig_row, F = _scaling(pool, cp)
    f = pool.f / F
    A = pool.a.toarray() / sig_row[None, :]
    w = np.array([b.weight for b in cp.blocks]) * sigma / F
    res = ipm_master(f, A, w, pool.slot, pool.T, cp, tol=tol, max_iter=max_iter)
    gamma = res.gamma * F / np.where(sig_row > 0, sig_row, 1.0)
    return _finish(
        pool, cp, res.lam, gamma, "solved" if res.converged else "stalled", res.iterations
    )


def _column_block(pool: Any, sel: np.ndarray, sig_row: np.ndarray) -> sp.csc_matrix:
    """Columns ``sel`` of the linear master (rows: T convexity rows, then the M scaled
    totals ``a / sig_row``), as a (T + M, len(sel)) matrix."""
    a = sp.csr_matrix(pool.a)[sel].tocoo()
    rows = np.concatenate([pool.slot[sel], pool.T + a.col])
    cols = np.concatenate([np.arange(sel.size), a.row])
    vals = np.concatenate([np.ones(sel.size), a.data / sig_row[a.col]])
    return sp.csc_matrix((vals, (rows, cols)), shape=(pool.T + pool.M, sel.size))


def _max_block(cp: Coupling, n_groups: int) -> sp.csc_matrix:
    """The B block maxima ``s_b`` of the linear master: ``-1`` in every total of block b."""
    sizes = [b.size for b in cp.blocks]
    M = int(sum(sizes))
    row_block = np.repeat(np.arange(len(sizes)), sizes)
    return sp.csc_matrix(
        (-np.ones(M), (n_groups + np.arange(M), row_block)), shape=(n_groups + M, len(sizes))
    )


def solve_master_highs(pool: ColumnPool, cp: Coupling) -> MasterSolution:
    """Solve a linear restricted master (every block q = inf) with the HiGHS simplex.

    ``min f . lam + sum_b w_b s_b``  s.t.  ``sum_{l of t} lam_l = 1``,
    ``sum_l a_lr lam_l - s_b <= 0`` for every entry r of block b, ``lam, s >= 0``.
    """
    from eqglb._highs import highs_lp

    if not all(math.isinf(b.q) for b in cp.blocks):
        raise ValueError("the HiGHS master needs q = inf in every coupling block")
    L, M, T = len(pool), pool.M, pool.T
    sigma, sig_row, F = _scaling(pool, cp)
    A = sp.hstack([_column_block(pool, np.arange(L), sig_row), _max_block(cp, T)], format="csc")
    cost = np.concatenate([pool.f / F, np.array([b.weight for b in cp.blocks]) * sigma / F])
    h = highs_lp(
        A,
        cost,
        np.concatenate([np.ones(T), np.full(M, -np.inf)]),
        np.concatenate([np.ones(T), np.zeros(M)]),
    )
    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    sol = h.getSolution()
    x = np.asarray(sol.col_value)
    y = np.asarray(sol.row_dual)
    gamma = -F * y[T:] / np.where(sig_row > 0, sig_row, 1.0)
    it = int(h.getInfo().simplex_iteration_count)
    return _finish(pool, cp, x[:L], gamma, "solved" if status == "Optimal" else status, it)


def solve_master_clarabel(
    pool: ColumnPool, cp: Coupling, *, tol: float = 1e-10, max_iter: int = 200
) -> MasterSolution:
    """Solve the restricted master with Clarabel (any q > 1)."""
    import clarabel

    L, M, T = len(pool), pool.M, pool.T
    blocks = cp.blocks
    off = cp.offsets
    sigma, sig_row, F = _scaling(pool, cp)
    nb = len(blocks)
    power = [n for n, b in enumerate(blocks) if not math.isinf(b.q) and b.q != 2.0]
    n_rho = int(sum(blocks[n].size for n in power))
    # variable layout: lam (L) | u (M) | s (nb) | rho (n_rho)
    iu, is_, irho = L, L + M, L + M + nb
    nvar = irho + n_rho
    qvec = np.zeros(nvar)
    qvec[:L] = pool.f / F
    qvec[is_ : is_ + nb] = np.array([b.weight for b in blocks]) * sigma / F
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    bvec: list[np.ndarray] = []
    cones: list = []
    r0 = 0

    def put(r: Any, c: Any, v: Any) -> None:
        rows.append(np.asarray(r, dtype=np.int64))
        cols.append(np.asarray(c, dtype=np.int64))
        vals.append(np.asarray(v, dtype=float))

    # zero cone: convexity (T), linking (M), power sums (len(power))
    put(pool.slot, np.arange(L), np.ones(L))
    bvec.append(np.ones(T))
    r0 = T
    acoo = pool.a.tocoo()
    put(r0 + acoo.col, acoo.row, acoo.data / sig_row[acoo.col])
    put(r0 + np.arange(M), iu + np.arange(M), -np.ones(M))
    bvec.append(np.zeros(M))
    r0 += M
    rho_off = {}
    ro = irho
    for n in power:
        b = blocks[n]
        rho_off[n] = ro
        put(np.full(b.size, r0), ro + np.arange(b.size), np.ones(b.size))
        put([r0], [is_ + n], [-1.0])
        bvec.append(np.zeros(1))
        r0 += 1
        ro += b.size
    nzero = r0
    cones.append(clarabel.ZeroConeT(nzero))
    # nonnegative: lam >= 0, and s_b - u_r >= 0 for q = inf
    put(r0 + np.arange(L), np.arange(L), -np.ones(L))
    bvec.append(np.zeros(L))
    r0 += L
    n_nn = L
    for n, b in enumerate(blocks):
        if math.isinf(b.q):
            put(r0 + np.arange(b.size), iu + off[n] + np.arange(b.size), np.ones(b.size))
            put(r0 + np.arange(b.size), np.full(b.size, is_ + n), -np.ones(b.size))
            bvec.append(np.zeros(b.size))
            r0 += b.size
            n_nn += b.size
    cones.append(clarabel.NonnegativeConeT(n_nn))
    for n, b in enumerate(blocks):
        if b.q == 2.0:
            put([r0], [is_ + n], [-1.0])
            put(r0 + 1 + np.arange(b.size), iu + off[n] + np.arange(b.size), -np.ones(b.size))
            bvec.append(np.zeros(b.size + 1))
            cones.append(clarabel.SecondOrderConeT(b.size + 1))
            r0 += b.size + 1
    for n in power:
        b = blocks[n]
        for r in range(b.size):
            put(
                [r0, r0 + 1, r0 + 2], [rho_off[n] + r, is_ + n, iu + off[n] + r], [-1.0, -1.0, -1.0]
            )
            bvec.append(np.zeros(3))
            cones.append(clarabel.PowerConeT(1.0 / b.q))
            r0 += 3
    A = sp.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r0, nvar)
    )
    b_all = np.concatenate(bvec)
    Pm = sp.csc_matrix((nvar, nvar))
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = tol
    settings.tol_gap_rel = tol
    settings.tol_feas = tol
    settings.tol_ktratio = 1e-8
    settings.max_iter = max_iter
    solver = clarabel.DefaultSolver(Pm, qvec, A, b_all, cones, settings)
    sol = solver.solve()
    x = np.asarray(sol.x)
    z = np.asarray(sol.z)
    gamma = F * z[T : T + M] / np.where(sig_row > 0, sig_row, 1.0)
    return _finish(pool, cp, x[:L], gamma, str(sol.status), int(sol.iterations))


class HighsMaster:
    """A linear restricted master (every block q = inf) kept in one HiGHS instance.

    The same program as :func:`solve_master_highs`, but built once: each call appends the
    pool's new columns and :meth:`keep` deletes the forgotten ones, so HiGHS re-solves
    from its previous optimal basis (new columns enter at zero, which keeps the basis
    primal feasible) instead of from scratch. Scales (``sigma``, ``F`` of
    :func:`_scaling`) are fixed at the first call: they only condition the program.

    Column layout in HiGHS: the B block maxima ``s_b`` first, then the pool's columns in
    pool order.
    """

    def __init__(self, cp: Coupling) -> None:
        if not all(math.isinf(b.q) for b in cp.blocks):
            raise ValueError("the HiGHS master needs q = inf in every coupling block")
        self.cp = cp
        self.h: Any = None
        self.synced = 0
        self.sig_row = np.zeros(0)
        self.F = 1.0

    def _build(self, pool: Any) -> None:
        from eqglb._highs import highs_lp

        cp, T, M = self.cp, pool.T, pool.M
        B = len(cp.blocks)
        sigma, self.sig_row, self.F = _scaling(pool, cp)
        cost = np.array([b.weight for b in cp.blocks]) * sigma / self.F
        self.h = highs_lp(
            _max_block(cp, T),
            cost,
            np.concatenate([np.ones(T), np.full(M, -np.inf)]),
            np.concatenate([np.ones(T), np.zeros(M)]),
            simplex_strategy=4,  # primal: new columns keep the basis primal feasible
            presolve="off",  # a re-solve starts from the basis, presolve would drop it
        )
        self.B, self.T = B, T
        self.synced = 0

    def _append(self, pool: Any) -> None:
        L = len(pool)
        if L <= self.synced:
            return
        new = np.arange(self.synced, L)
        C = _column_block(pool, new, self.sig_row)
        C.sort_indices()
        self.h.addCols(
            new.size,
            np.asarray(pool.f[new] / self.F, dtype=float),
            np.zeros(new.size),
            np.full(new.size, np.inf),
            C.nnz,
            C.indptr[:-1].astype(np.int32),
            C.indices.astype(np.int32),
            C.data,
        )
        self.synced = L

    def keep(self, sel: np.ndarray) -> None:
        """Mirror :meth:`ColumnPool.keep` (bool mask over the pool before the call)."""
        if self.h is None:
            return
        sel = np.asarray(sel)
        mask = sel if sel.dtype == bool else np.isin(np.arange(self.synced), sel)
        drop = np.flatnonzero(~mask[: self.synced])
        if drop.size:
            self.h.deleteCols(drop.size, (self.B + drop).astype(np.int32))
        self.synced -= int(drop.size)

    def solve(self, pool: Any) -> MasterSolution:
        if self.h is None:
            self._build(pool)
        self._append(pool)
        h = self.h
        h.run()
        status = h.modelStatusToString(h.getModelStatus())
        if status != "Optimal":  # rare: start again from scratch
            self._build(pool)
            self._append(pool)
            h = self.h
            h.run()
            status = h.modelStatusToString(h.getModelStatus())
        sol = h.getSolution()
        x = np.asarray(sol.col_value)[self.B :]
        y = np.asarray(sol.row_dual)
        T = self.T
        gamma = -self.F * y[T:] / np.where(self.sig_row > 0, self.sig_row, 1.0)
        it = int(h.getInfo().simplex_iteration_count)
        return _finish(pool, self.cp, x, gamma, "solved" if status == "Optimal" else status, it)
