"""Causal simulator: drives an online policy slot by slot, showing it only the past.

At slot ``t`` a policy receives a :class:`SlotView`: the static data of the scenario and the
time-varying signals (demand, price, carbon intensity, WUE, EWIF, PUE, capacity and the
per-request cost coefficients derived from them) at slots ``0..t``, never later.

The loop itself (history, view, decision checks, cost accounting) is the
:class:`eqglb.online.stepper.Stepper` that the dispatch service steps too: an offline run
and a served stream of the same signals give the same decisions.

Causality is enforced by construction, not by trust:

* the stepper copies slot ``t``'s row of every signal into its own buffers just before
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

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from eqglb.fields import FIELDS
from eqglb.online.stepper import (
    COEFFICIENTS,
    FEASIBILITY_TOL,
    INPUT_SIGNALS,
    STATIC,
    PolicyError,
    Stepper,
)
from eqglb.scenario import Dispatch, Scenario, SolveInfo

__all__ = [
    "FEASIBILITY_TOL",
    "SIGNALS",
    "CausalityError",
    "OnlinePolicy",
    "PolicyError",
    "SlotView",
    "simulate_online",
]

_COEF_UNITS = {"energy_cost": "USD/request", "carbon": "kg CO2/request", "water": "L/request"}

#: Time-varying inputs a view exposes up to the current slot, with their units: the
#: scenario's signals (:data:`eqglb.fields.SIGNALS`) and the per-request coefficients of
#: the energy cost and of every data-centre burden (:data:`eqglb.burdens.BURDENS`).
SIGNALS: dict[str, str] = {
    **{n: f"({', '.join(FIELDS[n].dims)}) [{FIELDS[n].unit}]" for n in INPUT_SIGNALS},
    "capacity": "(time, datacenter) [units/slot] or (time, datacenter, model) [requests/slot]",
    **{
        n: f"(time, datacenter, model) [{_COEF_UNITS.get(n, 'burden unit/request')}]"
        for n in COEFFICIENTS
    },
}


from eqglb.errors import CausalityError  # noqa: E402  (one errors module)


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
    demand, price, carbon_intensity, wue, ewif, health_cost, pue, capacity : arrays
        History up to and including slot t (first axis has length t + 1); see
        :data:`SIGNALS` for shapes and units.
    energy_cost, carbon, water, health : arrays (time, datacenter, model)
        Per-request coefficients of :func:`eqglb.costs.coefficients` at slots 0..t
        [USD/request], [kg CO2/request], [L/request], [USD/request] (one per
        data-centre burden).
    """

    __slots__ = ("t", "n_time", "_time_ns", *STATIC, *SIGNALS)

    def __init__(
        self,
        t: int,
        static: dict[str, Any],
        history: dict[str, np.ndarray],
        time_ns: np.ndarray | None = None,
    ) -> None:
        self.t = t
        for name, value in static.items():
            setattr(self, name, value)
        for name, buf in history.items():
            setattr(self, name, buf[: t + 1])
        self._time_ns = time_ns

    @property
    def time(self) -> pd.DatetimeIndex:
        """Start of slots ``0..t`` (UTC)."""
        if self._time_ns is None:
            raise AttributeError("this view has no slot times")
        return pd.DatetimeIndex(pd.to_datetime(self._time_ns[: self.t + 1], utc=True))

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
        return getattr(self, name)[slot]  # type: ignore[no-any-return]

    def now(self, name: str) -> np.ndarray:
        """Signal ``name`` at the current slot t."""
        return getattr(self, name)[self.t]  # type: ignore[no-any-return]

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


def static_of(sc: Scenario) -> dict[str, Any]:
    """The static data of a view (:data:`eqglb.online.stepper.STATIC`) from a scenario."""
    return {name: getattr(sc, name) for name in STATIC}


def _signal(sc: Scenario, name: str) -> np.ndarray:
    a = getattr(sc, name, None)
    if a is None:  # an optional signal the scenario does not give
        return np.zeros((sc.n_time, len(sc.datacenters)))
    return np.asarray(a, dtype=float)


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
    stepper = Stepper(policy, static_of(scenario), T, rows=stop)
    src = {n: _signal(scenario, n) for n in INPUT_SIGNALS}
    time_ns = np.asarray(scenario.time.asi8, dtype=np.int64)
    for t in range(start):  # what a resumed policy has seen before (its history)
        stepper.record(t, {n: a[t] for n, a in src.items()}, int(time_ns[t]))
    stepper.t = start
    N, J, K = len(scenario.datacenters), len(scenario.regions), len(scenario.models)
    y = np.zeros((stop - start, N, J, K))
    times = np.zeros(stop - start)
    for t in range(start, stop):
        step = stepper.step({n: a[t] for n, a in src.items()}, int(time_ns[t]))
        y[t - start] = step.y
        times[t - start] = step.decide_time
        if progress is not None:
            progress(t - start + 1, stop - start)
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
