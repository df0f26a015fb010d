"""Structure-exploiting primal-dual interior-point method for the Dantzig-Wolfe master.

The restricted master (:mod:`eqglb.structured.master`) over the column weights ``lam``
(L of them, grouped by slot) is, in scaled units,

    minimise    f . lam + sum_{b: q_b < inf} w_b N_b(A_b^T lam) + sum_{b: q_b = inf} w_b s_b
    subject to  E lam = 1  (one row per slot),  lam >= 0,
                (A_b^T lam)_r + slack_r = s_b,  slack_r >= 0   (every entry r of a
                block with q_b = inf),

where ``N_b`` is the q_b-norm (smooth where u != 0; its Hessian is bounded for q >= 2).
The method is Mehrotra's predictor-corrector on the perturbed KKT conditions (as for
linear programs, with the smooth norm terms entering through their gradient and Hessian,
as nonlinear interior-point codes do). Only M coupling totals (at most 2N + J) link the
L columns, so each Newton system reduces to one M x M symmetric positive definite system:

* the L x L Hessian is ``D + A H' A^T`` with D = diag(z / lam) and H' (M x M, block
  diagonal, positive semidefinite) the Hessian of the norm terms plus, for a max block,
  ``diag(k) - k k^T / sum(k)`` with k = kappa / slack (its s eliminated);
* the slot rows are eliminated in closed form (``E D^-1 E^T`` is diagonal), giving the
  projected scaling P and ``Q = A^T P A`` (computed in centred form, without cancellation);
* with ``H' = G G^T``, a step solves ``(I + G^T Q G) y = G^T b`` by Cholesky, and
  ``H' v = G y`` is taken from y (accurate even where H' is huge near the solution).

One iteration costs O(L M^2) flops in a few numpy calls. The iterate with the best merit
(complementarity plus the objective effect of the residuals) is returned; near the
round-off floor the method stops after a few iterations without progress.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from eqglb.structured.coupling import Coupling

__all__ = ["IPMResult", "ipm_master", "supports"]

#: Iterations without a better merit after which the method stops (round-off floor).
STALL = 6
#: Fraction of the step to the boundary that is taken.
STEP = 0.99


def supports(cp: Coupling) -> bool:
    """True when every block's q is 2 or more (the norm's Hessian stays bounded)."""
    return all(b.q >= 2.0 for b in cp.blocks)


@dataclass(frozen=True)
class IPMResult:
    """Interior-point solution of the scaled master.

    Attributes
    ----------
    lam : array (L,)
        Column weights (> 0, sum 1 per slot).
    gamma : array (M,)
        Dual prices of the coupling totals (scaled units).
    iterations : int
    converged : bool
    gap : float
        Complementarity gap of the returned iterate (scaled objective units).
    """

    lam: np.ndarray
    gamma: np.ndarray
    iterations: int
    converged: bool
    gap: float


def _norm(v: np.ndarray, q: float) -> float:
    m = float(np.max(np.abs(v))) if v.size else 0.0
    if m == 0.0 or math.isinf(q):
        return m
    return m * float(np.sum((np.abs(v) / m) ** q) ** (1.0 / q))


def _max_step(x: np.ndarray, dx: np.ndarray) -> float:
    """Largest a <= 1 with x + a dx >= 0."""
    neg = dx < 0
    if not neg.any():
        return 1.0
    return min(1.0, float(np.min(-x[neg] / dx[neg])))


class _Structure:
    """Index bookkeeping of the blocks and the smooth norm terms."""

    def __init__(self, cp: Coupling, w: np.ndarray) -> None:
        self.off = cp.offsets
        self.M = int(self.off[-1])
        self.B = len(cp.blocks)
        self.q = [b.q for b in cp.blocks]
        self.w = np.asarray(w, float)
        self.inf_blocks = [n for n in range(self.B) if math.isinf(self.q[n])]
        self.smooth_blocks = [n for n in range(self.B) if not math.isinf(self.q[n])]
        self.row_block = np.repeat(np.arange(self.B), np.diff(self.off))
        self.inf_rows = (
            np.concatenate(
                [np.arange(self.off[n], self.off[n + 1]) for n in self.inf_blocks]
            ).astype(int)
            if self.inf_blocks
            else np.zeros(0, dtype=int)
        )

    def sl(self, n: int) -> slice:
        return slice(self.off[n], self.off[n + 1])

    def smooth(self, u: np.ndarray) -> tuple[float, np.ndarray, dict[int, tuple]]:
        """Value, gradient (M,) and Hessian factors of sum_{q<inf} w_b N_b(u_b).

        The Hessian of ``w N_q(u)`` is ``c (diag(d^2) - (d h)(d h)^T)`` with
        ``c = w (q - 1) / N``, ``d = (u / N)^((q - 2) / 2)`` and ``h = (u / N)^(q / 2)``,
        a unit vector (``sum (u / N)^q = 1``); returned per block as ``(c, d, h)``.
        """
        M = self.M
        val, g = 0.0, np.zeros(M)
        fac: dict[int, tuple] = {}
        for n in self.smooth_blocks:
            sl = self.sl(n)
            ub = u[sl]
            q = self.q[n]
            N = _norm(ub, q)
            if N <= 0:
                continue
            x = np.clip(ub / N, 0.0, None)
            val += self.w[n] * N
            g[sl] = self.w[n] * x ** (q - 1.0)
            fac[n] = (self.w[n] * (q - 1.0) / N, x ** ((q - 2.0) / 2.0), x ** (q / 2.0))
        return val, g, fac


class _Workspace:
    """Two L x M buffers reused by every Newton system of one interior-point solve.

    Fresh arrays of this size (about 1 MB on the paper tier) are page-faulted in by the
    allocator on every iteration, which cost more than the arithmetic on them.
    """

    def __init__(self, shape: tuple[int, int]) -> None:
        self.w1 = np.empty(shape)
        self.w2 = np.empty(shape)
        self._E: sp.csr_matrix | None = None

    def weighted(self, E: sp.csr_matrix, v: np.ndarray) -> sp.csr_matrix:
        """``E diag(v)`` for the slot-membership matrix E (one entry per column)."""
        if self._E is None:
            self._E = E.copy()
        self._E.data[:] = v[self._E.indices]
        return self._E


class _Newton:
    """The reduced Newton system of one interior-point iteration (module docstring)."""

    def __init__(
        self,
        st: _Structure,
        A: np.ndarray,
        E: sp.csr_matrix,
        slot: np.ndarray,
        n_time: int,
        lam: np.ndarray,
        z: np.ndarray,
        kap: np.ndarray,
        slack: np.ndarray,
        H: dict[int, tuple],
        base: np.ndarray,
        r2: np.ndarray,
        r_p: np.ndarray,
        work: _Workspace,
    ) -> None:
        self.st, self.A, self.slot, self.n_time = st, A, slot, n_time
        self.lam, self.z, self.kap, self.slack = lam, z, kap, slack
        self.base, self.r2, self.r_p = base, r2, r_p
        M, B = st.M, st.B
        rows = st.inf_rows
        self.Dinv = lam / z
        self.dsum = np.bincount(slot, self.Dinv, minlength=n_time)
        w1, w2 = work.w1, work.w2
        Abar = (work.weighted(E, self.Dinv) @ A) / self.dsum[:, None]  # weighted slot means
        np.take(Abar, slot, axis=0, out=w2)
        np.subtract(A, w2, out=w2)  # centred columns Ac
        np.multiply(np.sqrt(self.Dinv)[:, None], w2, out=w1)
        self.Q = w1.T @ w1  # Ac^T D^-1 Ac (one symmetric product)
        self.k = np.zeros(M)
        self.k[rows] = kap[rows] / slack[rows]
        # H' is block diagonal with blocks c (diag(d^2) - (d h)(d h)^T), |h| = 1 (the norm
        # Hessians; for a max block diag(k) - k k^T / sum(k): c = 1, d = sqrt(k),
        # h = d / |d|). Its factor G = blockdiag(sqrt(c) diag(d) (I - h h^T)) (G G^T = H'
        # as I - h h^T is a projector) is applied in O(M m_b) per block, never formed.
        self.fac: dict[int, tuple[float, np.ndarray, np.ndarray]] = {}
        self.csum = np.zeros(B)
        for n, (c, d, h) in H.items():
            self.fac[n] = (math.sqrt(c), d, h / max(float(np.linalg.norm(h)), 1e-300))
        for n in st.inf_blocks:
            sl = st.sl(n)
            kb = self.k[sl]
            self.csum[n] = max(float(kb.sum()), 1e-300)
            d = np.sqrt(kb)
            self.fac[n] = (1.0, d, d / math.sqrt(self.csum[n]))
        S = np.eye(M)
        QG = np.zeros((M, M))
        for n, (c, d, h) in self.fac.items():
            sl = st.sl(n)
            Qd = self.Q[:, sl] * (c * d)[None, :]
            QG[:, sl] = Qd - np.outer(Qd @ h, h)
        for n, (c, d, h) in self.fac.items():
            sl = st.sl(n)
            X = (c * d)[:, None] * QG[sl, :]
            S[sl, :] += X - np.outer(h, h @ X)
        S = 0.5 * (S + S.T)
        try:
            self.cho: np.ndarray | None = np.linalg.cholesky(S)
        except np.linalg.LinAlgError:
            self.cho = None
        self.S = S

    def _solve_S(self, b: np.ndarray) -> np.ndarray:
        if self.cho is None:
            return np.linalg.lstsq(self.S, b, rcond=None)[0]
        from scipy.linalg import cho_solve

        # the factor and b are finite by construction (S is checked by the Cholesky)
        return cho_solve((self.cho, True), b, check_finite=False)

    def G_dot(self, v: np.ndarray) -> np.ndarray:
        """G v with the block-diagonal factor G of H' (blocks without curvature are 0)."""
        out = np.zeros_like(v)
        for n, (c, d, h) in self.fac.items():
            sl = self.st.sl(n)
            vb = v[sl]
            out[sl] = c * d * (vb - h * float(h @ vb))
        return out

    def GT_dot(self, v: np.ndarray) -> np.ndarray:
        """G^T v."""
        out = np.zeros_like(v)
        for n, (c, d, h) in self.fac.items():
            sl = self.st.sl(n)
            x = c * d * v[sl]
            out[sl] = x - h * float(h @ x)
        return out

    def _PD(self, v: np.ndarray) -> np.ndarray:
        """D^-1 (v - D^-1-weighted slot mean of v): the scaled step with E dlam = 0."""
        mean = np.bincount(self.slot, self.Dinv * v, minlength=self.n_time) / self.dsum
        return self.Dinv * (v - mean[self.slot])

    def direction(
        self, r4: np.ndarray, r5: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step (dlam, ds, dz, dslack, dkappa) for complementarity targets
        ``z dlam + lam dz = r4`` and ``kappa dslack + slack dkappa = r5`` (max rows)."""
        st, A, rows, k = self.st, self.A, self.st.inf_rows, self.k
        M, B = st.M, st.B
        a5 = np.zeros(M)
        a5[rows] = (r5[rows] - self.kap[rows] * self.r_p[rows]) / self.slack[rows]
        # g1 = g0 + A a5; the products with A of a5 are taken through Q, as
        # A^T P A = Q (P the projected scaling): one pass over A fewer per product
        g0 = self.base - r4 / self.lam
        # s eliminated: ds_b = (k . v)_b / c_b - t_b
        t_b = np.zeros(B)
        extra = np.zeros(M)
        for m, n in enumerate(st.inf_blocks):
            sl = st.sl(n)
            t_b[n] = (self.r2[m] - a5[sl].sum()) / self.csum[n]
            extra[sl] = k[sl] * t_b[n]
        # v = A^T dlam solves (I + Q H') v = b with b = -A^T P g1 - Q extra
        p0 = A.T @ self._PD(g0)
        b = -p0 - self.Q @ (a5 + extra)
        y = self._solve_S(self.GT_dot(b))
        gy = self.G_dot(y)  # = H' v, without the cancellation in v
        v = b - self.Q @ gy
        for n in st.inf_blocks:  # all-ones is in the null space of a max block
            sl = st.sl(n)
            gy[sl] -= gy[sl].mean()
        hv = gy + extra
        dlam = -self._PD(g0 + A @ (a5 + hv))
        at_dlam = -p0 - self.Q @ (a5 + hv)  # A^T dlam
        ds = np.zeros(B)
        for n in st.inf_blocks:
            sl = st.sl(n)
            ds[n] = float(k[sl] @ v[sl]) / self.csum[n] - t_b[n]
        dz = (r4 - self.z * dlam) / self.lam
        dk = np.zeros(M)
        dk[rows] = a5[rows] + hv[rows]  # slack dk + kappa dslack = r5, -k dslack = hv
        dw = np.zeros(M)
        dw[rows] = ds[st.row_block[rows]] - at_dlam[rows] + self.r_p[rows]
        return dlam, ds, dz, dw, dk


def ipm_master(
    f: np.ndarray,
    A: np.ndarray,
    w: np.ndarray,
    slot: np.ndarray,
    n_time: int,
    cp: Coupling,
    *,
    tol: float = 1e-9,
    max_iter: int = 120,
) -> IPMResult:
    """Mehrotra predictor-corrector on the scaled master (see the module docstring).

    Parameters
    ----------
    f : array (L,)
        Scaled linear cost of each column.
    A : array (L, M)
        Scaled coupling vector of each column (>= 0).
    w : array (B,)
        Scaled weight of each block.
    slot : int array (L,)
        Slot of each column; every slot 0..n_time-1 has at least one.
    cp : Coupling
        Supplies the blocks' norm orders and offsets.
    tol : float
        Relative tolerance on the merit (complementarity plus residual effects).
    """
    st = _Structure(cp, w)
    L, M, B = f.size, st.M, st.B
    rows, inf_b = st.inf_rows, st.inf_blocks
    E = sp.csr_matrix((np.ones(L), (slot, np.arange(L))), shape=(n_time, L))
    cnt = np.bincount(slot, minlength=n_time).astype(float)
    # ---- starting point: uniform weights, s above the max, mu0 = |objective| / nu
    lam = 1.0 / cnt[slot]
    u = A.T @ lam
    s = np.zeros(B)
    for n in inf_b:
        ub = u[st.sl(n)]
        s[n] = 1.1 * float(ub.max()) + 1e-3 * float(ub.mean()) + 1e-12
    slack = np.zeros(M)
    slack[rows] = s[st.row_block[rows]] - u[rows]
    nu = L + rows.size
    obj0 = float(f @ lam) + float(st.w[inf_b] @ s[inf_b]) + st.smooth(u)[0]
    mu0 = max(abs(obj0), 1e-12) / nu
    z = mu0 / lam
    kap = np.zeros(M)
    kap[rows] = mu0 / slack[rows]
    for n in inf_b:  # kappa summing to w_b per block (dual feasible for s)
        sl = st.sl(n)
        kap[sl] *= st.w[n] / max(float(kap[sl].sum()), 1e-300)
    best: tuple = (math.inf, lam, s, z, kap, math.inf, 0)
    work = _Workspace(A.shape)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        u = A.T @ lam
        sval, g, H = st.smooth(u)
        r_p = np.zeros(M)  # primal residual s_b - u_r - slack_r of the max rows
        r_p[rows] = s[st.row_block[rows]] - u[rows] - slack[rows]
        # dual residual f + A (g + kappa) - z + E^T nu, with nu eliminated per slot
        base = f + A @ (g + kap) - z
        res_d = base - (np.bincount(slot, base, minlength=n_time) / cnt)[slot]
        r2 = np.array([st.w[n] - kap[st.sl(n)].sum() for n in inf_b])
        comp = float(lam @ z) + float(slack[rows] @ kap[rows])
        obj = float(f @ lam) + float(st.w[inf_b] @ s[inf_b]) + sval
        merit = (
            comp
            + n_time * float(np.abs(res_d).max())
            + (float(np.abs(r2).max()) if r2.size else 0.0)
            + (float(np.abs(r_p).max() * np.abs(kap).max()) if rows.size else 0.0)
        )
        if merit < best[0]:
            best = (merit, lam.copy(), s.copy(), z.copy(), kap.copy(), comp, it)
        if merit <= tol * max(1.0, abs(obj)):
            converged = True
            break
        if it - best[6] >= STALL:
            break
        mu = comp / nu
        nw = _Newton(st, A, E, slot, n_time, lam, z, kap, slack, H, base, r2, r_p, work)
        # predictor (affine scaling)
        r5 = np.zeros(M)
        r5[rows] = -slack[rows] * kap[rows]
        dl_a, _, dz_a, dw_a, dk_a = nw.direction(-lam * z, r5)
        ap = min(_max_step(lam, dl_a), _max_step(slack[rows], dw_a[rows]))
        ad = min(_max_step(z, dz_a), _max_step(kap[rows], dk_a[rows]))
        comp_aff = float((lam + ap * dl_a) @ (z + ad * dz_a)) + float(
            (slack[rows] + ap * dw_a[rows]) @ (kap[rows] + ad * dk_a[rows])
        )
        sigma = min(1.0, (comp_aff / max(comp, 1e-300)) ** 3)
        # corrector
        r4 = sigma * mu - lam * z - dl_a * dz_a
        r5 = np.zeros(M)
        r5[rows] = sigma * mu - slack[rows] * kap[rows] - dw_a[rows] * dk_a[rows]
        dl, ds, dz, dw, dk = nw.direction(r4, r5)
        ap = STEP * min(_max_step(lam, dl), _max_step(slack[rows], dw[rows]))
        ad = STEP * min(_max_step(z, dz), _max_step(kap[rows], dk[rows]))
        if st.smooth_blocks:  # nonlinear terms couple primal and dual: one common step
            ap = ad = min(ap, ad)
        lam = np.maximum(lam + ap * dl, 1e-300)
        s = s + ap * ds
        slack = slack + ap * dw
        z = z + ad * dz
        kap = kap + ad * dk
    _, lam, s, z, kap, gap, _ = best
    lam = lam / np.bincount(slot, lam, minlength=n_time)[slot]
    gamma = st.smooth(A.T @ lam)[1]
    gamma[rows] = kap[rows]
    return IPMResult(lam, gamma, it, converged, gap)
