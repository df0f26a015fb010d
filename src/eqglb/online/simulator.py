"""Causal simulator: drives an online policy slot by slot, showing it only the past.

At slot ``t`` a policy receives a :class:`SlotView`: the static data of the scenario and the
time-varying signals (demand, price, carbon intensity, WUE, EWIF, PUE, capacity and the
per-request cost coefficients derived from them) at slots ``0..t``, never later.

Causality is enforced by construction, not by trust:

* the simulator copies slot ``t``'s row of every signal into its own buffers just before
  it asks for slot ``t``'s decision; the rows of later slots in those buffers are NaN;
* a view's arrays are read-only slices ``buffer[:t+1]``, so ``view.demand[t + 1]`` raises
  ``IndexError`` and even the slice's base buffer holds nothing of the future;
* :meth:`SlotView.at` raises :class:`CausalityError` for a slot after ``t``;
* a view holds no reference to the scenario (``__slots__``; ``view.scenario`` raises).

The one deliberate exception is an oracle: a policy with ``needs_oracle = True`` (e.g.
:class:`eqglb.online.RecedingHorizon` with the ``"perfect"`` forecaster) is handed the
scenario through ``bind_oracle(scenario)`` before the run. It is meant for hindsight
benchmarks and says so in its name and result (``info.extra["oracle"]``).
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from eqglb.costs import coefficients
from eqglb.scenario import Dispatch, Scenario, SolveInfo

__all__ = [
    "SIGNALS",
    "CausalityError",
    "OnlinePolicy",
    "PolicyError",
    "SlotView",
    "simulate_online",
]

#: Time-varying inputs a view exposes up to the current slot, with their units.
SIGNALS: dict[str, str] = {
    "demand": "(time, region) [requests/slot]",
    "price": "(time, datacenter) [USD/kWh]",
    "carbon_intensity": "(time, datacenter) [kg CO2/kWh]",
    "wue": "(time, datacenter) [L/kWh of IT energy]",
    "ewif": "(time, datacenter) [L/kWh of facility energy]",
    "pue": "(time, datacenter) [-]",
    "capacity": "(time, datacenter) [units/slot] or (time, datacenter, model) [requests/slot]",
    "energy_cost": "(time, datacenter, model) [USD/request]",
    "carbon": "(time, datacenter, model) [kg CO2/request]",
    "water": "(time, datacenter, model) [L/request]",
}

#: Relative tolerance on demand served and capacity used by a policy's decision.
FEASIBILITY_TOL = 1e-6


class CausalityError(IndexError):
    """A policy asked for data of a slot after the current one."""


class PolicyError(RuntimeError):
    """A policy returned a decision that is malformed or infeasible."""


class SlotView:
    """What is known at slot ``t``: static data and signals at slots ``0..t``.

    Attributes
    ----------
    t : int
        Index of the current slot (0-based, in the scenario's time axis).
    n_time : int
        Number of slots of the horizon, T (known in advance: the horizon is a calendar).
    time : pandas.DatetimeIndex
        Start of slots ``0..t`` (UTC).
    slot_hours : float
        Slot length [h].
    datacenters, regions, models : tuple of str
    allowed : bool array (datacenter, region, model)
    energy_per_request : array (datacenter, model) [kWh/request]
    capacity_per_request : array (model,) [units/request]
    quality_loss : array (model,) [-]
    capacity_mode : {"shared", "per_model"}
    latency : array (datacenter, region) [ms] or None
    demand, price, carbon_intensity, wue, ewif, pue, capacity : arrays
        History up to and including slot t (first axis has length t + 1); see
        :data:`SIGNALS` for shapes and units.
    energy_cost, carbon, water : arrays (time, datacenter, model)
        Per-request cost coefficients of :func:`eqglb.costs.coefficients` at slots 0..t
        [USD/request], [kg CO2/request], [L/request].
    """

    __slots__ = (
        "t",
        "n_time",
        "time",
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
        *SIGNALS,
    )

    def __init__(self, t: int, static: dict[str, Any], history: dict[str, np.ndarray]) -> None:
        self.t = t
        for name, value in static.items():
            setattr(self, name, value)
        for name, buf in history.items():
            setattr(self, name, buf[: t + 1])

    def __getattr__(self, name: str) -> Any:  # only called for missing attributes
        raise AttributeError(
            f"SlotView has no attribute {name!r}: a policy sees static data and the signals "
            f"{list(SIGNALS)} up to the current slot, never the scenario itself"
        )

    def at(self, name: str, slot: int) -> np.ndarray:
        """Signal ``name`` at ``slot`` (<= t); a later slot raises :class:`CausalityError`."""
        if name not in SIGNALS:
            raise KeyError(f"unknown signal {name!r}; known: {list(SIGNALS)}")
        if slot > self.t:
            raise CausalityError(
                f"slot {slot} is in the future of the current slot {self.t}: an online "
                "policy may read only slots <= t"
            )
        if slot < 0:
            raise IndexError(f"slot {slot} is before the first slot (0)")
        return getattr(self, name)[slot]

    def now(self, name: str) -> np.ndarray:
        """Signal ``name`` at the current slot t."""
        return getattr(self, name)[self.t]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(N, J, K): sizes of datacenter, region, model."""
        return (len(self.datacenters), len(self.regions), len(self.models))


@runtime_checkable
class OnlinePolicy(Protocol):
    """An online policy: one decision per slot from what is known at that slot."""

    name: str

    def decide(self, view: SlotView) -> np.ndarray:
        """Routing of slot ``view.t``: array (datacenter, region, model) [requests/slot]."""
        ...

    def state(self) -> dict[str, Any]:
        """JSON-ready state (duals, cumulative costs, counters)."""
        ...

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned."""
        ...


def _static(sc: Scenario) -> dict[str, Any]:
    return {
        "n_time": sc.n_time,
        "slot_hours": sc.slot_hours,
        "datacenters": sc.datacenters,
        "regions": sc.regions,
        "models": sc.models,
        "allowed": sc.allowed,
        "energy_per_request": sc.energy_per_request,
        "capacity_per_request": sc.capacity_per_request,
        "quality_loss": sc.quality_loss,
        "capacity_mode": sc.capacity_mode,
        "latency": sc.latency,
    }


def _sources(sc: Scenario) -> dict[str, np.ndarray]:
    coef = coefficients(sc, social_average=False)
    return {
        "demand": np.asarray(sc.demand),
        "price": np.asarray(sc.price),
        "carbon_intensity": np.asarray(sc.carbon_intensity),
        "wue": np.asarray(sc.wue),
        "ewif": np.asarray(sc.ewif),
        "pue": np.asarray(sc.pue),
        "capacity": np.asarray(sc.capacity),
        "energy_cost": coef.energy_cost,
        "carbon": coef.carbon,
        "water": coef.water,
    }


class _Buffers:
    """Signal buffers filled one slot at a time; rows after the last revealed slot are NaN."""

    def __init__(self, sources: dict[str, np.ndarray], upto: int) -> None:
        self._src = sources
        self.bufs: dict[str, np.ndarray] = {}
        self.views: dict[str, np.ndarray] = {}
        for name, a in sources.items():
            buf = np.full(a.shape, np.nan)
            buf[:upto] = a[:upto]
            self.bufs[name] = buf
            v = buf.view()
            v.setflags(write=False)
            self.views[name] = v

    def reveal(self, t: int) -> None:
        for name, buf in self.bufs.items():
            buf[t] = self._src[name][t]


def _check_decision(y: Any, t: int, sc: Scenario, policy_name: str) -> np.ndarray:
    N, J, K = len(sc.datacenters), len(sc.regions), len(sc.models)
    try:
        a = np.asarray(y, dtype=float)
    except (TypeError, ValueError) as exc:
        raise PolicyError(
            f"policy {policy_name!r} returned a non-numeric decision at slot {t} ({exc})"
        ) from exc
    if a.shape != (N, J, K):
        raise PolicyError(
            f"policy {policy_name!r} returned shape {a.shape} at slot {t}; "
            f"expected (datacenter, region, model) = {(N, J, K)}"
        )
    if not np.isfinite(a).all():
        raise PolicyError(f"policy {policy_name!r} returned NaN/inf at slot {t}")
    d = np.asarray(sc.demand[t])
    tol = FEASIBILITY_TOL * np.maximum(1.0, d)
    if (a < -tol.max()).any():
        raise PolicyError(
            f"policy {policy_name!r} routed a negative number of requests at slot {t} ({a.min():g})"
        )
    a = np.clip(a, 0.0, None)
    if (a[~np.asarray(sc.allowed)] > 0).any():
        i, j, k = np.argwhere((a > 0) & ~np.asarray(sc.allowed))[0]
        raise PolicyError(
            f"policy {policy_name!r} routed region {sc.regions[j]!r} to "
            f"datacenter {sc.datacenters[i]!r} with model {sc.models[k]!r} at "
            f"slot {t}, a route that is not allowed"
        )
    served = a.sum(axis=(0, 2))
    bad = np.abs(served - d) > tol
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise PolicyError(
            f"policy {policy_name!r} served {served[j]:.9g} of {d[j]:.9g} "
            f"requests of region {sc.regions[j]!r} at slot {t}; every decision "
            "must serve the slot's demand exactly"
        )
    return a


def _check_capacity(y: np.ndarray, t: int, sc: Scenario) -> float:
    cap = np.asarray(sc.capacity[t])
    if sc.capacity_mode == "shared":
        used = np.einsum("njk,k->n", y, np.asarray(sc.capacity_per_request))
    else:
        used = y.sum(axis=1)
    return float(np.max(np.clip((used - cap) / np.maximum(1.0, cap), 0.0, None)))


def simulate_online(
    scenario: Scenario,
    policy: Any,
    *,
    start: int | None = None,
    stop: int | None = None,
    state: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Dispatch:
    """Run an online policy over slots ``start..stop-1``, one causal decision per slot.

    Parameters
    ----------
    scenario : Scenario
    policy : OnlinePolicy
        Object with ``decide(view) -> y`` (datacenter, region, model) [requests/slot],
        ``state()`` and ``load_state(state)``; ``name`` labels the dispatch.
    start : int, optional
        First slot to decide. Default: the slot after the last one the policy (or the
        given ``state``) has decided; 0 for a fresh policy. ``start = 0`` resets the policy.
    stop : int, optional
        One past the last slot to decide (default: the end of the horizon).
    state : dict, optional
        Saved policy state (:meth:`state` / :func:`eqglb.online.load_state`) to resume from;
        loaded into ``policy`` before the first slot.
    progress : callable(done, total), optional
        Called after every slot with the number of slots decided and the total of this run.

    Returns
    -------
    Dispatch
        ``y`` of shape (stop - start, datacenter, region, model) [requests/slot]: the whole
        horizon for a full run; score a partial run with
        ``evaluate(scenario.slice_time(start, stop), dispatch)``. ``info.status`` is
        ``"optimal"`` when every slot's decision problem was solved to optimality (online
        decisions are not the horizon's optimum); ``info.extra`` holds ``start``,
        ``stop``, per-slot decision times [s] (median, p90, max) and the policy's final
        state.

    Raises
    ------
    PolicyError
        If a decision is malformed, routes on a forbidden route or does not serve the
        slot's demand; the message names the slot.
    CausalityError
        If the policy reads a slot after the current one through :meth:`SlotView.at`.
    """
    from eqglb.slo import refuse_budget

    refuse_budget(scenario, "online")
    T = scenario.n_time
    name = str(getattr(policy, "name", type(policy).__name__))
    if not callable(getattr(policy, "decide", None)):
        raise TypeError(
            f"policy {name!r} has no decide(view) method; offline policies "
            "have plan(scenario) instead"
        )
    if state is not None:
        policy.load_state(state)
        done = int(state.get("t", 0))
        if start is None:
            start = done
        elif start != done:
            raise ValueError(
                f"state was saved after slot {done - 1} (next slot {done}); "
                f"start={start} does not continue it"
            )
    if start is None:
        start = int(getattr(policy, "slots_done", 0) or 0)
    if state is None and start == 0 and hasattr(policy, "reset"):
        policy.reset()
    stop = T if stop is None else int(stop)
    if not 0 <= start <= stop <= T:
        raise ValueError(
            f"start={start}, stop={stop} must satisfy 0 <= start <= stop <= "
            f"{T} (the scenario's number of slots)"
        )
    done_before = getattr(policy, "slots_done", None)
    if done_before is not None and int(done_before) != start:
        raise ValueError(
            f"policy {name!r} has decided slots up to {int(done_before) - 1}; "
            f"continue with start={int(done_before)} or pass a saved state"
        )
    oracle = bool(getattr(policy, "needs_oracle", False))
    if oracle:
        policy.bind_oracle(scenario)
    bufs = _Buffers(_sources(scenario), start)
    static = _static(scenario)
    N, J, K = len(scenario.datacenters), len(scenario.regions), len(scenario.models)
    y = np.zeros((stop - start, N, J, K))
    times = np.zeros(stop - start)
    cap_violation = 0.0
    time_index: pd.DatetimeIndex = scenario.time
    for t in range(start, stop):
        bufs.reveal(t)
        st = dict(static)
        st["time"] = time_index[: t + 1]
        view = SlotView(t, st, bufs.views)
        t0 = _time.perf_counter()
        yt = policy.decide(view)
        times[t - start] = _time.perf_counter() - t0
        y[t - start] = _check_decision(yt, t, scenario, name)
        cap_violation = max(cap_violation, _check_capacity(y[t - start], t, scenario))
        if progress is not None:
            progress(t - start + 1, stop - start)
    if cap_violation > FEASIBILITY_TOL:
        raise PolicyError(
            f"policy {name!r} exceeded capacity by {cap_violation:.3g} (relative) in some slot"
        )
    n = stop - start
    extra: dict[str, Any] = {
        "online": True,
        "start": start,
        "stop": stop,
        "slots": n,
        "decision_time_median_s": float(np.median(times)) if n else 0.0,
        "decision_time_p90_s": float(np.percentile(times, 90)) if n else 0.0,
        "decision_time_max_s": float(times.max()) if n else 0.0,
        "oracle": oracle,
    }
    extra.update(getattr(policy, "run_stats", lambda: {})())
    # an online policy is a feasible heuristic with no optimality bound
    info = SolveInfo(
        status="feasible",
        solver=str(getattr(policy, "solver_name", "online")),
        solve_time=float(times.sum()),
        extra=extra,
    )
    return Dispatch(y=y, policy=name, info=info)
