r"""Online equitable GLB by dual mirror descent (DMD) with auxiliary variables.

The offline problem (docs/model.md) is

    min_y  sum_t e_t(y_t) + F( sum_t g_t(y_t) ),

with ``e_t`` the slot's energy cost [USD], ``g_t(y_t)`` the slot's increments of every
regional cost (carbon and water per data centre, quality loss per region) and
``F = mu_c ||.||_qc + mu_w ||.||_qw + mu_s ||.||_qs`` (or the combined environmental norm).
Introduce budgets ``z_t`` with ``sum_t g_t <= sum_t z_t`` and a price ``gamma_r >= 0`` per
regional cost. The Lagrangian separates by slot:

    sum_t [ e_t(y_t) + gamma . g_t(y_t) ]  +  sum_t [ f(z_t) - gamma . z_t ].

**Scale of the per-slot regulariser.** Following Balseiro, Lu and Mirrokni (regularised
online allocation, 2021), the regulariser of the horizon's total is written as T times a
per-slot regulariser of the average slot: ``F(sum_t z_t) = T f(mean_t z_t)`` with
``f(z) = F(T z) / T``. Every term of ``F`` is a norm, positively homogeneous of degree 1,
so ``F(T z) / T = F(z)``: the per-slot regulariser is ``F`` itself with unchanged weights
``mu``, and its conjugate is the indicator of the dual ball

    C = { gamma >= 0 : ||gamma_group||_{q*} <= mu_group for every group },  1/q + 1/q* = 1.

(For q = inf a group's prices lie in the simplex scaled by mu: the offline dual optimum
spreads mu over the regions that attain the maximum; for q = 1 every price is mu, and the
online policy is then exactly optimal.) The averaged quality cost ``S_j = sum_t s y /
Lambda_j`` is homogeneous in the same way once ``Lambda_j``, region j's demand over the
horizon, is fixed; online it is replaced by the **running estimate** ``Lambda_j(t) =
T / (t + 1) * sum_{s <= t} demand[s, j]`` (the mean demand so far times the horizon), or
by a user's forecast ``horizon_demand``.

**One slot** (docs/model.md steps 1-3):

1. ``y_t = argmin_y e_t(y) + p_t . g_t(y)`` over the slot's feasible set, with prices
   ``p_t`` (below): the LP of :mod:`eqglb.online.slot_solver`, solved exactly.
2. Auxiliary step and 3. dual step on the DMD iterate ``gamma``, two variants (``aux``):

   * ``"proximal"`` (default): the auxiliary budget is taken at the *new* dual (an implicit,
     proximal step on the conjugate ``f*``). By Moreau's decomposition the update becomes

         gamma_{t+1} = argmin_gamma  -gamma . g_t + f*(gamma) + sum_r (gamma_r - gamma_t,r)^2 / (2 eta_r)
                     = Proj_C^{diag(1/eta)} (gamma_t + eta * g_t),

     the projection onto ``C`` in the step-size metric; the auxiliary budget is the
     projection residual ``z_t = (gamma_t + eta g_t - gamma_{t+1}) / eta``, which solves
     ``min_z f(z) - gamma_{t+1} . z``. Closed forms: q = 1, clipping to ``[0, mu]``;
     q = inf, a weighted projection onto the capped simplex ``{gamma >= 0, sum gamma <=
     mu}`` (one sort); general q, ``gamma_r = u_r w_r`` with ``w_r`` the root of
     ``w + a_r w^{q*-1} = 1``, ``a_r = eta_r theta q* u_r^{q*-2}`` (monotone Newton, no
     bracketing needed) and ``theta`` found by Brent's method so that the group's
     q*-norm equals mu.
   * ``"explicit"``: docs/model.md's literal steps, ``z_t = argmin_{0 <= z <= z_max} f(z) -
     gamma_t . z`` then ``gamma_{t+1} = max(0, gamma_t + eta (g_t - z_t))``. Closed forms
     for q = 1 (``z_r = z_max,r`` where ``gamma_r > mu``, else 0) and q = inf (a common
     level ``m``, ``z_r = min(m, z_max,r)``, m the smallest breakpoint where
     ``mu - sum_{z_max,r > m} gamma_r >= 0``). Other q use ``aux="proximal"``.
     ``z_max`` defaults to the largest increment the slot allows: for a data centre,
     ``max_k coef[i,k] * min(capacity / r_k, demand that may reach it)``; for a region,
     ``max_k quality[j,k] * demand[j]`` (computed each slot from that slot's data).

**Step sizes** (``step``), per price ``r`` of group ``g`` with weight ``mu_g``; ``B_g`` is
the running maximum (over slots so far) of the largest per-slot increment of the group, so
``eta * g / B_g`` is a dimensionless fraction of the dual radius ``mu_g``:

* ``"constant"``: ``eta_r = eta * mu_g / B_g``;
* ``"sqrt"``: ``eta_r = eta * mu_g / (B_g * sqrt(n))``, n the number of slots decided;
* ``"adaptive"`` (default): AdaGrad per coordinate, ``eta_r = eta * mu_g /
  sqrt(sum_{s <= t} g_{s,r}^2)``. Projected dual ascent with these steps has regret
  ``O(D sqrt(sum_t ||g_t||^2))`` for a dual set of diameter ``D ~ mu`` (Duchi, Hazan and
  Singer, 2011); it needs no bound on the increments, is invariant to the units of each
  regional cost, gives busy regions (large increments) smaller steps than idle ones and
  decays like ``1/sqrt(t)`` when the increments are stationary.

**Remaining-horizon correction** (``horizon_gain``, default 1; 0 gives the plain DMD of
docs/model.md). The objective charges the regional costs of the *whole* horizon, so the right
price at slot t depends on the costs already incurred, ``X_t``. The problem left at slot t
has the dual ``max_{gamma in C} gamma . X_t + sum_{s >= t} D_s(gamma)``, ``D_s`` the
slot's Lagrangian dual function. DMD's iterate ``gamma_t`` estimates the maximiser of the
per-slot dual; replacing the R remaining dual functions by a concave quadratic around it,
``- R B_g / (2 kappa mu_g) ||gamma - gamma_t||^2``, gives the prices

    p_t = Proj_C( gamma_t + kappa mu_g / (B_g R_t) * X_t ),   R_t = T - t + 1,

with ``kappa = horizon_gain``. Early in the horizon (R large) ``p_t ~ gamma_t``; towards its
end the prices move to the regions whose incurred costs are largest, which are the ones
the final norm will charge. ``X_t`` is carbon and water per data centre (or the combined
cost), and the quality loss per region so far divided by ``Lambda_j(t)``.

**Initial prices** (``init``): ``"uniform"`` (default) puts each group on the point of ``C``
that prices equal regional costs, ``gamma = mu n^{1/q - 1}`` (the gradient of ``mu ||v||_q``
at ``v = (1, ..., 1)``; ``mu / n`` for q = inf, ``mu`` for q = 1); it uses no data. ``"zero"``
starts from the Energy policy. ``init`` may also be a mapping ``{group: array}`` of
prices learnt before the horizon.

Defaults (``step="adaptive"``, ``eta=0.1``, ``horizon_gain=1``) were chosen on the built-in
scenario and on egl-2022; ``benchmarks/bench_online.py`` reports the sensitivity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eqglb.burdens import burden, datacenter_burdens
from eqglb.costs import Objective
from eqglb.fields import signal_or_default
from eqglb.online.projection import aux_explicit, project_dual, project_dual_uniform
from eqglb.online.slot_solver import SlotSolver
from eqglb.online.state import (
    base_state,
    check_fingerprint,
    fingerprint,
    objective_to_config,
    policy_kwargs,
    restore_base,
)
from eqglb.online.switching import SwitchingSlotLP, check_change_limit
from eqglb.scenario import ScenarioError

__all__ = ["STEP_RULES", "OnlineDMD", "aux_explicit", "project_dual"]

STEP_RULES = ("constant", "sqrt", "adaptive")
AUX_RULES = ("proximal", "explicit")
#: Default eta per step rule (dimensionless, fraction of the dual radius mu per step).
DEFAULT_ETA = {"constant": 0.01, "sqrt": 0.1, "adaptive": 0.1}


# ----------------------------------------------------------------------------- groups
@dataclass(frozen=True)
class _Group:
    """One norm term of the regulariser: its prices live on datacenters or regions."""

    name: str  # a burden (carbon, water, health, social) or environment
    on: str  # datacenter | region
    mu: float  # weight of the norm [USD per unit of the group's cost]
    q: float


def _groups(obj: Objective, has_quality: bool) -> list[_Group]:
    """The norm terms of ``obj``, data-centre groups first (registry order), then regions."""
    g: list[_Group] = []
    env = [k for k, t in obj.terms.items() if burden(k).combinable and t.mu > 0]
    if obj.combined_environment and env:
        g.append(_Group("environment", "datacenter", 1.0, obj.q_carbon))
    for name, t in obj.active():
        b = burden(name)
        if b.side != "datacenter" or (obj.combined_environment and b.combinable):
            continue
        g.append(_Group(name, "datacenter", t.mu, t.q))
    for name, t in obj.active():
        if burden(name).side == "region" and has_quality:
            g.append(_Group(name, "region", t.mu, t.q))
    return g


def site_coefficient(view: Any, name: str, t: int) -> np.ndarray:
    """Per-request coefficient (datacenter, model) of data-centre burden ``name`` at slot t
    [unit/request]: the view's own (``view.carbon``) or from its signals and the registry."""
    try:
        return np.asarray(getattr(view, name)[t])
    except AttributeError:
        pass
    b = burden(name)

    def get(field: str) -> Any:  # a view without an optional signal: not modelled (0)
        return np.asarray(signal_or_default(view, field, lambda: view.shape[0], at=t))

    return b.site_factor(get)[:, None] * np.asarray(view.energy_per_request)


