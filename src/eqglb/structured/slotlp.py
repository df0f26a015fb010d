"""Many small slot LPs solved at once: a batched, warm-started primal simplex.

Every slot ``t`` of a scenario alone is the linear program (the pricing problem)

    minimise    sum_p c[t, p] x[p]                      [USD]
    subject to  sum_{p in region j} x[p] = demand[t, j]          (demand rows, j = 0..J-1)
                sum_{p in pool g} a[p] x[p] <= cap[t, g]         (capacity rows)
                x >= 0

over the allowed routes ``p = (datacenter, region, model)``. The constraint matrix is the
same for every slot (two non-zeros per route); only the costs and right-hand sides change
over time. :class:`SlotLPs` keeps one simplex basis and its explicit inverse per slot and
runs the revised primal simplex on all slots in lock step with numpy (one step pivots every
slot that is not yet optimal), so a pass over hundreds of slots costs about as much as a
few dozen numpy operations per pivot. Between calls only the costs change, so each slot
restarts from its previous optimal basis, which stays primal feasible (warm start).

Phase 1 drives artificial variables of the demand rows out of the starting basis; the
pricing rule is Dantzig's (most negative reduced cost), switched to Bland's rule for a slot
after many degenerate pivots; the ratio test is Harris's two-pass test. Slots that do not
finish within the step limit are solved by HiGHS one by one (robust fallback). Every answer
comes with a rigorous lower bound from a dual-feasible point (:meth:`SlotLPs.solve`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SlotLPs", "SlotSolution"]

#: Reduced-cost tolerance in scaled cost units (costs scaled to max |c| = 1 per slot).
OPT_TOL = 1e-10
#: Primal feasibility tolerance in scaled units (right-hand side scaled to max = 1 per slot).
FEAS_TOL = 1e-10
#: Smallest pivot magnitude accepted by the ratio test.
PIV_TOL = 1e-9
#: Consecutive degenerate pivots after which a slot switches to Bland's rule.
BLAND_AFTER = 30
#: Steps between recomputations of the duals from scratch (incremental in between).
REFRESH = 25
#: Working arrays are compacted when fewer than this fraction of their slots still pivot.
COMPACT = 0.6


@dataclass(frozen=True)
class SlotSolution:
    """Optimal vertices of a batch of slot LPs.

    Attributes
    ----------
    slots : int array (batch,)
        Slot indices.
    routes : int array (batch, rows)
        Route index of each basic structural variable, -1 for basic logical variables.
    values : array (batch, rows)
        Value of each basic variable [requests/slot] (0 where ``routes`` is -1).
    value : array (batch,)
        Cost of the vertex, ``c . x`` [unit of c].
    bound : array (batch,)
        Rigorous lower bound on the slot optimum [unit of c] (Lagrangian bound from the
        capacity duals made exactly feasible).
    """

    slots: np.ndarray
    routes: np.ndarray
    values: np.ndarray
    value: np.ndarray
    bound: np.ndarray


class SlotLPs:
    """Warm-started batched primal simplex for the slot LPs of one scenario.

    Parameters
    ----------
    demand_row : int array (route,)
        Demand row (region) of each route.
    cap_row : int array (route,)
        Capacity pool of each route (datacenter, or datacenter x model).
    cap_coef : array (route,)
        Capacity units one request on the route takes [units/request] (> 0).
    demand : array (time, region)
        Right-hand side of the demand rows [requests/slot].
    capacity : array (time, pool)
        Right-hand side of the capacity rows [units/slot].
    """

    def __init__(
        self,
        demand_row: np.ndarray,
        cap_row: np.ndarray,
        cap_coef: np.ndarray,
        demand: np.ndarray,
        capacity: np.ndarray,
    ) -> None:
        self.P = int(demand_row.size)
        self.n_eq = int(demand.shape[1])
        self.n_cap = int(capacity.shape[1])
        self.m = self.n_eq + self.n_cap
        self.T = int(demand.shape[0])
        self.demand_row = np.asarray(demand_row, dtype=np.intp)
        self.cap_row = np.asarray(cap_row, dtype=np.intp) + self.n_eq
        self.cap_scale = float(np.max(cap_coef)) if np.size(cap_coef) else 1.0
        self.cap_coef = np.asarray(cap_coef, dtype=float) / self.cap_scale
        b = np.concatenate(
            [np.asarray(demand, float), np.asarray(capacity, float) / self.cap_scale], axis=1
        )
        self.b_scale = np.maximum(np.abs(b).max(axis=1), 1e-300)  # (T,)
        self.b = b / self.b_scale[:, None]  # (T, m), scaled
        # dense constraint matrix with logical (identity) columns, for re-inversion
        A = np.zeros((self.m, self.P + self.m))
        A[self.demand_row, np.arange(self.P)] = 1.0
        A[self.cap_row, np.arange(self.P)] = self.cap_coef
        A[np.arange(self.m), self.P + np.arange(self.m)] = 1.0
        self.A = A
        self._A_struct = np.ascontiguousarray(A[:, : self.P])
        # routes grouped by region for the per-region minimum of the Lagrangian bound
        self._by_region = np.argsort(self.demand_row, kind="stable")
        counts = np.bincount(self.demand_row, minlength=self.n_eq)
        if (counts == 0).any():
            raise ValueError("every demand row (region) needs at least one route")
        self._region_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        m = self.m
        self.basis = np.tile(self.P + np.arange(m), (self.T, 1))  # all logical
        self.Binv = np.broadcast_to(np.eye(m), (self.T, m, m)).copy()
        self.xB = self.b.copy()
        self.phase2 = np.zeros(self.T, dtype=bool)  # artificials out?
        self.pivots_since_inv = np.zeros(self.T, dtype=np.int64)
        self.fallbacks = 0
        self.steps = 0
        self.pivots = 0

    # ----------------------------------------------------------------- internals
    def _reduced(
        self,
        y: np.ndarray,
        c: np.ndarray,
        phase2: bool,
        work: tuple[np.ndarray, np.ndarray],
    ) -> np.ndarray:
        """Reduced costs (S, P + m) of all columns for duals y (S, m) and costs c (S, P).

        ``work``: buffers of at least (S, P + m) and (S, P) rows reused from step to step
        (fresh arrays of this size are page-faulted in on every step)."""
        S = y.shape[0]
        d, tmp = work[0][:S], work[1][:S]
        np.matmul(y, self._A_struct, out=tmp)  # y . a_p of every structural column
        np.subtract(c, tmp, out=d[:, : self.P])
        if phase2:
            d[:, self.P : self.P + self.n_eq] = np.inf  # artificials never enter
            d[:, self.P + self.n_eq :] = -y[:, self.n_eq :]
        else:
            d[:, self.P : self.P + self.n_eq] = 1.0 - y[:, : self.n_eq]
            d[:, self.P + self.n_eq :] = -y[:, self.n_eq :]
        return d

    def _column(self, Bi: np.ndarray, q: np.ndarray) -> np.ndarray:
        """B^-1 a_q (S, m) for entering columns q (S,)."""
        S = q.size
        s = np.arange(S)
        struct = q < self.P
        qs = np.where(struct, q, 0)
        row1 = np.where(struct, self.demand_row[qs], q - self.P)
        alpha = Bi[s, :, row1].copy()
        if struct.any():
            row2 = self.cap_row[qs]
            alpha += np.where(struct, self.cap_coef[qs], 0.0)[:, None] * Bi[s, :, row2]
        return alpha

    def _reinvert(self, idx: np.ndarray) -> None:
        """Recompute B^-1 and x_B of slots ``idx`` from their basis lists."""
        if idx.size == 0:
            return
        B = self.A[:, self.basis[idx]].transpose(1, 0, 2)  # (S, m, m)
        try:
            Bi = np.linalg.inv(B)
        except np.linalg.LinAlgError:
            # a singular basis (should not happen): restart those slots from scratch
            Bi = np.empty_like(B)
            for n, s in enumerate(idx):
                try:
                    Bi[n] = np.linalg.inv(B[n])
                except np.linalg.LinAlgError:
                    self.basis[s] = self.P + np.arange(self.m)
                    self.phase2[s] = False
                    Bi[n] = np.eye(self.m)
        self.Binv[idx] = Bi
        xb = np.einsum("smk,sk->sm", Bi, self.b[idx])
        self.xB[idx] = np.clip(xb, 0.0, None)
        self.pivots_since_inv[idx] = 0

    def _run(self, idx: np.ndarray, cost: np.ndarray, phase2: bool, max_steps: int) -> np.ndarray:
        """Primal simplex on slots ``idx`` (global) with scaled structural costs ``cost``
        (S, P); returns a bool array (S,) of slots that reached optimality.

        The slots pivot in lock step on working copies; a slot that is optimal stops
        pivoting (its row of every update is a no-op) and the working arrays are
        compacted once fewer than COMPACT of them are still live. Duals are updated
        incrementally, ``y += d_q (B^-1)_r / alpha_r``, and recomputed every REFRESH steps.
        """
        S = idx.size
        done = np.zeros(S, dtype=bool)
        if S == 0:
            return done
        P, n_eq = self.P, self.n_eq
        work = np.arange(S)  # position in idx of each working slot
        Bi = self.Binv[idx]
        xb = self.xB[idx]
        bas = self.basis[idx]
        c = cost
        live = np.ones(S, dtype=bool)
        degen = np.zeros(S, dtype=np.int64)

        def duals() -> np.ndarray:
            struct = bas < P
            cb = np.where(struct, np.take_along_axis(c, np.where(struct, bas, 0), 1), 0.0)
            if not phase2:
                cb = np.where((bas >= P) & (bas < P + n_eq), 1.0, cb)
            return np.einsum("sm,smk->sk", cb, Bi)

        def write_back(sel: np.ndarray) -> None:
            g = idx[work[sel]]
            self.Binv[g] = Bi[sel]
            self.xB[g] = xb[sel]
            self.basis[g] = bas[sel]

        y = duals()
        work_d = (np.empty((S, P + self.m)), np.empty((S, P)))
        work_b = np.empty_like(Bi)
        step = 0
        for step in range(1, max_steps + 1):
            if not live.any():
                break
            self.steps += 1
            if step % REFRESH == 0:
                y = duals()
            d = self._reduced(y, c, phase2, work_d)
            q = np.argmin(d, axis=1)
            Sw = work.size
            s = np.arange(Sw)
            dq = d[s, q]
            bland = live & (degen >= BLAND_AFTER)
            if bland.any():
                qb = np.argmax(d < -OPT_TOL, axis=1)
                q = np.where(bland, qb, q)
                dq = d[s, q]
            opt = live & (dq >= -OPT_TOL)
            if opt.any():
                done[work[opt]] = True
                live &= ~opt
                if live.sum() < COMPACT * Sw:
                    dead = ~live
                    write_back(dead)
                    work, Bi, xb, bas, c, y, degen, live, q, dq, bland = (  # type: ignore[assignment]
                        a[live] for a in (work, Bi, xb, bas, c, y, degen, live, q, dq, bland)
                    )
                    Sw = work.size
                    s = np.arange(Sw)
                    if Sw == 0:
                        break
            alpha = self._column(Bi, q)
            art = (bas >= P) & (bas < P + n_eq)
            if phase2:
                # basic artificials are fixed at zero: any non-zero entry blocks at once
                fixed = art & (np.abs(alpha) > PIV_TOL)
            else:
                fixed = np.zeros_like(art)
            pos = (alpha > PIV_TOL) & ~fixed
            with np.errstate(divide="ignore", invalid="ignore"):
                tmax = np.where(pos, (xb + FEAS_TOL) / alpha, np.inf).min(axis=1)
                ratio = np.where(pos, xb / alpha, np.inf)
            cand = pos & (ratio <= tmax[:, None])
            score = np.where(cand, alpha, -np.inf)  # Harris: largest pivot among ties
            r = np.argmax(score, axis=1)
            if bland.any():
                # Bland: smallest basis index among the minimum ratios
                rmin = np.where(cand, ratio, np.inf).min(axis=1)
                tie = pos & (ratio <= rmin[:, None] + FEAS_TOL)
                r = np.where(
                    bland, np.argmin(np.where(tie, bas, np.iinfo(np.int64).max), axis=1), r
                )
            has_fixed = fixed.any(axis=1)
            if has_fixed.any():
                r = np.where(has_fixed, np.argmax(np.where(fixed, np.abs(alpha), -1.0), axis=1), r)
            unbounded = live & ~np.isfinite(score[s, r]) & ~has_fixed
            if unbounded.any():
                live &= ~unbounded  # cannot happen for a bounded slot LP: left to the fallback
            # slots that do not pivot this step: make every update a no-op
            still = ~live
            if still.any():
                alpha[still] = 0.0
                r = np.where(still, 0, r)
                q = np.where(still, bas[:, 0], q)
                dq = np.where(still, 0.0, dq)
            ar = alpha[s, r]
            ar = np.where(still, 1.0, ar)
            theta = np.where(has_fixed & live, 0.0, np.maximum(xb[s, r] / ar, 0.0))
            theta = np.where(still, xb[s, r], theta)
            degen = np.where(theta * np.abs(ar) <= FEAS_TOL, degen + 1, 0)
            xb -= theta[:, None] * alpha
            xb[s, r] = theta
            np.clip(xb, 0.0, None, out=xb)
            piv = Bi[s, r, :] / ar[:, None]
            y += dq[:, None] * piv
            outer = work_b[:Sw]
            np.multiply(alpha[:, :, None], piv[:, None, :], out=outer)
            Bi -= outer
            Bi[s, r, :] = piv
            bas[s, r] = q
            n_piv = int(live.sum())
            self.pivots += n_piv
            self.pivots_since_inv[idx[work[live]]] += 1
        if work.size:
            write_back(np.ones(work.size, dtype=bool))
        return done

    # ----------------------------------------------------------------- public
    def solve(
        self, slots: np.ndarray, cost: np.ndarray, max_steps: int | None = None
    ) -> SlotSolution:
        """Optimal vertices of the slot LPs ``slots`` for structural costs ``cost``.

        Parameters
        ----------
        slots : int array (batch,)
            Slot indices (distinct).
        cost : array (batch, route)
            Cost per request of each route [any unit, e.g. USD/request].
        max_steps : int, optional
            Simplex steps before the HiGHS fallback (default ``20 * rows + 200``).
        """
        slots = np.asarray(slots, dtype=np.intp)
        cost = np.asarray(cost, dtype=float)
        max_steps = max_steps or 20 * self.m + 200
        cscale = np.abs(cost).max(axis=1)
        cscale = np.where(cscale > 0, cscale, 1.0)
        cs = cost / cscale[:, None]
        # re-invert slots whose inverse has seen many updates (numerical hygiene)
        stale = slots[self.pivots_since_inv[slots] > 2 * self.m]
        self._reinvert(stale)
        ok = np.ones(slots.size, dtype=bool)
        p1 = np.flatnonzero(~self.phase2[slots])
        if p1.size:
            done = self._run(slots[p1], cs[p1], phase2=False, max_steps=max_steps)
            art = (self.basis[slots[p1]] >= self.P) & (self.basis[slots[p1]] < self.P + self.n_eq)
            infeas = np.where(art, self.xB[slots[p1]], 0.0).sum(axis=1) > 1e-7
            self.phase2[slots[p1[done & ~infeas]]] = True
            ok[p1[~done | infeas]] = False
        p2 = np.flatnonzero(ok)
        if p2.size:
            done = self._run(slots[p2], cs[p2], phase2=True, max_steps=max_steps)
            ok[p2[~done]] = False
        bad = np.flatnonzero(~ok)
        if bad.size:
            self._fallback(slots[bad], cs[bad])
        return self._solution(slots, cost, cscale)

    def _solution(self, slots: np.ndarray, cost: np.ndarray, cscale: np.ndarray) -> SlotSolution:
        bas = self.basis[slots]
        struct = bas < self.P
        routes = np.where(struct, bas, -1)
        vals = np.where(struct, self.xB[slots], 0.0) * self.b_scale[slots, None]
        cr = np.take_along_axis(cost, np.where(struct, bas, 0), axis=1)
        value = np.sum(np.where(struct, cr * vals, 0.0), axis=1)
        # rigorous bound: Lagrangian of the capacity rows with prices v >= 0 from the duals
        cs = cost / cscale[:, None]
        cb = np.where(struct, cr / cscale[:, None], 0.0)
        y = np.einsum("sm,smk->sk", cb, self.Binv[slots])
        v = np.clip(-y[:, self.n_eq :], 0.0, None)  # (S, n_cap) scaled
        bound = self.lagrangian_bound(slots, cs, v) * cscale
        return SlotSolution(slots, routes, vals, value, np.minimum(bound, value))

    def lagrangian_bound(self, slots: np.ndarray, cs: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``sum_j d_j min_p (c_p + a_p v_g(p)) - cap . v`` for capacity prices v >= 0
        (scaled units), a lower bound on each slot optimum (scaled cost units x b_scale)."""
        red = cs + self.cap_coef * v[:, self.cap_row - self.n_eq]  # (S, P)
        mins = np.minimum.reduceat(red[:, self._by_region], self._region_start, axis=1)
        b = self.b[slots]
        d = b[:, : self.n_eq]
        mins = np.where(d > 0, mins, 0.0)
        val = np.sum(d * mins, axis=1) - np.sum(b[:, self.n_eq :] * v, axis=1)
        return val * self.b_scale[slots]

    def _fallback(self, slots: np.ndarray, cs: np.ndarray) -> None:
        """Solve slots with HiGHS one by one and load their optimal bases."""
        import highspy
        import scipy.sparse as sp

        from eqglb._highs import basis_status, highs_lp

        self.fallbacks += slots.size
        P, m = self.P, self.m
        A = sp.csc_matrix(self.A[:, :P])
        for n, t in enumerate(slots):
            b = self.b[t]
            h = highs_lp(
                A, cs[n], np.concatenate([b[: self.n_eq], np.full(self.n_cap, -np.inf)]), b
            )
            h.run()
            col, row = basis_status(h)
            basic = int(highspy.HighsBasisStatus.kBasic)
            idx = np.concatenate([np.flatnonzero(col == basic), P + np.flatnonzero(row == basic)])
            if idx.size != m:
                raise RuntimeError(
                    f"HiGHS returned a basis of size {idx.size} for slot {t}; expected {m}"
                )
            self.basis[t] = idx
            self.phase2[t] = True
            self._reinvert(np.array([t]))
