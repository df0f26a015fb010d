"""The one online loop: an online policy stepped slot by slot over :class:`SlotView`.

:func:`eqglb.online.simulate_online` (offline, a scenario's signals) and the dispatch
service (:mod:`eqglb.service.engine`, signals posted live) both drive a :class:`Stepper`:

* it appends the slot's signals (:data:`eqglb.fields.SIGNALS`) and their per-request cost
  coefficients (:func:`eqglb.costs.coefficients_of`: energy cost and every data-centre
  burden of :data:`eqglb.burdens.BURDENS`) to its history buffers;
* it shows the policy a :class:`SlotView` of slots ``0..t`` (causal by construction);
* it checks the decision (shape, finite, non-negative, allowed routes, demand served
  exactly, capacity respected) and raises :class:`PolicyError` naming the slot;
* it accounts the slot's costs with :func:`eqglb.costs.regional_costs`: energy cost and
  the regional vector of every burden (quality loss as a total [requests], the
  per-request average is taken by the reader), plus the demand seen.

A slot that fails (the policy raises, or its decision is refused) leaves the stepper as it
was before the slot (its counter, accounts and history): a caller that wants the policy
back as well reloads the policy's saved state. The history grows as slots arrive (a live
stream has no known end) or is allocated at once for a known number of slots.
"""

from __future__ import annotations

import time as _time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from eqglb.burdens import BURDENS
from eqglb.costs import Coefficients, RegionalCosts, coefficients_of, regional_costs
from eqglb.fields import SIGNALS as FIELD_SIGNALS

__all__ = [
    "FEASIBILITY_TOL",
    "INPUT_SIGNALS",
    "STATIC",
    "PolicyError",
    "Step",
    "Stepper",
]

#: Relative tolerance on demand served and capacity used by a policy's decision.
FEASIBILITY_TOL = 1e-6

#: Static attributes of a view (besides ``t``, ``n_time`` and ``time``).
STATIC = (
    "slot_hours",
    "datacenters",
    "regions",
    "models",
    "allowed",
    "energy_per_request",
    "capacity_per_request",
    "quality_loss",
    "capacity_mode",
    "latency",
)
#: Signals the caller gives per slot (the scenario fields that vary by slot).
INPUT_SIGNALS: tuple[str, ...] = FIELD_SIGNALS
#: Per-request coefficients derived per slot: energy cost and each data-centre burden.
COEFFICIENTS: tuple[str, ...] = (
    "energy_cost",
    *(n for n, b in BURDENS.items() if b.side == "datacenter"),
)


from eqglb.errors import PolicyError  # noqa: E402  (one errors module)


@dataclass(frozen=True, eq=False)
class Step:
    """One decided slot.

    Attributes
    ----------
    t : int
    y : array (datacenter, region, model) [requests/slot], checked (clipped at 0).
    costs : RegionalCosts
        The slot's energy cost [USD] and regional vector of every burden (quality loss
        total [requests]).
    decide_time : float
        Wall time of the policy's ``decide`` [s].
    """

    t: int
    y: np.ndarray
    costs: RegionalCosts
    decide_time: float


class _History:
    """Buffers of every signal and coefficient; rows after the current slot hold NaN."""

    def __init__(self, shapes: Mapping[str, tuple[int, ...]], rows: int) -> None:
        self.shapes = dict(shapes)
        self.bufs = {n: np.full((max(rows, 1), *s), np.nan) for n, s in self.shapes.items()}
        self.time_ns = np.zeros(max(rows, 1), dtype=np.int64)
        self._read_only: dict[str, np.ndarray] | None = None

    def ensure(self, t: int) -> None:
        n = self.time_ns.size
        if t < n:
            return
        m = max(2 * n, t + 1)
        for name, buf in self.bufs.items():
            new = np.full((m, *buf.shape[1:]), np.nan)
            new[:n] = buf
            self.bufs[name] = new
        tn = np.zeros(m, dtype=np.int64)
        tn[:n] = self.time_ns
        self.time_ns = tn
        self._read_only = None  # views of the new buffers

    def views(self) -> dict[str, np.ndarray]:
        """Read-only views of the whole buffers (a view slices them to ``[: t + 1]``)."""
        if self._read_only is None:
            self._read_only = {}
            for name, buf in self.bufs.items():
                v = buf.view()
                v.setflags(write=False)
                self._read_only[name] = v
        return self._read_only


