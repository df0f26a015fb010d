"""Compact slot LPs: an exact reformulation of one slot without (region, datacenter) routes.

Every cost of the model is separable: energy cost and every data-centre burden (carbon,
water, health) of a request depend on (slot, data centre, model) only, quality loss on (region, model) only; no cost depends on
the pair (data centre, region). Regions with the same allowed (data centre, model) set
form a *class* c. The slot problem over routes (i, j, k) is then equivalent to one over

* ``y[j, k]``  requests of region j served by model k [requests/slot], and
* ``z[c, i, k]``  requests of class c served by model k at data centre i [requests/slot],

linked by ``sum_{j in c} y[j, k] = sum_i z[c, i, k]`` for every (class, model):

    minimise    sum beta[j, k] y[j, k] + sum alpha[i, k] z[c, i, k]
    subject to  sum_k y[j, k] = demand[j]                         (region rows, J)
                sum_{j in c} y[j, k] - sum_i z[c, i, k] = 0        (link rows)
                sum_{c, k} r[k] z[c, i, k] <= capacity[i]          (shared capacity, N)
                or sum_c z[c, i, k] <= capacity[i, k]              (per-model capacity)

Any route dispatch maps to a compact one of equal cost (sum over i, resp. over j), and any
compact one back to a route dispatch of equal cost by splitting ``y[j, k]`` over the data
centres in proportion to ``z[c(j), i, k]`` (:meth:`CompactLP.expand`). With one class
(every region may use every hosted model anywhere) a slot of 100 data centres x 1000
regions x 5 models has 5 000 + 500 variables instead of 500 000.

The LP is solved by the HiGHS dual simplex, warm-started from the previous slot's basis;
rows and costs are scaled per slot so that HiGHS's absolute tolerances are relative ones.
Each slot also yields a certified lower bound computed by us from the capacity duals
(:meth:`CompactLP.bound`): any capacity prices lam >= 0 give the Lagrangian bound
``sum_j d_j min_(i,k) (beta_jk + alpha_ik + r_k lam_i) - cap . lam``, so round-off in the
LP solver can never overstate it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from eqglb.burdens import BURDENS, burden
from eqglb.costs import Objective, coefficients
from eqglb.scenario import Scenario

__all__ = ["CompactLP", "SlotResult", "price_terms"]


@dataclass(frozen=True)
class PriceTerms:
    """How an objective splits into linear slot costs and priced coupling blocks.

    Attributes
    ----------
    linear : dict
        Weight of every burden's q = 1 part added to the slot cost [USD per unit of the
        burden] (0 for a burden priced in a block or not at all).
    blocks : list of (name, weight, q, size)
        Coupling blocks with q > 1, in stacking order; ``name`` a burden or
        ``"environment"``.
    env : dict
        Weights of the combinable burdens inside the combined environmental cost
        (``environment`` block) [USD per unit].
    """

    linear: dict[str, float]
    blocks: list[tuple[str, float, float, int]]
    env: dict[str, float]


def price_terms(
    obj: Objective, n_datacenter: int, n_region: int, nonzero: dict[str, bool] | None = None
) -> PriceTerms:
    """Split ``obj`` like :func:`eqglb.structured.coupling.coupling_of` does.

    ``nonzero`` tells which regional costs are not identically zero (a block of an
    all-zero cost is a constant 0 and is dropped).
    """
    nz = nonzero or {}
    lin = dict.fromkeys(BURDENS, 0.0)
    blocks: list[tuple[str, float, float, int]] = []
    env = {k: t.mu for k, t in obj.terms.items() if burden(k).combinable and t.mu > 0}

    def add(name: str, w: float, q: float, size: int, present: bool) -> None:
        if w <= 0 or not present:
            return
        if q == 1.0:
            if name == "environment":
                for k, mu in env.items():
                    lin[k] += mu
            else:
                lin[name] += w
        else:
            blocks.append((name, float(w), float(q), size))

    for name, t in obj.terms.items():
        b = burden(name)
        if obj.combined_environment and b.combinable:
            continue
        size = n_region if b.side == "region" else n_datacenter
        add(name, t.mu, t.q, size, nz.get(name, True))
    if obj.combined_environment and env:
        add(
            "environment",
            1.0,
            obj.q_carbon,
            n_datacenter,
            any(nz.get(k, True) for k in env),
        )
    return PriceTerms(lin, blocks, env)


@dataclass
class SlotResult:
    """Compact optimal solution of one slot and what it contributes.

    Attributes
    ----------
    y : array (y-column,) [requests/slot]
    z : array (z-column,) [requests/slot]
    energy : float [USD]
    vectors : dict burden -> array
        Regional totals of the slot: (datacenter,) per data-centre burden (``carbon``
        [kg CO2], ``water`` [L], ``health`` [USD]), (region,) for ``social`` [unit of S];
        ``result.carbon`` etc. read them.
    loads : array (datacenter, model) [requests/slot]
    bound : float
        Certified lower bound on the slot's priced LP value [USD].
    value : float
        The LP value of (y, z) at the prices [USD].
    """

    y: np.ndarray
    z: np.ndarray
    energy: float
    vectors: dict[str, np.ndarray]
    loads: np.ndarray
    bound: float
    value: float
    iterations: int = 0

    def __getattr__(self, key: str) -> np.ndarray:
        vec = self.__dict__.get("vectors", {})
        if key in vec:
            return vec[key]
        raise AttributeError(f"'SlotResult' object has no attribute {key!r}")


@dataclass(eq=False)
class CompactLP:
    """The compact slot LPs of one (scenario, objective) pair (module docstring).

    Holds only numpy arrays (picklable, sent once to each worker process or Ray actor);
    the HiGHS instance is created lazily where the slots are solved.
    """

    shape: tuple[int, int, int, int]
    terms: PriceTerms
    demand: np.ndarray  # (T, J) [requests/slot]
    capacity: np.ndarray  # (T, pool) [units/slot] or [requests/slot]
    energy_cost: np.ndarray  # (T, N, K) [USD/request]
    site: dict[str, np.ndarray]  # burden -> (T, N, K) [unit/request]; absent: all 0
    quality: np.ndarray  # (J, K) [unit of S per request]
    region_class: np.ndarray  # (J,)
    hosted: np.ndarray  # (C, N, K) bool
    shared: bool
    cap_coef: np.ndarray  # (K,) units per request (shared) or ones
    time_labels: tuple[str, ...] = ()
    _highs: Any = field(default=None, repr=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def of(cls, sc: Scenario, obj: Objective) -> CompactLP:
        T, N, J, K = sc.shape
        coef = coefficients(sc, social_average=obj.social_average)
        allowed = np.asarray(sc.allowed, dtype=bool)
        per_region = allowed.transpose(1, 0, 2).reshape(J, N * K)
        uniq, region_class = np.unique(per_region, axis=0, return_inverse=True)
        hosted = uniq.reshape(-1, N, K)
        cap = np.asarray(sc.capacity, dtype=float)  # (T, N) or (T, N, K)
        shared = sc.capacity_mode == "shared"
        used = allowed.any(axis=1)  # (N, K) hosted anywhere
        site: dict[str, np.ndarray] = {}
        nz: dict[str, bool] = {}
        for name, b in BURDENS.items():
            if b.side == "region":
                nz[name] = bool(np.any(np.asarray(coef.quality)[allowed.any(axis=0)]))
                continue
            arr = np.asarray(coef.site[name])
            nz[name] = bool(np.any(arr[:, used]))
            if nz[name] or name in ("carbon", "water"):
                site[name] = arr  # an all-zero burden is not stored (its totals are 0)
        terms = price_terms(obj, N, J, nz)
        return cls(
            shape=(T, N, J, K),
            terms=terms,
            demand=np.asarray(sc.demand, float),
            time_labels=tuple(f"{x:%Y-%m-%d %H:%M} UTC" for x in sc.time),
            capacity=np.ascontiguousarray(cap.reshape(T, -1)),
            energy_cost=np.asarray(coef.energy_cost),
            site=site,
            quality=np.asarray(coef.quality),
            region_class=region_class.ravel(),
            hosted=hosted,
            shared=shared,
            cap_coef=(np.asarray(sc.capacity_per_request, float) if shared else np.ones(K)),
        )

    def __post_init__(self) -> None:
        T, N, J, K = self.shape
        C = self.hosted.shape[0]
        kok: np.ndarray = np.asarray(self.hosted.any(axis=1))  # (C, K)
        self.yj, self.yk = np.nonzero(kok[self.region_class])  # y columns
        self.zc, self.zi, self.zk = np.nonzero(self.hosted)  # z columns
        link = np.full((C, K), -1)
        link[kok] = np.arange(int(kok.sum()))
        self.n_link = int(kok.sum())
        ny, nzc = self.yj.size, self.zc.size
        self.ny, self.nz = ny, nzc
        self.n_col = ny + nzc
        n_cap = N if self.shared else N * K
        self.n_row = J + self.n_link + n_cap
        cap_row = self.zi if self.shared else self.zi * K + self.zk
        rows = np.concatenate(
            [
                self.yj,
                J + link[self.region_class[self.yj], self.yk],
                J + link[self.zc, self.zk],
                J + self.n_link + cap_row,
            ]
        )
        cols = np.concatenate(
            [np.arange(ny), np.arange(ny), ny + np.arange(nzc), ny + np.arange(nzc)]
        )
        vals = np.concatenate([np.ones(ny), np.ones(ny), -np.ones(nzc), self.cap_coef[self.zk]])
        self.A = sp.csc_matrix((vals, (rows, cols)), shape=(self.n_row, self.n_col))
        self.block_names = [b[0] for b in self.terms.blocks]
        self.block_sizes = [b[3] for b in self.terms.blocks]
        self.offsets = np.concatenate([[0], np.cumsum(self.block_sizes)]).astype(int)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_highs"] = None
        return state

    @property
    def n_classes(self) -> int:
        return int(self.hosted.shape[0])

    # ------------------------------------------------------------------ prices
    def slot_costs(self, t: int, gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Priced costs alpha (N, K) and beta (J, K) of slot t [USD/request]."""
        lin = self.terms.linear
        alpha = self.energy_cost[t]
        for name, arr in self.site.items():
            if lin[name]:
                alpha = alpha + lin[name] * arr[t]
        beta = lin["social"] * self.quality
        for n, name in enumerate(self.block_names):
            g = gamma[self.offsets[n] : self.offsets[n + 1]]
            if name == "environment":
                env = sum(mu * self.site[k][t] for k, mu in self.terms.env.items())
                alpha = alpha + g[:, None] * env
            elif burden(name).side == "region":
                beta = beta + g[:, None] * self.quality
            else:
                alpha = alpha + g[:, None] * self.site[name][t]
        return alpha, beta

    def bound(self, t: int, alpha: np.ndarray, beta: np.ndarray, lam: np.ndarray) -> float:
        """Lagrangian lower bound of slot t at capacity prices ``lam >= 0`` [USD].

        ``sum_j d_j min_(i, k allowed) (beta_jk + alpha_ik + r_k lam_i) - cap . lam``
        (per-model capacity: ``lam`` per (i, k) and r = 1). Valid for every lam >= 0.
        """
        N, K = alpha.shape
        lam = np.clip(lam, 0.0, None)
        price = alpha + (
            lam.reshape(N, 1) * self.cap_coef[None, :] if self.shared else lam.reshape(N, K)
        )
        m = np.where(self.hosted, price[None], np.inf).min(axis=1)  # (C, K)
        per = beta + m[self.region_class]  # (J, K)
        d = self.demand[t]
        best = per.min(axis=1)
        best = np.where(d > 0, best, 0.0)
        return float(d @ best - self.capacity[t] @ lam)

    # ------------------------------------------------------------------ HiGHS
    def _solver(self) -> Any:
        if self._highs is None:
            from eqglb._highs import highs_lp

            h = highs_lp(
                self.A,
                np.zeros(self.n_col),
                np.zeros(self.n_row),
                np.zeros(self.n_row),
                presolve="off",
            )
            self._highs = h
            self._cols = np.arange(self.n_col, dtype=np.int32)
            self._rows = np.arange(self.n_row, dtype=np.int32)
        return self._highs

    def get_basis(self) -> tuple[np.ndarray, np.ndarray]:
        """The current HiGHS basis as two int8 arrays (columns, rows) (picklable)."""
        from eqglb._highs import basis_status

        return basis_status(self._solver())

    def set_basis(self, basis: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Start the next solve from ``basis`` (None: from the slack basis, cold)."""
        import highspy

        h = self._solver()
        h.clearSolver()
        if basis is None:
            return
        b = highspy.HighsBasis()
        lut = list(highspy.HighsBasisStatus.__members__.values())
        lut = sorted(lut, key=int)
        b.col_status = [lut[v] for v in basis[0].tolist()]
        b.row_status = [lut[v] for v in basis[1].tolist()]
        b.valid = True
        h.setBasis(b)

    def solve_slot(self, t: int, gamma: np.ndarray) -> SlotResult:
        """Solve slot t at block prices ``gamma`` (stacked (M,)) from the current basis."""
        from eqglb.policies.problem import SolveError

        T, N, J, K = self.shape
        h = self._solver()
        alpha, beta = self.slot_costs(t, gamma)
        d = self.demand[t]
        cap = self.capacity[t]
        sx = max(float(d.max()), 1e-300)  # variable scale
        cost = np.concatenate([beta[self.yj, self.yk], alpha[self.zi, self.zk]])
        sc = 1.0 / max(float(np.abs(cost).max()), 1e-300)  # cost scale
        h.changeColsCost(self.n_col, self._cols, cost * sc)
        lo = np.concatenate([d / sx, np.zeros(self.n_link), np.full(cap.size, -np.inf)])
        hi = np.concatenate([d / sx, np.zeros(self.n_link), cap / sx])
        h.changeRowsBounds(self.n_row, self._rows, lo, hi)
        h.run()
        status = h.modelStatusToString(h.getModelStatus())
        if status != "Optimal":
            h.clearSolver()  # once more from scratch
            h.run()
            status = h.modelStatusToString(h.getModelStatus())
            if status != "Optimal":
                when = f" ({self.time_labels[t]})" if self.time_labels else ""
                hint = (
                    "demand cannot be served within capacity and routing in this slot; "
                    "raise capacity, allow more routes or lower demand"
                    if status == "Infeasible"
                    else "the slot LP could not be solved"
                )
                raise SolveError(
                    f"slot {t}{when}: HiGHS returned {status!r} for the compact slot LP: {hint}"
                )
        sol = h.getSolution()
        x = np.clip(np.asarray(sol.col_value), 0.0, None) * sx
        y, z = x[: self.ny], x[self.ny :]
        row_dual = np.asarray(sol.row_dual)
        lam = np.clip(-row_dual[J + self.n_link :], 0.0, None) / sc
        bound = self.bound(t, alpha, beta, lam)
        value = float(cost @ x)
        zi, zk = self.zi, self.zk
        energy = float(self.energy_cost[t, zi, zk] @ z)
        vectors = self.totals(t, y, z)
        loads = np.bincount(zi * K + zk, z, minlength=N * K).reshape(N, K)
        it = int(h.getInfo().simplex_iteration_count)
        return SlotResult(y, z, energy, vectors, loads, bound, value, it)

    def totals(self, t: int, y: np.ndarray, z: np.ndarray) -> dict[str, np.ndarray]:
        """Regional totals of every burden of a compact solution of slot t."""
        T, N, J, K = self.shape
        zi, zk = self.zi, self.zk
        out: dict[str, np.ndarray] = {}
        for name, b in BURDENS.items():
            if b.side == "region":
                out[name] = np.bincount(self.yj, self.quality[self.yj, self.yk] * y, minlength=J)
            elif name in self.site:
                out[name] = np.bincount(zi, self.site[name][t, zi, zk] * z, minlength=N)
            else:
                out[name] = np.zeros(N)
        return out

    # ------------------------------------------------------------------ dispatch
    def expand(self, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Route dispatch (datacenter, region, model) of a compact solution [requests/slot].

        ``y[j, k]`` is split over data centres in proportion to ``z[c(j), i, k]``.
        """
        T, N, J, K = self.shape
        C = self.n_classes
        zz = np.zeros((C, N, K))
        zz[self.zc, self.zi, self.zk] = z
        tot = zz.sum(axis=1)  # (C, K)
        share = np.divide(zz, tot[:, None, :], out=np.zeros_like(zz), where=tot[:, None, :] > 0)
        yy = np.zeros((J, K))
        yy[self.yj, self.yk] = y
        return np.einsum("jk,jik->ijk", yy, share[self.region_class])