def _reciprocal(a: np.ndarray) -> np.ndarray:
    """``1 / a`` where ``a > 0``, else 0 (the same bits as ``np.divide(..., where=)``)."""
    if (a > 0).all():
        return 1.0 / a
    return np.divide(1.0, a, out=np.zeros_like(a), where=a > 0)


# ----------------------------------------------------------------------------- policy
@dataclass
class OnlineDMD:
    """Online equitable GLB: dual mirror descent with auxiliary variables (module docstring).

    Parameters
    ----------
    objective : Objective
        Weights [USD per unit] and norm orders q (any q >= 1, inf included).
    step : {"constant", "sqrt", "adaptive"}
        Step-size rule (module docstring).
    eta : float, optional
        Dimensionless step scale; default 0.05 (constant), 0.5 (sqrt, adaptive).
    z_max : mapping, optional
        ``aux="explicit"`` only: fixed bound per group (``{"carbon": kg, "water": L,
        "environment": USD, "social": -}``, a number or an array over the group's
        datacenters/regions) on the per-slot budgets; default: each slot's largest possible
        increment.
    aux : {"proximal", "explicit"}
        Auxiliary/dual step (module docstring).
    init : {"uniform", "zero"} or mapping
        Initial prices (module docstring).
    horizon_gain : float
        Weight ``kappa`` >= 0 of the remaining-horizon correction (module docstring);
        0 gives the plain DMD of docs/model.md.
    horizon_demand : array (region,), optional
        Forecast of each region's demand over the horizon [requests], used for the averaged
        quality cost; default: the running estimate.
    greedy : bool
        Let the slot solver try the greedy path first (exact either way).
    max_change : float, optional
        Hard per-slot change limit [-]: the share of each region's requests that may change
        destination (data centre or model) from one slot to the next, in [0, 1]
        (:mod:`eqglb.online.switching`; where capacity forces more, the least excess is
        taken and counted in ``run_stats()["change_limit"]``). None (default): no limit.
        The objective's ``switching_cost`` [USD per request moved] is priced in every
        slot's decision whenever it is positive (docs/switching.md).
    window : int, optional
        Fairness window [slots] for a service without a horizon: the regional burdens are
        accounted over calendar windows of this many slots (slots ``[kW, (k+1)W)``), each
        window priced as if it were the horizon (its remaining slots drive the horizon
        correction, quality averages use the demand seen in the window). The prices
        (duals), AdaGrad sums and scales carry across window boundaries; the burdens
        incurred restart at 0. ``view.n_time`` is not read. None (default): one window,
        the scenario's horizon.
    name : str
        Label of the dispatch.
    """

    objective: Objective = field(default_factory=Objective)
    step: str = "adaptive"
    eta: float | None = None
    z_max: Mapping[str, Any] | None = None
    aux: str = "proximal"
    init: Any = "uniform"
    horizon_gain: float = 1.0
    horizon_demand: Any = None
    greedy: bool = True
    window: int | None = None
    max_change: float | None = None
    name: str = "online"

    solver_name = "HiGHS per slot (greedy first)"

    def __post_init__(self) -> None:
        if self.step not in STEP_RULES:
            raise ValueError(f"step {self.step!r}; use one of {STEP_RULES}")
        if self.aux not in AUX_RULES:
            raise ValueError(f"aux {self.aux!r}; use one of {AUX_RULES}")
        if self.eta is None:
            self.eta = DEFAULT_ETA[self.step]
        self.eta = float(self.eta)
        if not (math.isfinite(self.eta) and self.eta > 0):
            raise ValueError(f"eta = {self.eta!r}; give a finite step scale > 0")
        if self.aux == "explicit":
            for g in _groups(self.objective, True):
                if not (g.q == 1.0 or math.isinf(g.q)):
                    raise ValueError(
                        f"aux='explicit' needs q in {{1, inf}}; the {g.name} term "
                        f"has q = {g.q:g} (use aux='proximal')"
                    )
        elif self.z_max is not None:
            raise ValueError(
                "z_max bounds the explicit auxiliary step; with aux='proximal' "
                "the budgets are unbounded (projection onto the dual ball)"
            )
        self.horizon_gain = float(self.horizon_gain)
        if not (math.isfinite(self.horizon_gain) and self.horizon_gain >= 0):
            raise ValueError(f"horizon_gain = {self.horizon_gain!r}; give a finite number >= 0")
        if self.window is not None:
            if isinstance(self.window, bool) or int(self.window) != self.window or self.window < 1:
                raise ValueError(f"window = {self.window!r}; give a whole number of slots >= 1")
            self.window = int(self.window)
        self.max_change = check_change_limit(self.max_change)
        if isinstance(self.init, str) and self.init not in ("uniform", "zero"):
            raise ValueError(f"init {self.init!r}; use 'uniform', 'zero' or a mapping of prices")
        self.reset()

    # ------------------------------------------------------------------ config / state
    def config(self) -> dict[str, Any]:
        """Constructor arguments as a JSON-ready dict."""

        def arr(x: Any) -> Any:
            if isinstance(x, Mapping):
                return {k: arr(v) for k, v in x.items()}
            return (
                np.asarray(x, dtype=float).tolist()
                if x is not None and not isinstance(x, str)
                else x
            )

        return {
            "objective": objective_to_config(self.objective),
            "step": self.step,
            "eta": self.eta,
            "z_max": arr(self.z_max),
            "aux": self.aux,
            "init": arr(self.init),
            "horizon_gain": self.horizon_gain,
            "horizon_demand": arr(self.horizon_demand),
            "greedy": self.greedy,
            **({"window": self.window} if self.window is not None else {}),
            **({"max_change": self.max_change} if self.max_change is not None else {}),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> OnlineDMD:
        return cls(**policy_kwargs(cfg))

    def reset(self) -> None:
        """Forget everything learnt: back to slot 0."""
        self.slots_done = 0
        self._fp: dict[str, Any] | None = None
        self._solver: SlotSolver | None = None
        self._groups: list[_Group] = []
        self.gamma: dict[str, np.ndarray] = {}
        self._sumsq: dict[str, np.ndarray] = {}
        self._scale: dict[str, float] = {}
        self.cumulative: dict[str, np.ndarray] = {}
        #: burdens of the last closed fairness window (``window`` only)
        self.last_window: dict[str, np.ndarray] = {}
        self._counts = {"greedy": 0, "highs": 0}
        self._prices: dict[str, np.ndarray] = {}
        self._switching: SwitchingSlotLP | None = None
        #: routing fractions of the last slot decided (route order of the slot solver) [-]
        self._f_prev: np.ndarray | None = None
        self._limit = {"slots_over": 0, "excess_requests": 0.0, "moved_requests": 0.0}

    def state(self) -> dict[str, Any]:
        """JSON-ready state: prices, AdaGrad sums, scales, cumulative costs, counters."""
        lst = lambda d: {k: v.tolist() for k, v in d.items()}  # noqa: E731
        out = {
            **base_state("OnlineDMD", self, self._counts),
            "duals": lst(self.gamma),
            "sumsq": lst(self._sumsq),
            "scale": dict(self._scale),
        }
        if self._smooth and self._f_prev is not None:
            out["previous_fractions"] = self._f_prev.tolist()
            out["change_limit"] = dict(self._limit)
        return out

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state` (the configuration stays the constructor's)."""
        self._counts = restore_base("OnlineDMD", self, state)
        arr = lambda d: {k: np.asarray(v, dtype=float) for k, v in d.items()}  # noqa: E731
        self.gamma = arr(state.get("duals", {}))
        self._sumsq = arr(state.get("sumsq", {}))
        self._scale = {k: float(v) for k, v in state.get("scale", {}).items()}
        if "previous_fractions" in state:
            self._f_prev = np.asarray(state["previous_fractions"], dtype=float)
            self._limit = dict(state.get("change_limit", self._limit))
        elif self._smooth and self.slots_done > 0:
            raise ScenarioError(
                "policy state: it has no previous routing fractions, which a policy with "
                "a switching cost or change limit needs to resume; it was saved by a policy "
                "without them"
            )

    @property
    def _smooth(self) -> bool:
        """Whether decisions depend on the previous slot's routing (switching or limit)."""
        return self.objective.switching_cost > 0 or self.max_change is not None

    def run_stats(self) -> dict[str, Any]:
        return {
            **({"change_limit": dict(self._limit)} if self._smooth else {}),
            "slot_solves": dict(self._counts),
            "final_duals": {k: v.tolist() for k, v in self.gamma.items()},
            "final_prices": {k: v.tolist() for k, v in self._prices.items()},
        }

    # ------------------------------------------------------------------ setup
    def _setup(self, view: Any) -> None:
        N, J, K = view.shape
        if self._fp is None:
            self._fp = fingerprint(view)
        else:
            check_fingerprint(self._fp, view)
        self._solver = SlotSolver(
            view.allowed, view.capacity_per_request, view.capacity_mode, greedy=self.greedy
        )
        s = self._solver
        self._reach_dk = np.asarray(view.allowed, dtype=float)  # (N, J, K)
        self._groups = _groups(self.objective, bool(np.any(np.asarray(view.quality_loss) > 0)))
        sizes = {"datacenter": N, "region": J}
        for g in self._groups:
            n = sizes[g.on]
            if g.name not in self.gamma:
                self.gamma[g.name] = self._initial(g, n)
            if self.gamma[g.name].shape != (n,):
                raise ScenarioError(
                    f"policy state: duals of {g.name!r} have shape "
                    f"{self.gamma[g.name].shape}; expected ({n},)"
                )
            self._sumsq.setdefault(g.name, np.zeros(n))
        for key in (b.name for b in datacenter_burdens()):
            if key in ("carbon", "water") or self.objective.terms[key].mu > 0:
                self.cumulative.setdefault(key, np.zeros(N))
        for key in ("quality", "demand"):
            self.cumulative.setdefault(key, np.zeros(J))
        if self.horizon_demand is not None:
            hd = np.asarray(self.horizon_demand, dtype=float)
            if hd.shape != (J,) or not np.isfinite(hd).all() or (hd < 0).any():
                raise ScenarioError(
                    f"horizon_demand has shape {hd.shape} or bad values; give "
                    f"one total >= 0 per region ({J}) [requests]"
                )
        self._s = np.asarray(view.quality_loss, dtype=float)
        self._r = np.asarray(view.capacity_per_request, dtype=float)
        self._ik = (s.i, s.k)
        self._jk = (s.j, s.k)
        # the same cells as flat indices into a C-ordered (N, K) or (J, K) array: np.take
        # with them gathers the same values as the index pairs, at a fraction of the cost
        self._ik_flat = s.i * K + s.k
        self._jk_flat = s.j * K + s.k
        # static per-slot helpers (same values as computing them in every slot)
        self._reach_jk = self._reach_dk.any(axis=0)  # (J, K): some data centre serves it
        self._reach_all = bool(self._reach_jk.all())
        self._s_route = self._s[s.k]  # quality loss of each route's model
        self._s_row = self._s[None, :]
        # per-route coefficient of every group (rows 0..G-1, refilled each slot) and the
        # quality loss (row G, static): one product with the routing gives every
        # group's increment and the quality account in one bincount over offset bins
        G = len(self._groups)
        self._route_rows = np.empty((G + 1, s.n_routes))
        self._route_rows[G] = self._s_route
        sizes_g = [N if g.on == "datacenter" else J for g in self._groups] + [J]
        self._inc_off = np.r_[0, np.cumsum(sizes_g)].tolist()
        self._inc_index = np.concatenate(
            [
                (s.i if g.on == "datacenter" else s.j) + off
                for g, off in zip(self._groups, self._inc_off[:G], strict=True)
            ]
            + [s.j + self._inc_off[G]]
        )
        self._inc_len = int(self._inc_off[-1])
        # the groups' duals and AdaGrad sums in one buffer each (the dicts hold views of
        # them), so the adaptive dual step of all groups takes one pass of array
        # operations (elementwise: the same bits as one pass per group)
        off = self._inc_off
        self._gam_buf = np.concatenate([self.gamma[g.name] for g in self._groups] + [[]])
        self._ss_buf = np.concatenate([self._sumsq[g.name] for g in self._groups] + [[]])
        for r, g in enumerate(self._groups):
            self.gamma[g.name] = self._gam_buf[off[r] : off[r + 1]]
            self._sumsq[g.name] = self._ss_buf[off[r] : off[r + 1]]
        self._gam_views = [self.gamma[g.name] for g in self._groups]
        self._ss_views = [self._sumsq[g.name] for g in self._groups]
        self._sizes = sizes_g[:G]
        self._eta_mu = np.repeat([(self.eta or 0.0) * g.mu for g in self._groups], self._sizes)
        self._mu_all = np.repeat([g.mu for g in self._groups], self._sizes)
        self._all_q1 = all(g.q == 1.0 for g in self._groups)

    def _initial(self, g: _Group, n: int) -> np.ndarray:
        if isinstance(self.init, Mapping):
            if g.name not in self.init:
                raise ValueError(
                    f"init has no prices for {g.name!r}; give all of "
                    f"{[x.name for x in self._groups]}"
                )
            v = np.asarray(self.init[g.name], dtype=float) * np.ones(n)
            if not np.isfinite(v).all() or (v < 0).any():
                raise ValueError(f"init prices of {g.name!r} must be finite and >= 0")
            return v.copy()
        if self.init == "zero":
            return np.zeros(n)
        return np.full(n, g.mu * n ** (1.0 / g.q - 1.0) if not math.isinf(g.q) else g.mu / n)

    # ------------------------------------------------------------------ one slot
    def _coefs(self, view: Any, t: int, lam: np.ndarray | None) -> dict[str, np.ndarray]:
        """Per-request increments of each group's regional cost at slot t."""
        out: dict[str, np.ndarray] = {}
        obj = self.objective
        for g in self._groups:
            if g.name == "environment":  # USD/request
                combinable = [k for k in obj.terms if burden(k).combinable]
                out[g.name] = sum(
                    (obj.terms[k].mu * site_coefficient(view, k, t) for k in combinable[1:]),
                    start=obj.terms[combinable[0]].mu * site_coefficient(view, combinable[0], t),
                )
            elif g.on == "datacenter":  # (N, K) [unit/request]
                out[g.name] = site_coefficient(view, g.name, t)
            else:  # (J, K) [-/request]
                if lam is not None:
                    out[g.name] = _reciprocal(lam)[:, None] * self._s_row
                else:
                    out[g.name] = np.broadcast_to(self._s[None, :], (view.shape[1], self._s.size))
        return out

    def _horizon_demand(self, view: Any, t: int) -> np.ndarray:
        """Demand of each region over the horizon [requests]: the user's forecast, or the
        running estimate ``T / (t + 1) * sum_{s <= t} demand[s]``."""
        if self.horizon_demand is not None:
            return np.asarray(self.horizon_demand, dtype=float)
        pos, length = self._frame(view, t)
        seen = self.cumulative["demand"] + view.demand[t]  # cumulative: window's slots < t
        return seen * (length / (pos + 1.0))

    def _frame(self, view: Any, t: int) -> tuple[int, int]:
        """(position of slot t in its fairness window, window length) [slots]."""
        if self.window is None:
            return t, int(view.n_time)
        return t % self.window, self.window

    def _bounds(
        self,
        g: _Group,
        coef: np.ndarray,
        demand: np.ndarray,
        cap: np.ndarray,
        load: np.ndarray | None = None,
    ) -> np.ndarray:
        """Largest increment of each of the group's costs this slot allows (``load``: the
        slot's :meth:`_max_load`, when computed already)."""
        if g.on == "region":
            if self._reach_all:  # every (region, model) is served somewhere
                return coef.max(axis=1) * demand
            mx = np.where(self._reach_jk, coef, 0.0).max(axis=1)  # (J,)
            return mx * demand
        if load is None:
            load = self._max_load(demand, cap)
        return (coef * load).max(axis=1)

    def _max_load(self, demand: np.ndarray, cap: np.ndarray) -> np.ndarray:
        """Most requests each (data centre, model) can take this slot: the demand that may
        reach it, at most its capacity (N, K) [requests]."""
        reach = np.einsum("njk,j->nk", self._reach_dk, demand)  # (N, K) requests
        if cap.ndim == 1:
            return np.minimum(reach, cap[:, None] / self._r[None, :])
        return np.minimum(reach, cap)

    def _incurred(self, g: _Group, lam: np.ndarray | None) -> np.ndarray:
        """Regional costs incurred so far in the group's unit (X_t of the module docstring)."""
        cum = self.cumulative
        if g.name == "environment":
            obj = self.objective
            combinable = [k for k in obj.terms if burden(k).combinable]
            return sum(
                (obj.terms[k].mu * cum[k] for k in combinable[1:]),
                start=obj.terms[combinable[0]].mu * cum[combinable[0]],
            )
        if g.on == "datacenter":
            return cum[g.name]
        if lam is None:
            return cum["quality"]
        if (lam > 0).all():
            return cum["quality"] / lam
        return np.divide(cum["quality"], lam, out=np.zeros_like(lam), where=lam > 0)

    def prices(self, g: _Group, t: int, n_time: int, lam: np.ndarray | None) -> np.ndarray:
        """Prices of group ``g`` used at slot t: DMD iterate plus the horizon correction
        (``t`` and ``n_time`` are the position and length of the fairness window)."""
        return self._price(g, self._scale.get(g.name, 0.0), t, n_time, lam)

    def _price(
        self, g: _Group, scale: float, t: int, n_time: int, lam: np.ndarray | None
    ) -> np.ndarray:
        gam = self.gamma[g.name]
        if self.horizon_gain == 0 or scale <= 0:  # a copy: the duals change in place
            return gam.copy()
        kappa = self.horizon_gain * g.mu / (scale * (n_time - t + 1.0))
        x = self._incurred(g, lam)
        if not (x > 0).any():
            return gam.copy()
        return project_dual_uniform(gam + kappa * x, kappa, g.mu, g.q)

    def decide(self, view: Any) -> np.ndarray:
        """Routing of slot ``view.t`` (datacenter, region, model) [requests/slot]."""
        t = view.t
        if t != self.slots_done:
            raise ValueError(
                f"OnlineDMD has decided {self.slots_done} slots; it cannot decide "
                f"slot {t} next (resume from a saved state or reset)"
            )
        if self._solver is None:
            self._setup(view)
        s = self._solver
        assert s is not None
        pos, length = self._frame(view, t)
        if self.window is not None and pos == 0 and t > 0:  # a new fairness window
            self.last_window = {k: v.copy() for k, v in self.cumulative.items()}
            for v in self.cumulative.values():
                v[...] = 0.0
        demand = np.asarray(view.demand[t], dtype=float)
        cap = np.asarray(view.capacity[t], dtype=float)
        lam = self._horizon_demand(view, t) if self.objective.social_average else None
        coefs = self._coefs(view, t, lam)
        cost = np.take(view.energy_cost[t], self._ik_flat)  # a new array
        bounds: dict[str, np.ndarray] = {}
        rows = self._route_rows  # each group's coefficient per route (row r: group r)
        scales, prices = self._scale, self._prices
        load = None  # the slot's _max_load, computed once for all data-centre groups
        for r, g in enumerate(self._groups):
            c = coefs[g.name]
            if g.on == "datacenter":
                if load is None:
                    load = self._max_load(demand, cap)
                flat, idx = self._ik_flat, s.i
            else:
                flat, idx = self._jk_flat, s.j
            bounds[g.name] = b = self._bounds(g, c, demand, cap, load)
            scales[g.name] = scale = max(scales.get(g.name, 0.0), float(b.max()))
            p = prices[g.name] = self._price(g, scale, pos, length, lam)
            cr = np.take(c, flat, out=rows[r], mode="clip")  # indices in range: a copy
            cost += p[idx] * cr
        if self._smooth and self._f_prev is not None:
            x, method = self._smooth_decision(cost, demand, cap)
        else:
            x, method = s.solve_routes(cost, demand, cap)
        if self._smooth:
            self._f_prev = x / np.where(demand > 0, demand, 1.0)[s.j]
        self._counts[method] = self._counts.get(method, 0) + 1
        n = self.slots_done + 1.0
        # every group's increment and the quality account: one bincount (each bin sums
        # its routes in route order, as one bincount per group does)
        inc_all = np.bincount(
            self._inc_index, weights=(rows * x).reshape(-1), minlength=self._inc_len
        )
        off = self._inc_off
        site_inc: dict[str, np.ndarray] = {}  # a data-centre burden's increment, computed once
        for r, g in enumerate(self._groups):
            if g.on == "datacenter" and g.name != "environment":
                site_inc[g.name] = inc_all[off[r] : off[r + 1]]
        if not self._update_all(inc_all[: off[-2]]):
            for r, g in enumerate(self._groups):
                self._update(g, inc_all[off[r] : off[r + 1]], bounds[g.name], n)
        N = s.shape[0]
        for key in self.cumulative:
            if key not in ("quality", "demand"):
                done = site_inc.get(key)
                if done is None:
                    c = site_coefficient(view, key, t)
                    done = np.bincount(s.i, weights=c[self._ik] * x, minlength=N)
                self.cumulative[key] += done
        self.cumulative["quality"] += inc_all[off[-2] :]
        self.cumulative["demand"] += demand
        self.slots_done += 1
        return s.scatter(x)

    def _smooth_decision(
        self, cost: np.ndarray, demand: np.ndarray, cap: np.ndarray
    ) -> tuple[np.ndarray, str]:
        """The slot's routing with the switching cost priced and the change limit held."""
        assert self._solver is not None and self._f_prev is not None
        # regions that had demand in the previous slot (the limit applies to them)
        has_prev = np.bincount(self._solver.j, self._f_prev, minlength=demand.size) > 0
        if self._switching is None:
            self._switching = SwitchingSlotLP(
                self._solver, self.objective.switching_cost, self.max_change
            )
        sol = self._switching.solve(cost, demand, cap, self._f_prev, has_prev)
        self._limit["moved_requests"] += sol.moved
        over = float(sol.excess.sum())
        if over > 0:
            self._limit["slots_over"] += 1
            self._limit["excess_requests"] += over
        return sol.x, "switching"

    def _update_all(self, inc: np.ndarray) -> bool:
        """:meth:`_update` of every group at once (adaptive steps, proximal step, every
        scale > 0, the duals and sums still the buffers' views): the same elementwise
        operations on the concatenated vectors, then each group's projection. False
        (nothing done) where it does not apply."""
        groups = self._groups
        if self.step != "adaptive" or self.aux != "proximal" or not groups:
            return False
        scales = [self._scale[g.name] for g in groups]
        if min(scales) <= 0:
            return False
        for r, g in enumerate(groups):
            if self.gamma[g.name] is not self._gam_views[r]:
                return False
            if self._sumsq[g.name] is not self._ss_views[r]:
                return False
        ss = self._ss_buf
        ss += inc * inc
        tiny = np.repeat([(1e-6 * sc) ** 2 for sc in scales], self._sizes)
        eta = self._eta_mu / np.sqrt(ss + tiny)
        v = self._gam_buf + eta * inc
        if self._all_q1:  # project_dual at q = 1: clip to [0, mu]
            np.minimum(np.maximum(v, 0.0), self._mu_all, out=self._gam_buf)
            return True
        off = self._inc_off
        for r, g in enumerate(groups):
            a, b = off[r], off[r + 1]
            self._gam_buf[a:b] = project_dual(v[a:b], eta[a:b], g.mu, g.q)
        return True

    def _update(self, g: _Group, inc: np.ndarray, bound: np.ndarray, n: float) -> None:
        gam = self.gamma[g.name]
        scale = self._scale[g.name]
        if scale <= 0:  # nothing of this cost can be incurred yet
            return
        assert self.eta is not None  # set in __post_init__
        if self.step != "adaptive" and self.aux == "proximal":  # one step size: a float
            e = self.eta * g.mu / (scale if self.step == "constant" else scale * math.sqrt(n))
            self.gamma[g.name] = project_dual_uniform(gam + e * inc, e, g.mu, g.q)
            return
        if self.step == "constant":
            eta = np.full(gam.shape, self.eta * g.mu / scale)
        elif self.step == "sqrt":
            eta = np.full(gam.shape, self.eta * g.mu / (scale * math.sqrt(n)))
        else:
            ss = self._sumsq[g.name]
            ss += inc * inc
            # coordinates that have never had an increment keep a finite step (1e-6 of B_g)
            eta = self.eta * g.mu / np.sqrt(ss + (1e-6 * scale) ** 2)
        if self.aux == "proximal":
            self.gamma[g.name] = project_dual(gam + eta * inc, eta, g.mu, g.q)
        else:
            zmax = (
                bound
                if self.z_max is None
                else (np.asarray(self.z_max[g.name], dtype=float) * np.ones_like(gam))
            )
            z = aux_explicit(gam, g.mu, g.q, zmax)
            self.gamma[g.name] = np.clip(gam + eta * (inc - z), 0.0, None)