class Stepper:
    """Drives one online policy slot by slot (see the module docstring).

    Parameters
    ----------
    policy : OnlinePolicy
        ``decide(view)``; ``name`` labels errors.
    static : mapping
        The view's static data (:data:`STATIC`): names, allowed routes, energy and
        capacity per request, quality loss, capacity mode, latency, slot length [h].
    n_time : int
        Number of slots of the horizon (the view's ``n_time``) [slots].
    rows : int, optional
        Slots to allocate history for at once (default 256; grows as needed).
    """

    def __init__(
        self, policy: Any, static: Mapping[str, Any], n_time: int, *, rows: int = 256
    ) -> None:
        self.policy = policy
        self.name = str(getattr(policy, "name", type(policy).__name__))
        self.static = {k: static[k] for k in STATIC}
        self.static["n_time"] = int(n_time)
        self.n_time = int(n_time)
        self.allowed = np.asarray(static["allowed"], dtype=bool)
        self.forbidden = ~self.allowed
        self._forbidden_flat = np.flatnonzero(self.forbidden)  # the same cells, as indices
        self.eps = np.asarray(static["energy_per_request"], dtype=float)
        self.r = np.asarray(static["capacity_per_request"], dtype=float)
        self.s = np.asarray(static["quality_loss"], dtype=float)
        self.shared = static["capacity_mode"] == "shared"
        N, J, K = self.allowed.shape
        self.shape = (N, J, K)
        shapes: dict[str, tuple[int, ...]] = {n: (N,) for n in INPUT_SIGNALS}
        shapes["demand"] = (J,)
        shapes["capacity"] = (N,) if self.shared else (N, K)
        shapes.update({n: (N, K) for n in COEFFICIENTS})
        self.history = _History(shapes, rows)
        self.t = 0
        self.reset_accounts()

    # ------------------------------------------------------------------ accounts
    def reset_accounts(self) -> None:
        N, J, _ = self.shape
        self.energy_cost = 0.0
        self.cumulative: dict[str, np.ndarray] = {
            n: np.zeros(N if b.side == "datacenter" else J) for n, b in BURDENS.items()
        }
        self.demand_seen = np.zeros(J)

    def state(self) -> dict[str, Any]:
        """JSON-ready counter and accounts (regional totals of every burden [its unit])."""
        return {
            "t": self.t,
            "energy_cost": self.energy_cost,
            **{n: v.tolist() for n, v in self.cumulative.items()},
            "demand": self.demand_seen.tolist(),
        }

    def load_state(self, st: Mapping[str, Any]) -> None:
        """Restore :meth:`state` (burdens missing from ``st`` start at 0)."""
        self.reset_accounts()
        self.t = int(st.get("t", 0))
        self.energy_cost = float(st.get("energy_cost", 0.0))
        for n in self.cumulative:
            if n in st:
                self.cumulative[n] = np.asarray(st[n], dtype=float).copy()
        if "quality" in st and "social" not in st:  # the name before the registry
            self.cumulative["social"] = np.asarray(st["quality"], dtype=float).copy()
        self.demand_seen = np.asarray(st.get("demand", self.demand_seen), dtype=float).copy()

    # ------------------------------------------------------------------ history
    def record(self, t: int, signals: Mapping[str, Any], time_ns: int) -> None:
        """Write slot ``t``'s signals (and their coefficients) into the history."""
        h = self.history
        h.ensure(t)
        rows = {n: np.asarray(signals.get(n, 0.0), dtype=float) for n in INPUT_SIGNALS}
        for n, a in rows.items():
            h.bufs[n][t] = a
        coef = self._coefficients(rows)
        self._coef = coef
        h.bufs["energy_cost"][t] = coef.energy_cost[0]
        for n in COEFFICIENTS[1:]:
            h.bufs[n][t] = coef.site[n][0]
        h.time_ns[t] = int(time_ns)

    def _coefficients(self, rows: Mapping[str, np.ndarray]) -> Coefficients:
        def get(name: str) -> Any:
            if name in rows:
                return rows[name][None]
            return self.static[name]

        return coefficients_of(get, social_average=False)

    def view(self, t: int) -> Any:
        from eqglb.online.simulator import SlotView

        return SlotView(t, self.static, self.history.views(), self.history.time_ns)

    # ------------------------------------------------------------------ one slot
    def step(self, signals: Mapping[str, Any], time_ns: int) -> Step:
        """Decide, check and account the next slot (``self.t``) from its signals.

        ``signals`` maps each name of :data:`INPUT_SIGNALS` to its row ((region,) for
        demand, (datacenter,) or (datacenter, model) for capacity, (datacenter,) for the
        others; an absent signal is 0). Raises :class:`PolicyError` (and whatever the
        policy raises) with the stepper unchanged.
        """
        t = self.t
        self.record(t, signals, time_ns)
        view = self.view(t)
        t0 = _time.perf_counter()
        yt = self.policy.decide(view)
        dt = _time.perf_counter() - t0
        h = self.history.bufs
        y = self.check(yt, t, h["demand"][t], h["capacity"][t])
        costs = regional_costs(self._coef, y[None])
        self.energy_cost += costs.energy_cost
        for n, v in costs.vectors.items():
            self.cumulative[n] = self.cumulative[n] + v
        self.demand_seen = self.demand_seen + h["demand"][t]
        self.t = t + 1
        return Step(t, y, costs, dt)

    def check(self, yt: Any, t: int, demand: np.ndarray, cap: np.ndarray) -> np.ndarray:
        """The decision as a clipped array; :class:`PolicyError` saying what is wrong."""
        name, (N, J, K) = self.name, self.shape
        try:
            a = np.asarray(yt, dtype=float)
        except (TypeError, ValueError) as exc:
            raise PolicyError(
                f"policy {name!r} returned a non-numeric decision at slot {t} ({exc})"
            ) from exc
        if a.shape != (N, J, K):
            raise PolicyError(
                f"policy {name!r} returned shape {a.shape} at slot {t}; "
                f"expected (datacenter, region, model) = {(N, J, K)}"
            )
        if not np.isfinite(a).all():
            raise PolicyError(f"policy {name!r} returned NaN/inf at slot {t}")
        tol = FEASIBILITY_TOL * np.maximum(1.0, demand)
        if a.size and a.min() < -tol.max():  # a is finite here: min < -tol iff any is
            raise PolicyError(
                f"policy {name!r} routed a negative number of requests at slot {t} ({a.min():g})"
            )
        a = np.maximum(a, 0.0)  # np.clip(a, 0.0, None)
        if (a.reshape(-1).take(self._forbidden_flat) > 0).any():
            i, j, k = np.argwhere((a > 0) & self.forbidden)[0]
            st = self.static
            raise PolicyError(
                f"policy {name!r} routed region {st['regions'][j]!r} to "
                f"datacenter {st['datacenters'][i]!r} with model {st['models'][k]!r} at "
                f"slot {t}, a route that is not allowed"
            )
        served = a.sum(axis=(0, 2))
        bad = np.abs(served - demand) > tol
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise PolicyError(
                f"policy {name!r} served {served[j]:.9g} of {demand[j]:.9g} requests of "
                f"region {self.static['regions'][j]!r} at slot {t}; every decision must "
                "serve the slot's demand exactly"
            )
        used = a @ self.r if self.shared else a.sum(axis=1)
        if self.shared:
            used = used.sum(axis=1)
        over = np.maximum((used - cap) / np.maximum(1.0, cap), 0.0)  # np.clip(..., 0, None)
        if over.size and float(over.max()) > FEASIBILITY_TOL:
            i = int(np.unravel_index(int(np.argmax(over)), over.shape)[0])
            raise PolicyError(
                f"policy {name!r} exceeded capacity by {float(over.max()):.3g} (relative) "
                f"at datacenter {self.static['datacenters'][i]!r} at slot {t}"
            )
        return a
