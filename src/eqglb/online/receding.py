r"""Forecast-aware online policy: receding-horizon equitable GLB.

At slot t the policy knows the regional costs already incurred, ``X_t`` (carbon and water
per data centre, quality loss per region, all from its own committed decisions), and
forecasts of the next ``h = min(window, T - t)`` slots (slot t itself is known exactly).
It solves the equitable problem over the window and commits the first slot.

**Scaling for the remaining horizon.** The problem left at slot t is
``min sum_{s >= t} e_s + F(X_t + sum_{s >= t} g_s)`` over ``R = T - t`` slots. The window
covers h of them; assuming the slots beyond it behave like the window (the same energy and
increments per slot), the remainder is ``(R/h)`` times the window, so the problem is
``min (R/h) E_w + F(X_t + (R/h) G_w)``. Dividing by R/h and using that every norm is
positively homogeneous,

    minimise  E_w + F( (h/R) X_t + G_w )

over the window's dispatch: the incurred costs enter scaled by ``h / R``. When the window
reaches the end of the horizon (h = R) this is exactly the remaining problem, so with
perfect forecasts and ``window >= T`` the policy reproduces the hindsight optimum's value
(principle of optimality; tested). The averaged quality cost divides by the horizon's
demand, estimated as ``sum_{s < t} demand[s] + (R/h) * (window's forecast demand)``.

Forecast slots whose (noisy) demand cannot be served get an unserved-demand slack priced
at 10 times the largest per-request cost, so the window problem is always feasible; the
present slot has no slack.

**Switching cost.** With the objective's ``switching_cost`` s > 0 [USD per request moved]
(docs/switching.md) the window model adds the movement of every window slot: for the
present slot ``0.5 * sum_p |x_t[p] - d_t[p] f_prev[p]|`` against the routing fractions
``f_prev`` the policy committed in the previous slot, for each later window slot
``0.5 * sum_p |x_s[p] - (d_s / d_(s-1))[p] x_(s-1)[p]|`` with the forecast demands (the
previous slot's fractions applied to the next slot's demand; 0 where the forecast
demand of the previous slot is 0), all priced at s.

The problem is built once with cvxpy parameters (DPP), so each
slot only re-applies parameters and solves (HiGHS for q in {1, inf}, Clarabel otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from eqglb.burdens import datacenter_burdens
from eqglb.costs import Objective, RegionalCosts, coefficients_of, objective_value
from eqglb.fields import signal_or_default
from eqglb.online.dmd import site_coefficient
from eqglb.online.forecast import FORECAST_SIGNALS, SeasonalNaive, make_forecaster, with_error
from eqglb.online.state import (
    base_state,
    check_fingerprint,
    fingerprint,
    objective_to_config,
    policy_kwargs,
    restore_base,
)
from eqglb.policies.problem import Routes, regularizer, solve_problem
from eqglb.scenario import ScenarioError

__all__ = ["RecedingHorizon"]

#: Price of unserved forecast demand, as a multiple of the largest per-request cost.
SLACK_PENALTY = 10.0


@dataclass
class RecedingHorizon:
    """Receding-horizon equitable GLB from forecasts (module docstring).

    Parameters
    ----------
    objective : Objective
        Weights [USD per unit] and norm orders.
    window : int
        Look-ahead [slots], the present included. Default 48: on egl-2022 with perfect
        forecasts it lands within 1 % of the hindsight optimum (0.89 %; 24 slots: 1.24 %).
    forecaster : str or forecaster object
        ``"seasonal"`` (seasonal naive, period 24), ``"seasonal:<period>"``, ``"perfect"``
        (oracle: true future values, for hindsight benchmarks only) or an object with
        ``forecast(view, h)`` (see :mod:`eqglb.online.forecast`).
    error : float
        Log-standard-deviation of multiplicative lognormal noise on forecast values [-]
        (0 = forecasts as given).
    seed : int
        Seed of the forecast noise.
    solver, solver_options
        cvxpy solver (default HiGHS for LPs, Clarabel otherwise) and its options.
    name : str
    """

    objective: Objective = field(default_factory=Objective)
    window: int = 48
    forecaster: Any = field(default_factory=SeasonalNaive)
    error: float = 0.0
    seed: int = 0
    solver: str | None = None
    solver_options: dict[str, Any] = field(default_factory=dict)
    name: str = "receding"

    solver_name = "cvxpy window problem per slot"

    def __post_init__(self) -> None:
        if int(self.window) < 1:
            raise ValueError(f"window = {self.window!r}; give a look-ahead >= 1 [slots]")
        self.window = int(self.window)
        self.forecaster = make_forecaster(self.forecaster)
        self.error = float(self.error)
        if not (math.isfinite(self.error) and self.error >= 0):
            raise ValueError(f"error = {self.error!r}; give a noise level >= 0")
        self.reset()

    # ------------------------------------------------------------------ config / state
    @property
    def needs_oracle(self) -> bool:
        """True when the forecaster reads the future (an oracle for benchmarks)."""
        return bool(getattr(self.forecaster, "needs_oracle", False))

    def bind_oracle(self, scenario: Any) -> None:
        """Give an oracle forecaster the scenario (called by the simulator)."""
        self.forecaster.bind(scenario)

    def config(self) -> dict[str, Any]:
        fc = self.forecaster
        if isinstance(fc, SeasonalNaive):
            spec: Any = f"seasonal:{fc.period}"
        elif getattr(fc, "needs_oracle", False):
            spec = "perfect"
        else:
            spec = getattr(fc, "name", type(fc).__name__)
        return {
            "objective": objective_to_config(self.objective),
            "window": self.window,
            "forecaster": spec,
            "error": self.error,
            "seed": self.seed,
            "solver": self.solver,
            "solver_options": dict(self.solver_options),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> RecedingHorizon:
        return cls(**policy_kwargs(cfg))

    def reset(self) -> None:
        self.slots_done = 0
        self._fp: dict[str, Any] | None = None
        self._built: dict[str, Any] | None = None
        self.cumulative: dict[str, np.ndarray] = {}
        self._solve_time = 0.0
        self._statuses: dict[str, int] = {}
        #: routing fractions of the last slot decided (switching cost only) [-]
        self._f_prev: np.ndarray | None = None

    def state(self) -> dict[str, Any]:
        out = base_state("RecedingHorizon", self, self._statuses)
        if self._f_prev is not None:
            out["previous_fractions"] = self._f_prev.tolist()
        return out

    def load_state(self, state: dict[str, Any]) -> None:
        self._statuses = restore_base("RecedingHorizon", self, state)
        if "previous_fractions" in state:
            self._f_prev = np.asarray(state["previous_fractions"], dtype=float)
        elif self.objective.switching_cost > 0 and self.slots_done > 0:
            raise ScenarioError(
                "policy state: it has no previous routing fractions, which a policy with "
                "a switching cost needs to resume; it was saved by a policy without one"
            )

    def run_stats(self) -> dict[str, Any]:
        return {
            "window_solves": dict(self._statuses),
            "window_solve_time_s": self._solve_time,
            "forecaster": self.config()["forecaster"],
            "forecast_error": self.error,
        }

    # ------------------------------------------------------------------ problem
    def _build(self, view: Any) -> None:
        if self._fp is None:
            self._fp = fingerprint(view)
        else:
            check_fingerprint(self._fp, view)
        N, J, K = view.shape
        H = self.window if view.n_time >= self.window else view.n_time
        i, j, k = np.nonzero(np.asarray(view.allowed))
        P = i.size
        ar = np.arange(P)
        d0 = np.asarray(view.demand[0])
        pos = d0[d0 > 0]
        scale = float(pos.mean()) if pos.size else 1.0  # from slot 0: known at every slot
        routes = Routes(
            i,
            j,
            k,
            sp.csr_matrix((np.ones(P), (ar, j)), shape=(P, J)),
            sp.csr_matrix((np.ones(P), (ar, i)), shape=(P, N)),
            scale,
        )
        if view.capacity_mode == "shared":
            r = np.asarray(view.capacity_per_request, dtype=float)
            a_cap = sp.csr_matrix((r[k], (ar, i)), shape=(P, N))
            n_cap = N
        else:
            a_cap = sp.csr_matrix((np.ones(P), (ar, i * K + k)), shape=(P, N * K))
            n_cap = N * K
        x = cp.Variable((H, P), nonneg=True)
        u = cp.Variable((H, J), nonneg=True)
        par = {
            "demand": cp.Parameter((H, J), nonneg=True),
            "capacity": cp.Parameter((H, n_cap), nonneg=True),
            "energy": cp.Parameter((H, P)),
            **{name: cp.Parameter((H, P), nonneg=True) for name in self._site},
            "quality": cp.Parameter(P, nonneg=True),
            **{f"past_{name}": cp.Parameter(N, nonneg=True) for name in self._site},
            "past_social": cp.Parameter(J, nonneg=True),
            "penalty": cp.Parameter(nonneg=True),
        }
        cons = [x @ routes.to_region + u == par["demand"], x @ a_cap <= par["capacity"], u[0] == 0]
        to_d = routes.to_datacenter
        q_route = sp.diags(np.ones(P)) @ routes.to_region
        ex = {
            **{
                name: cp.sum(cp.multiply(par[name], x), axis=0) @ to_d + par[f"past_{name}"]
                for name in self._site
            },
            "social": cp.multiply(par["quality"], cp.sum(x, axis=0)) @ q_route + par["past_social"],
        }
        energy = cp.sum(cp.multiply(par["energy"], x))
        objective = energy + regularizer(self.objective, ex) + par["penalty"] * cp.sum(u)
        if self.objective.switching_cost > 0:
            # priced movement of the present slot against the committed fractions (price 0
            # at slot 0), then of each window slot against the one before; the prices are
            # folded into the parameters so the problem stays DPP (no parameter products)
            par["switch_now"] = cp.Parameter(nonneg=True)  # price of the present slot
            par["target"] = cp.Parameter(P, nonneg=True)  # price x d_t f_prev
            now = par["switch_now"] * x[0] - par["target"]
            objective = objective + cp.sum(cp.abs(now))
            if H > 1:
                par["switch"] = cp.Parameter(nonneg=True)
                par["ratio"] = cp.Parameter((H - 1, P), nonneg=True)  # price x d_s / d_(s-1)
                later = par["switch"] * x[1:] - cp.multiply(par["ratio"], x[:-1])
                objective = objective + cp.sum(cp.abs(later))
        prob = cp.Problem(cp.Minimize(objective), cons)
        self._built = {
            "H": H,
            "routes": routes,
            "x": x,
            "u": u,
            "par": par,
            "prob": prob,
            "n_cap": n_cap,
            "a_cap": a_cap,
        }
        for key in self._site:
            self.cumulative.setdefault(key, np.zeros(N))
        self.cumulative.setdefault("quality", np.zeros(J))

    @property
    def _site(self) -> tuple[str, ...]:
        """Data-centre burdens the window model carries: carbon and water always (the
        combined norm needs both), any other with a positive weight."""
        return tuple(
            b.name
            for b in datacenter_burdens()
            if b.name in ("carbon", "water") or self.objective.terms[b.name].mu > 0
        )

    def _window_coefficients(self, view: Any, fc: dict[str, np.ndarray]) -> Any:
        """Per-request coefficients of the window, by eqglb.costs (physics in one place)."""

        def get(name: str) -> Any:
            try:  # the forecast's; an optional signal it lacks: not modelled (0)
                return signal_or_default(fc, name, lambda: np.shape(fc["price"]))
            except KeyError:  # not a forecast signal: the view's own data
                return getattr(view, name)

        return coefficients_of(get, social_average=False)

    def _magnitude(
        self,
        fdem: np.ndarray,
        ec: np.ndarray,
        site: dict[str, np.ndarray],
        qc: np.ndarray,
        alpha: float,
        past_social: np.ndarray,
        N: int,
        J: int,
    ) -> float:
        """Objective [USD] of the even spread of each region's demand over its routes."""
        routes = self._built["routes"] if self._built else None
        assert routes is not None
        ri, rj = routes.i, routes.j
        n_routes = np.bincount(rj, minlength=J).astype(float)
        y = fdem[:, rj] / n_routes[rj]  # (h, route)
        energy = float(np.sum(np.abs(ec) * y))
        rc = RegionalCosts(
            energy,
            {
                **{
                    name: alpha * self.cumulative[name]
                    + np.bincount(ri, (g * y).sum(0), minlength=N)
                    for name, g in site.items()
                },
                "social": alpha * past_social + np.bincount(rj, (qc * y).sum(0), minlength=J),
            },
        )
        ref = objective_value(self.objective, rc)
        return ref if math.isfinite(ref) and ref > 0 else 1.0

    def decide(self, view: Any) -> np.ndarray:
        """Routing of slot ``view.t`` (datacenter, region, model) [requests/slot]."""
        t = view.t
        if t != self.slots_done:
            raise ValueError(
                f"RecedingHorizon has decided {self.slots_done} slots; it cannot "
                f"decide slot {t} next (resume from a saved state or reset)"
            )
        if self._built is None:
            self._build(view)
        b = self._built
        assert b is not None
        H, routes, par = b["H"], b["routes"], b["par"]
        N, J, K = view.shape
        T = view.n_time
        R = T - t
        h = min(H, R)
        fc = self.forecaster.forecast(view, h)
        fc = with_error(fc, self.error, self.seed, t)
        for name in FORECAST_SIGNALS:
            if name not in fc:  # an optional signal not forecast: not modelled (0)
                fc[name] = signal_or_default(fc, name, lambda: np.shape(fc["price"]))
            a = np.asarray(fc[name], dtype=float)
            if a.shape[0] != h or not np.isfinite(a).all():
                raise ScenarioError(
                    f"forecaster {getattr(self.forecaster, 'name', '?')!r} "
                    f"returned {name} with shape {a.shape} or non-finite "
                    f"values at slot {t}; expected {h} finite rows"
                )
        coef = self._window_coefficients(view, fc)
        ri, rj, rk = routes.i, routes.j, routes.k
        ec = coef.energy_cost[:, ri, rk]
        site = {name: coef.site[name][:, ri, rk] for name in self._site}
        s = np.asarray(view.quality_loss, dtype=float)
        obj = self.objective
        alpha = h / R
        past_demand = np.asarray(view.demand[:t]).sum(axis=0)
        fdem = np.clip(np.asarray(fc["demand"], dtype=float), 0.0, None)
        if obj.social_average:
            lam = past_demand + fdem.sum(axis=0) / alpha
            inv = np.divide(1.0, lam, out=np.zeros_like(lam), where=lam > 0)
            qc = s[rk] * inv[rj]
            past_social = self.cumulative["quality"] * inv
        else:
            qc = s[rk]
            past_social = self.cumulative["quality"]
        # conditioning: requests in units of `scale`, USD in units of `ref`, the objective
        # of the dispatch that spreads each region's demand evenly over its routes
        sc = routes.scale
        per_req = np.abs(ec) + obj.mu_carbon * site["carbon"] + obj.mu_water * site["water"]
        for name in self._site[2:]:
            per_req = per_req + obj.terms[name].mu * site[name]
        per_req = per_req + obj.mu_social * qc[None, :]
        big = float(per_req.max()) if per_req.size else 0.0
        ref = self._magnitude(fdem, ec, site, qc, alpha, past_social, N, J)
        pad = H - h
        padrows = lambda a: np.vstack([a, np.zeros((pad,) + a.shape[1:])]) if pad else a  # noqa: E731
        cap = np.asarray(fc["capacity"], dtype=float).reshape(h, -1)
        par["demand"].value = padrows(fdem / sc)
        par["capacity"].value = padrows(np.clip(cap, 0.0, None) / sc)
        par["energy"].value = padrows(ec * (sc / ref))
        for name, g in site.items():
            par[name].value = padrows(np.clip(g, 0.0, None) * (sc / ref))
            par[f"past_{name}"].value = alpha * self.cumulative[name] / ref
        par["quality"].value = qc * (sc / ref)
        par["past_social"].value = alpha * past_social / ref
        par["penalty"].value = SLACK_PENALTY * big * sc / ref if big > 0 else 1.0
        if obj.switching_cost > 0:
            sw = 0.5 * obj.switching_cost * sc / ref  # per scaled request moved
            d_now = np.asarray(view.demand[t], dtype=float)
            sw_now = sw if self._f_prev is not None else 0.0
            prev = self._f_prev if self._f_prev is not None else np.zeros(rj.size)
            par["switch_now"].value = sw_now
            par["target"].value = sw_now * d_now[rj] * prev / sc
            if H > 1:
                full = padrows(fdem)  # (H, J) forecast demand, 0 on padding
                ratio = np.divide(
                    full[1:], full[:-1], out=np.zeros_like(full[1:]), where=full[:-1] > 0
                )
                par["switch"].value = sw
                par["ratio"].value = sw * ratio[:, rj]
        # no warm start: a decision depends on the slot's data only, so a resumed run
        # repeats an uninterrupted one exactly
        opts = {"warm_start": False, **self.solver_options}
        info = solve_problem(
            b["prob"], lp=obj.is_linear, solver=self.solver, solver_options=opts, value_scale=ref
        )
        self._solve_time += info.solve_time
        claim = str(info.extra.get("solver_status", info.status))
        self._statuses[claim] = self._statuses.get(claim, 0) + 1
        x0 = np.clip(np.asarray(b["x"].value, dtype=float)[0], 0.0, None) * sc
        d = np.asarray(view.demand[t], dtype=float)
        served = np.bincount(rj, weights=x0, minlength=J)
        fac = np.divide(d, served, out=np.zeros_like(d), where=served > 0)
        x0 = x0 * fac[rj]
        # commit: costs of the present slot with its true coefficients
        for name in self._site:
            g = site_coefficient(view, name, t)
            self.cumulative[name] += np.bincount(ri, weights=g[ri, rk] * x0, minlength=N)
        self.cumulative["quality"] += np.bincount(rj, weights=s[rk] * x0, minlength=J)
        if obj.switching_cost > 0:
            self._f_prev = x0 / np.where(d > 0, d, 1.0)[rj]
        self.slots_done += 1
        y = np.zeros((N, J, K))
        y[ri, rj, rk] = x0
        return y
