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

Where quality is rank one the LP solved is the *reduced* form (:class:`_Reduced`): no
region rows, a region's split written as cumulative amounts per hosted-model level. In
a class of many regions each level fills the regions in the order of their quality
price and only the region at the level's breakpoint is fractional, so a class of more
than ``2 * T_WINDOW`` regions carries per level only a *window* of ``T_WINDOW`` of them
around the breakpoint, the others fixed at a bound (one class of 1000 regions and 5
models: 700 columns instead of 4 500). A slot's window solution is accepted only where
it is optimal for the LP with every column (aggregates at their fixed values, the fixed
columns' reduced costs of the right sign); else the windows move and the slot is solved
again, or, failing that, solved without windows.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import scipy.sparse as sp

from eqglb.burdens import BURDENS, burden
from eqglb.costs import Objective, coefficients
from eqglb.scenario import Scenario

__all__ = ["T_WINDOW", "CompactLP", "SlotResult", "price_terms"]

#: Columns per hosted-model level of a windowed class in the reduced slot LP
#: (:class:`_Reduced`): a class of more than ``2 * T_WINDOW`` regions carries, per level,
#: this many of its regions' cumulative columns around the level's breakpoint; the others
#: are fixed at a bound and checked against the duals after each solve.
T_WINDOW = 48
#: Solves of one slot with moved windows before the slot is solved without windows.
_WINDOW_ROUNDS = 8
#: HiGHS basis status codes (``HighsBasisStatus``): at lower bound, basic, at upper bound.
_LOWER, _BASIC, _UPPER = 0, 1, 2
#: Reduced-cost tolerance of a fixed column (HiGHS's dual feasibility tolerance of the
#: reduced form) [scaled cost].
_RC_TOL = 1e-10
#: Primal tolerance of an aggregate window column at its fixed value [scaled requests].
_X_TOL = 1e-9


def _apply_basis(h: Any, cols: np.ndarray, rows: np.ndarray) -> None:
    """Give HiGHS instance ``h`` the basis of status codes ``cols``, ``rows``."""
    import highspy

    b = highspy.HighsBasis()
    lut = sorted(highspy.HighsBasisStatus.__members__.values(), key=int)
    b.col_status = [lut[v] for v in np.asarray(cols).tolist()]
    b.row_status = [lut[v] for v in np.asarray(rows).tolist()]
    b.valid = True
    h.setBasis(b)


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
    even : array (region,)
        Quality loss per region [unit of S] of the *even split* of the same class totals
        (:meth:`CompactLP.even_split`): every region of a class gets the class's model
        mix. Same feasibility, energy and data-centre burdens as (y, z).
    lam : array
        Capacity prices of the solve (:meth:`CompactLP.bound` turns them into a bound
        at any slot costs) [USD per capacity unit].
    """

    y: np.ndarray
    z: np.ndarray
    energy: float
    vectors: dict[str, np.ndarray]
    loads: np.ndarray
    bound: float
    value: float
    iterations: int = 0
    even: np.ndarray | None = None
    lam: np.ndarray | None = None

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
    form: str = "auto"
    window: int = T_WINDOW
    _highs: Any = field(default=None, repr=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def of(
        cls, sc: Scenario, obj: Objective, form: str = "auto", window: int | None = None
    ) -> CompactLP:
        """The compact slot LPs of ``sc`` under ``obj``; ``form`` as in :attr:`form`,
        ``window`` the reduced form's columns per level of a large class (0: none;
        None: :data:`T_WINDOW`)."""
        window = T_WINDOW if window is None else int(window)
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
            form=form,
            window=window,
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
        # flat indices of the columns into (N, K), (J, K) and (C, K) arrays
        self._zflat = self.zi * K + self.zk
        self._yflat = self.yj * K + self.yk
        self._zkey = self.zc * K + self.zk
        self._ykey = self.region_class[self.yj] * K + self.yk
        self._yq = np.asarray(self.quality)[self.yj, self.yk]  # quality loss per y column
        # z columns grouped by (class, model), for the per-(class, model) minima of bound()
        key = self._zkey
        self._ck_order = np.argsort(key, kind="stable")
        ks = key[self._ck_order]
        self._ck_start = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]]) if ks.size else ks
        self._ck_key = ks[self._ck_start] if ks.size else ks
        self._ck_flat = self._zflat[self._ck_order]
        self.block_names = [b[0] for b in self.terms.blocks]
        self.block_sizes = [b[3] for b in self.terms.blocks]
        self.offsets = np.concatenate([[0], np.cumsum(self.block_sizes)]).astype(int)
        if self.form not in ("auto", "compact", "reduced"):
            raise ValueError(f"form must be 'auto', 'compact' or 'reduced', not {self.form!r}")
        if self.window < 0:
            raise ValueError(f"window must be >= 0 columns, not {self.window}")
        self._red: _Reduced | None = None
        self._full: CompactLP | None = None  # the same LP without windows (fallback)
        self._wcache: tuple[Any, ...] | None = None
        self._bcache: tuple[np.ndarray, np.ndarray] | None = None  # (gamma, beta)
        self.window_fallbacks = 0  # slots solved without windows (diagnostics)
        self._window_iters = 0  # simplex iterations of a slot's window rounds
        if self.form != "compact":
            self._red = _Reduced.build(self)
            if self._red is None and self.form == "reduced":
                raise ValueError(
                    "the reduced form needs a rank-one quality matrix "
                    "(quality[j, k] = w[j] * loss[k]) and a hosted model in every class"
                )
        self._wstart = np.zeros(0 if self._red is None else self._red.n_win, dtype=np.int64)

    @property
    def lp_form(self) -> str:
        """The LP actually solved per slot: ``"reduced"`` or ``"compact"``."""
        return "reduced" if self._red is not None else "compact"

    @property
    def lp_size(self) -> tuple[int, int]:
        """(rows, columns) of the slot LP solved (:attr:`lp_form`)."""
        if self._red is None:
            return self.n_row, self.n_col
        return self._red.n_row, self._red.n_cols

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_highs"] = None
        state["_full"] = None
        state["_wcache"] = None
        state["_bcache"] = None
        return state

    def replica(self) -> CompactLP:
        """The same slot LP (its data shared, not copied) with a HiGHS instance of its
        own, built on first use: a second warm-start sequence beside this one's."""
        other = copy.copy(self)
        other._highs = None
        other._full = None
        other._wstart = self._wstart.copy()
        return other

    @property
    def n_classes(self) -> int:
        return int(self.hosted.shape[0])

    # ------------------------------------------------------------------ prices
    def slot_costs(self, t: int, gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Priced costs alpha (N, K) and beta (J, K) of slot t [USD/request].

        beta does not depend on the slot: it is kept while gamma is, read-only."""
        lin = self.terms.linear
        alpha = self.energy_cost[t]
        for name, arr in self.site.items():
            if lin[name]:
                alpha = alpha + lin[name] * arr[t]
        for n, name in enumerate(self.block_names):
            g = gamma[self.offsets[n] : self.offsets[n + 1]]
            if name == "environment":
                env = sum(mu * self.site[k][t] for k, mu in self.terms.env.items())
                alpha = alpha + g[:, None] * env
            elif burden(name).side != "region":
                alpha = alpha + g[:, None] * self.site[name][t]
        c = self._bcache
        if c is not None and np.array_equal(c[0], gamma):
            return alpha, c[1]
        beta = lin["social"] * self.quality
        for n, name in enumerate(self.block_names):
            if name != "environment" and burden(name).side == "region":
                g = gamma[self.offsets[n] : self.offsets[n + 1]]
                beta = beta + g[:, None] * self.quality
        beta.flags.writeable = False
        self._bcache = (np.array(gamma, copy=True), beta)
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
        C = self.hosted.shape[0]
        m = np.full(C * K, np.inf)  # min over hosted sites i of price[i, k], per (c, k)
        if self._ck_order.size:
            pz = price.ravel()[self._ck_flat]
            m[self._ck_key] = np.minimum.reduceat(pz, self._ck_start)
        m = m.reshape(C, K)
        per = beta + m[self.region_class]  # (J, K)
        d = self.demand[t]
        best = per[:, 0].copy()  # the minimum over models, column by column (K is small)
        for k in range(1, K):
            np.minimum(best, per[:, k], out=best)
        best = np.where(d > 0, best, 0.0)
        return float(d @ best - self.capacity[t] @ lam)

    # ------------------------------------------------------------------ HiGHS
    def _solver(self) -> Any:
        if self._highs is None:
            from eqglb._highs import highs_lp

            red = self._red
            A, n_col, n_row = (self.A, self.n_col, self.n_row) if red is None else red.shape_of()
            opts: dict[str, Any] = {"presolve": "off"}
            if red is not None:
                # its costs include differences of quality costs: tighter tolerances;
                # no cost perturbation (from the previous slot's basis it costs about
                # 30 % more dual simplex iterations on the year-latency tier)
                opts.update(
                    dual_feasibility_tolerance=1e-10,
                    primal_feasibility_tolerance=1e-10,
                    dual_simplex_cost_perturbation_multiplier=0.0,
                )
            h = highs_lp(A, np.zeros(n_col), np.zeros(n_row), np.zeros(n_row), **opts)
            self._highs = h
            self._cols = np.arange(n_col, dtype=np.int32)
            self._rows = np.arange(n_row, dtype=np.int32)
        return self._highs

    def get_basis(self) -> tuple[np.ndarray, ...]:
        """The current HiGHS basis as two int8 arrays (columns, rows) (picklable); with
        windows (:class:`_Reduced`) a third array, the windows' first positions."""
        from eqglb._highs import basis_status

        cols, rows = basis_status(self._solver())
        if self._wstart.size:
            return cols, rows, self._wstart.copy()
        return cols, rows

    def set_basis(self, basis: tuple[np.ndarray, ...] | None) -> None:
        """Start the next solve from ``basis`` (None: from the slack basis, cold, with
        every window at its class's first regions)."""
        h = self._solver()
        h.clearSolver()
        if basis is None:
            self._wstart = np.zeros_like(self._wstart)
            return
        if self._wstart.size:  # a basis without windows' positions: at the first regions
            w = basis[2] if len(basis) > 2 else np.zeros(0)
            ok = np.shape(w) == self._wstart.shape
            self._wstart = np.array(w, dtype=np.int64) if ok else np.zeros_like(self._wstart)
        _apply_basis(h, basis[0], basis[1])

    def solve_slot(self, t: int, gamma: np.ndarray) -> SlotResult:
        """Solve slot t at block prices ``gamma`` (stacked (M,)) from the current basis."""
        T, N, J, K = self.shape
        h = self._solver()
        alpha, beta = self.slot_costs(t, gamma)
        d = self.demand[t]
        cap = self.capacity[t]
        sx = max(float(d.max()), 1e-300)  # variable scale
        red = self._red
        if red is None:
            cost = np.concatenate([beta[self.yj, self.yk], alpha[self.zi, self.zk]])
            sc = 1.0 / max(float(np.abs(cost).max()), 1e-300)  # cost scale
            h.changeColsCost(self.n_col, self._cols, cost * sc)
            lo = np.concatenate([d / sx, np.zeros(self.n_link), np.full(cap.size, -np.inf)])
            hi = np.concatenate([d / sx, np.zeros(self.n_link), cap / sx])
            h.changeRowsBounds(self.n_row, self._rows, lo, hi)
            col, row_dual = self._run(t)
            x = np.clip(col, 0.0, None) * sx
            y, z = x[: self.ny], x[self.ny :]
            lam = np.clip(-row_dual[J + self.n_link :], 0.0, None) / sc
        else:
            cost = red.costs(alpha, beta)
            order, reg, ctw, pmax, smin, wbig = self._ordered(gamma, beta)
            sc = 1.0 / max(float(np.abs(cost).max()), wbig, 1e-300)
            if red.n_t:
                h.changeColsBounds(red.n_t, red.t_cols, np.zeros(red.n_t), d[red.tj] / sx)
            lo, hi = red.row_bounds(d / sx, cap / sx)
            if not red.n_win:
                h.changeColsCost(cost.size, self._cols, cost * sc)
                h.changeRowsBounds(lo.size, self._rows, lo, hi)
                col, row_dual = self._run(t)
            else:
                got = self._solve_windows(t, cost * sc, sc, ctw, pmax, smin, d[reg] / sx, lo, hi)
                if got is None:  # not settled within _WINDOW_ROUNDS: the LP without windows
                    res = self._solve_full(t, gamma, ctw * sc)
                    res.iterations += self._window_iters
                    return res
                col, row_dual = got
            z = np.clip(col[: self.nz], 0.0, None) * sx
            y = red.recover(z, d, order)
            lam = np.clip(-row_dual[red.n_row - red.n_cap :], 0.0, None) / sc
        bound = self.bound(t, alpha, beta, lam)
        zf = self._zflat
        value = float(beta.ravel()[self._yflat] @ y + alpha.ravel()[zf] @ z)
        energy = float(self.energy_cost[t].ravel()[zf] @ z)
        vectors = self.totals(t, y, z)
        loads = np.bincount(zf, z, minlength=N * K).reshape(N, K)
        # windowed: the simplex iterations of every round of the slot
        it = self._window_iters if red is not None and red.n_win else self._iterations(h)
        y_even = self.even_split(z, d)
        even = np.bincount(self.yj, self._yq * y_even, minlength=J)
        return SlotResult(y, z, energy, vectors, loads, bound, value, it, even, lam)

    def _run(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Run HiGHS from the current basis, once more from scratch if that is not
        optimal; a clear error if still not optimal. Returns (column values, row duals)
        of the scaled LP."""
        from eqglb.policies.problem import SolveError

        h = self._highs
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
        return np.asarray(sol.col_value), np.asarray(sol.row_dual)

    # ------------------------------------------------------------------ windows
    def _ordered(self, gamma: np.ndarray, beta: np.ndarray) -> tuple[Any, ...]:
        """The greedy region order (:meth:`_Reduced.region_order`); per position of every
        window's class, the region and its cumulative column's cost [USD/request]; and
        per position the largest cost up to it and the smallest from it on, within its
        window's class; and the largest magnitude of those costs (0 without windows).
        They depend on the prices only (beta does not change from slot to slot): kept
        while gamma is."""
        c = self._wcache
        if c is not None and np.array_equal(c[0], gamma):
            return c[1:]
        red = self._red
        assert red is not None
        order = red.region_order(beta)
        reg = order[red.cls_first[red.wc[red.flat_w]] + red.flat_pos]
        ctw = beta[reg, red.wk0[red.flat_w]] - beta[reg, red.wk1[red.flat_w]]
        pmax, smin = np.empty_like(ctw), np.empty_like(ctw)
        for a, b in zip(red.wseg[:-1], red.wseg[1:], strict=True):
            pmax[a:b] = np.maximum.accumulate(ctw[a:b])
            smin[a:b] = np.minimum.accumulate(ctw[a:b][::-1])[::-1]
        wbig = float(np.abs(ctw).max()) if ctw.size else 0.0
        self._wcache = (np.array(gamma, copy=True), order, reg, ctw, pmax, smin, wbig)
        return order, reg, ctw, pmax, smin, wbig

    def _solve_windows(
        self,
        t: int,
        cost: np.ndarray,
        sc: float,
        ctw: np.ndarray,
        pmax: np.ndarray,
        smin: np.ndarray,
        dw: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Solve the windowed LP until it is optimal for the LP with every column.

        ``cost``: the scaled costs of the other columns; ``sc``: the cost scale; per
        window position (:meth:`_ordered`) the unscaled cost ``ctw``, its running maximum
        ``pmax`` and minimum from the end ``smin``, and the scaled bound ``dw``; ``lo``,
        ``hi``: row bounds. Returns (column values, row duals), or None.

        Besides its W columns a window has two aggregate columns: the regions below it
        (bounds [0, their demand], the cost of the last of them) and above it ([0, their
        demand], the cost of the first): a relaxation of the full LP, so feasible where
        that is. Its solution is the full LP's optimum where the aggregates sit at the
        fixed values (below: full, above: zero) and every fixed column's reduced cost has
        the sign of its bound (checked on the largest cost below the window and the
        smallest above it); else the windows move to the level's breakpoint.
        """
        red = self._red
        assert red is not None
        h = self._highs
        W, nw = red.W, red.n_win
        seg, end = red.wseg[:-1], red.wseg[1:]
        c0 = np.concatenate([[0.0], np.cumsum(dw)])
        ar = np.arange(W)
        zeros = np.zeros(red.n_wcols)
        self._window_iters = 0
        for _ in range(_WINDOW_ROUNDS):
            s = self._wstart
            lo_pos, hi_pos = seg + s, seg + s + W  # first position in and past the window
            has_below, has_above = s > 0, hi_pos < end
            i_below, i_above = np.maximum(lo_pos - 1, 0), np.minimum(hi_pos, end - 1)
            idx = lo_pos[:, None] + ar  # (n_win, W) positions in the flat arrays
            below = c0[lo_pos] - c0[seg]
            above = c0[end] - c0[hi_pos]
            c_agg = np.concatenate(
                [np.where(has_below, ctw[i_below], 0.0), np.where(has_above, ctw[i_above], 0.0)]
            )
            h.changeColsCost(
                red.n_cols, self._cols, np.concatenate([cost, ctw[idx].ravel() * sc, c_agg * sc])
            )
            h.changeColsBounds(
                red.n_wcols, red.w_cols, zeros, np.concatenate([dw[idx].ravel(), below, above])
            )
            h.changeRowsBounds(lo.size, self._rows, lo, hi)
            col, row_dual = self._run(t)
            self._window_iters += self._iterations(h)
            theta = row_dual[red.wrow] - row_dual[red.wrow + 1]
            # fixed at their demand below (reduced cost <= 0), at zero above (>= 0)
            bad = (has_below & (pmax[i_below] * sc - theta > _RC_TOL)) | (
                has_above & (smin[i_above] * sc - theta < -_RC_TOL)
            )
            agg = col[red.n_cols - 2 * nw :]
            off = (agg[:nw] < below - _X_TOL) | (agg[nw:] > _X_TOL)
            if not off.any() and not bad.any():
                return col, row_dual
            # an aggregate off its fixed value: the level's total S lies outside the
            # window; start where the greedy fill of S stops (regions filled before it)
            win = col[red.n_cols - red.n_wcols : red.n_cols - 2 * nw].reshape(nw, W)
            total = agg[:nw] + win.sum(axis=1) + agg[nw:]
            cum = c0[1:] - c0[seg][red.flat_w]  # demand up to each position, per window
            filled = np.bincount(red.flat_w, cum <= total[red.flat_w] + _X_TOL, minlength=nw)
            rc = ctw * sc - theta[red.flat_w]  # reduced costs at every position
            new = np.where(off, self._centred_at(filled), np.where(bad, self._centred(rc), s))
            if np.array_equal(new, s):
                return None
            self._move_windows(new)
        return None

    @staticmethod
    def _iterations(h: Any) -> int:
        """Simplex iterations of HiGHS instance ``h``'s last run."""
        return int(h.getInfoValue("simplex_iteration_count")[1])

    def _centred(self, rc: np.ndarray) -> np.ndarray:
        """Window starts centred on each level's breakpoint by the duals: the count of
        positions of negative reduced cost (those belong at their upper bound)."""
        red = self._red
        assert red is not None
        return self._centred_at(np.bincount(red.flat_w, rc < 0, minlength=red.n_win))

    def _centred_at(self, breakpoint: np.ndarray) -> np.ndarray:
        """Window starts centred on the positions ``breakpoint`` (per window)."""
        red = self._red
        assert red is not None
        b = np.asarray(breakpoint).astype(np.int64)
        return np.clip(b - red.W // 2, 0, red.wn - red.W)

    def _move_windows(self, new: np.ndarray) -> None:
        """Move the windows to start at ``new``, carrying the basis over: a column that
        stays keeps its status, one entering from below its old window starts at its
        upper bound, from above at zero (cold where a basic column would leave)."""
        from eqglb._highs import basis_status

        red = self._red
        assert red is not None
        h = self._highs
        old = self._wstart
        self._wstart = np.asarray(new, dtype=np.int64)
        cols, rows = basis_status(h)  # valid: the last run was optimal
        W = red.W
        first = red.n_cols - red.n_wcols
        blk = cols[first : first + red.n_win * W].reshape(red.n_win, W).astype(np.int64)
        ar = np.arange(W)[None, :]
        i_old = ar + (self._wstart - old)[:, None]
        inside = (i_old >= 0) & (i_old < W)
        kept = np.take_along_axis(blk, np.clip(i_old, 0, W - 1), axis=1)
        fill = np.where(self._wstart[:, None] + ar < old[:, None], _UPPER, _LOWER)
        cols[first : first + red.n_win * W] = np.where(inside, kept, fill).ravel()
        h.clearSolver()
        if int((cols == _BASIC).sum() + (rows == _BASIC).sum()) == red.n_row:
            _apply_basis(h, cols, rows)

    def _solve_full(self, t: int, gamma: np.ndarray, ctw: np.ndarray) -> SlotResult:
        """Slot t by the same reduced LP without windows, from scratch (so the result
        depends on (t, gamma) alone); the windows then start at its breakpoints and the
        windowed LP's next solve is cold."""
        full = self._full
        if full is None:
            kw = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
            kw.update(window=0, _highs=None)
            full = self._full = CompactLP(**kw)
        full.set_basis(None)
        res = full.solve_slot(t, gamma)
        red = self._red
        assert red is not None
        row_dual = np.asarray(full._solver().getSolution().row_dual)
        theta = row_dual[red.wrow] - row_dual[red.wrow + 1]
        self._wstart = self._centred(ctw - theta[red.flat_w])
        self._highs.clearSolver()
        self.window_fallbacks += 1
        return res

    def even_split(self, z: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Compact y columns [requests/slot] giving every region of a class the class's
        model mix, in proportion to its demand ``d`` (J,) [requests/slot].

        ``y[j, k] = d[j] * Y[c(j), k] / D[c(j)]`` with ``Y`` the class totals of ``z``
        and ``D`` the class demand. Any split of the class totals is feasible and has
        the same cost outside the quality term; the LP's own split (:meth:`solve_slot`)
        is a vertex that gives the best models to the regions of highest quality price
        first, all or nothing. Master columns of even splits let the master balance the
        regions of a class without mixing many such vertices.
        """
        K = self.shape[3]
        C = self.n_classes
        Y = np.bincount(self._zkey, z, minlength=C * K).reshape(C, K)
        D = np.bincount(self.region_class, d, minlength=C)
        share = np.divide(Y, D[:, None], out=np.zeros_like(Y), where=D[:, None] > 0)
        return d[self.yj] * share.ravel()[self._ykey]

    def totals(self, t: int, y: np.ndarray, z: np.ndarray) -> dict[str, np.ndarray]:
        """Regional totals of every burden of a compact solution of slot t."""
        T, N, J, K = self.shape
        zi, zf = self.zi, self._zflat
        out: dict[str, np.ndarray] = {}
        for name, b in BURDENS.items():
            if b.side == "region":
                out[name] = np.bincount(self.yj, self._yq * y, minlength=J)
            elif name in self.site:
                out[name] = np.bincount(zi, self.site[name][t].ravel()[zf] * z, minlength=N)
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


# ---------------------------------------------------------------------------- reduced form
@dataclass(eq=False)
class _Reduced:
    """The slot LP without region rows, exact when quality is rank one.

    With ``quality[j, k] = w[j] loss[k]`` every region-side cost is
    ``beta[j, k] = v[j] loss[k]`` (``v`` depends on the prices, not on the model). Order
    the models a class hosts by loss, ascending: ``k_1, ..., k_m``, and write a region's
    split as cumulative amounts ``t[j, p] = sum_{q <= p} y[j, k_q]`` (p < m), so
    ``y[j, k_p] = t[j, p] - t[j, p - 1]`` with ``t[j, 0] = 0`` and ``t[j, m] = d[j]``.
    Its cost is ``beta[j, k_m] d[j] + sum_p (beta[j, k_p] - beta[j, k_p+1]) t[j, p]`` and
    the region row becomes the bounds ``0 <= t[j, p] <= d[j]``. The monotonicity
    ``t[j, p - 1] <= t[j, p]`` (that is ``y >= 0``) is dropped: for fixed class totals
    ``S_p = sum_{q <= p} Y[c, k_q]`` (non-decreasing, as ``z >= 0``) each p is a knapsack
    ``min sum_j v[j] (loss_p - loss_p+1) t[j, p]`` s.t. ``sum_j t[j, p] = S_p`` whose
    greedy solution (regions by v, descending, the same order for every p) is monotone
    in p, so the relaxation has the same optimum and :meth:`recover` rebuilds an optimal
    ``y >= 0`` from the class totals of ``z`` alone. Rows per class: one per hosted
    model (the links), instead of one per region plus one per hosted model; a class of a
    single region uses routes directly (its z with cost ``alpha + beta``, one row).

    Columns: the z columns of :class:`CompactLP` (same order), then the t columns.
    Rows: one per single-region class, one per (class, hosted model) of the others, then
    the capacity rows.
    """

    lp: CompactLP
    loss: np.ndarray  # (K,)
    single: np.ndarray  # (C,) bool: the class is one region, solved by routes
    region_of: np.ndarray  # (C,) that region (single classes), -1 otherwise
    models: np.ndarray  # (C, K) hosted models by loss ascending, -1 padded
    n_models: np.ndarray  # (C,)
    tj: np.ndarray  # (n_t,) region of each t column
    tk0: np.ndarray  # (n_t,) model k_p
    tk1: np.ndarray  # (n_t,) model k_p+1
    route_row: np.ndarray  # (C,) row of a single class, -1 otherwise
    class_row: np.ndarray  # (C,) first link row of a class, -1 for single classes
    A: sp.csc_matrix
    n_row: int
    n_cap: int
    # windows, one per (windowed class, level p): W columns each, after the t columns
    W: int
    wc: np.ndarray  # (n_win,) class
    wrow: np.ndarray  # (n_win,) link row of level p (the column's -1 is in the next)
    wk0: np.ndarray  # (n_win,) model k_p
    wk1: np.ndarray  # (n_win,) model k_p+1
    wn: np.ndarray  # (n_win,) regions of the class (positions of the window's level)
    wseg: np.ndarray  # (n_win + 1,) offsets of each window's positions in the flat arrays
    flat_w: np.ndarray  # (L,) window of each flat position
    flat_pos: np.ndarray  # (L,) position within its class's regions by price
    cls_first: np.ndarray  # (C,) first index of a class among regions sorted by class
    last_class_pos: np.ndarray  # (C, K) bool: position p >= m - 1 of the class
    model_flat: np.ndarray  # (C, K) flat index into (C, K) of the class's p-th model
    y_pick: np.ndarray  # (ny,) each y column in [yp (J x K) by position, Y (C x K)]

    @property
    def n_t(self) -> int:
        return int(self.tj.size)

    @property
    def n_win(self) -> int:
        return int(self.wc.size)

    @property
    def n_wcols(self) -> int:
        """Window columns: W per window, then one aggregate column per window for the
        regions below it and one for those above it."""
        return self.n_win * (self.W + 2)

    @property
    def n_cols(self) -> int:
        return self.lp.nz + self.n_t + self.n_wcols

    @property
    def t_cols(self) -> np.ndarray:
        return np.arange(self.lp.nz, self.lp.nz + self.n_t, dtype=np.int32)

    @property
    def w_cols(self) -> np.ndarray:
        return np.arange(self.n_cols - self.n_wcols, self.n_cols, dtype=np.int32)

    def shape_of(self) -> tuple[sp.csc_matrix, int, int]:
        return self.A, self.n_cols, self.n_row

    def region_order(self, beta: np.ndarray) -> np.ndarray:
        """Regions by class, then by quality price ``v`` descending, then by index: the
        greedy order of every level's knapsack (:meth:`recover`)."""
        J = self.lp.shape[2]
        nl = float(self.loss @ self.loss)
        v = beta @ self.loss / nl if nl > 0 else np.zeros(J)
        return np.lexsort((np.arange(J), -v, self.lp.region_class))

    @classmethod
    def build(cls, lp: CompactLP) -> _Reduced | None:
        """The reduced form of ``lp``, or None where it is not exact."""
        T, N, J, K = lp.shape
        Q = np.asarray(lp.quality, dtype=float)
        scale = float(np.abs(Q).max()) if Q.size else 0.0
        if scale == 0.0:
            loss, w = np.zeros(K), np.zeros(J)
        else:
            j0 = int(np.argmax(np.abs(Q).sum(axis=1)))
            loss = Q[j0] / np.abs(Q[j0]).max()
            w = Q @ loss / float(loss @ loss)
            if float(np.abs(Q - np.outer(w, loss)).max()) > 1e-12 * scale:
                return None  # not rank one
        C = lp.n_classes
        kok: np.ndarray = np.asarray(lp.hosted.any(axis=1))  # (C, K)
        n_models = kok.sum(axis=1)
        if np.any(n_models == 0):
            return None  # a class that cannot be served: leave it to the compact LP
        order = np.argsort(loss, kind="stable")
        models = np.full((C, K), -1)
        pos = np.full((C, K), -1)
        for c in range(C):
            ks = order[kok[c, order]]
            models[c, : ks.size] = ks
            pos[c, ks] = np.arange(ks.size)
        size = np.bincount(lp.region_class, minlength=C)
        single = size == 1
        W = int(lp.window)
        windowed = (~single) & (n_models >= 2) & (size > 2 * W) if W > 0 else np.zeros(C, bool)
        region_of = np.full(C, -1)
        region_of[lp.region_class[single[lp.region_class]]] = np.flatnonzero(
            single[lp.region_class]
        )
        # rows
        route_row = np.full(C, -1)
        class_row = np.full(C, -1)
        r = 0
        for c in range(C):
            if single[c]:
                route_row[c] = r
                r += 1
            else:
                class_row[c] = r
                r += int(n_models[c])
        n_link = r
        n_cap = N if lp.shared else N * K
        n_row = n_link + n_cap
        # t columns: regions of multi-region classes, p = 0 .. m - 2
        cls_j = lp.region_class
        multi_j = np.flatnonzero(~single[cls_j] & ~windowed[cls_j])
        m_j = n_models[cls_j[multi_j]]
        tj = np.repeat(multi_j, np.maximum(m_j - 1, 0))
        tp = np.concatenate([np.arange(m - 1) for m in m_j]) if multi_j.size else np.zeros(0)
        tp = tp.astype(int)
        tc = cls_j[tj]
        tk0, tk1 = models[tc, tp], models[tc, tp + 1]
        # matrix
        nz = lp.nz
        zc, zi, zk = lp.zc, lp.zi, lp.zk
        z_link = np.where(single[zc], route_row[zc], class_row[zc] + pos[zc, zk])
        z_val = np.where(single[zc], 1.0, -1.0)
        cap_row = n_link + (zi if lp.shared else zi * K + zk)
        n_t = tj.size
        # windows: per windowed class, one per level p = 0 .. m - 2
        wc = np.repeat(np.flatnonzero(windowed), np.maximum(n_models[windowed] - 1, 0))
        levels = [np.arange(n_models[c] - 1) for c in np.flatnonzero(windowed)]
        wp = np.concatenate(levels).astype(int) if levels else np.zeros(0, dtype=int)
        wrow = class_row[wc] + wp
        wn = size[wc]
        wseg = np.concatenate([[0], np.cumsum(wn)]).astype(np.int64)
        flat_w = np.repeat(np.arange(wc.size), wn)
        flat_pos = np.arange(flat_w.size) - wseg[flat_w]
        cls_first = np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64)
        n_wc = wc.size * (W + 2)
        w_row = np.concatenate([np.repeat(wrow, W), wrow, wrow])
        c_t = nz + np.arange(n_t)
        c_w = nz + n_t + np.arange(n_wc)
        rows = np.concatenate(
            [z_link, cap_row, class_row[tc] + tp, class_row[tc] + tp + 1, w_row, w_row + 1]
        )
        cols = np.concatenate([np.arange(nz), np.arange(nz), c_t, c_t, c_w, c_w])
        vals = np.concatenate(
            [z_val, lp.cap_coef[zk], np.ones(n_t), -np.ones(n_t), np.ones(n_wc), -np.ones(n_wc)]
        )
        A = sp.csc_matrix((vals, (rows, cols)), shape=(n_row, nz + n_t + n_wc))
        last_class_pos = np.arange(K)[None, :] >= (n_models - 1)[:, None]
        model_flat = np.arange(C)[:, None] * K + np.maximum(models, 0)
        yc = cls_j[lp.yj]
        y_pick = np.where(single[yc], J * K + yc * K + lp.yk, lp.yj * K + pos[yc, lp.yk])
        return cls(
            lp,
            loss,
            single,
            region_of,
            models,
            n_models,
            tj,
            tk0,
            tk1,
            route_row,
            class_row,
            A,
            n_row,
            n_cap,
            W,
            wc,
            wrow,
            models[wc, wp],
            models[wc, wp + 1],
            wn,
            wseg,
            flat_w,
            flat_pos,
            cls_first,
            last_class_pos,
            model_flat,
            y_pick,
        )

    def costs(self, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """Costs of the z and t columns at slot costs alpha (N, K), beta (J, K)
        [USD/request] (a window's columns are set per solve by :class:`CompactLP`)."""
        lp = self.lp
        cz = alpha[lp.zi, lp.zk].copy()
        s = self.single[lp.zc]
        cz[s] += beta[self.region_of[lp.zc[s]], lp.zk[s]]
        ct = beta[self.tj, self.tk0] - beta[self.tj, self.tk1]
        return np.concatenate([cz, ct])

    def row_bounds(self, d: np.ndarray, cap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row bounds at (scaled) demand ``d`` (J,) and capacity ``cap``."""
        lp = self.lp
        n_link = self.n_row - self.n_cap
        rhs = np.zeros(n_link)
        s = self.single
        rhs[self.route_row[s]] = d[self.region_of[s]]
        total = np.bincount(lp.region_class, d, minlength=lp.n_classes)
        m = ~s
        rhs[self.class_row[m] + self.n_models[m] - 1] = -total[m]
        lo = np.concatenate([rhs, np.full(self.n_cap, -np.inf)])
        hi = np.concatenate([rhs, cap])
        return lo, hi

    def recover(self, z: np.ndarray, d: np.ndarray, order: np.ndarray) -> np.ndarray:
        """Compact y columns [requests/slot] of an optimal z (class docstring); ``order``
        is :meth:`region_order` of the slot's beta (the greedy order of every knapsack)."""
        lp = self.lp
        T, N, J, K = lp.shape
        C = lp.n_classes
        Y = np.bincount(lp._zkey, z, minlength=C * K).reshape(C, K)
        # class totals by position p of the hosted models (loss ascending)
        Yp = np.where(self.models >= 0, Y.ravel()[self.model_flat], 0.0)
        S = np.cumsum(Yp, axis=1)  # (C, K)
        S[self.last_class_pos] = np.inf  # past the last model: all of d (clipped below)
        cls_j = lp.region_class
        ds = d[order]
        cs = np.cumsum(ds)
        first = self.cls_first  # first sorted index per class (sorted by class first)
        base = np.where(first > 0, cs[np.maximum(first - 1, 0)], 0.0)
        before = np.empty(J)
        before[order] = cs - ds - base[cls_j[order]]
        tcum = S[cls_j] - before[:, None]  # (J, K), clipped to [0, d]
        np.maximum(tcum, 0.0, out=tcum)
        np.minimum(tcum, d[:, None], out=tcum)
        yp = np.empty_like(tcum)  # (J, K) by position: the differences of tcum
        yp[:, 0] = tcum[:, 0]
        np.subtract(tcum[:, 1:], tcum[:, :-1], out=yp[:, 1:])
        # y column (j, k): yp[j, position of k], or its class total for a one-region class
        return np.clip(np.concatenate([yp.ravel(), Y.ravel()])[self.y_pick], 0.0, None)
