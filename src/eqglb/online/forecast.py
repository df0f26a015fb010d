"""Forecasts of the time-varying inputs for the forecast-aware (receding-horizon) policy.

A forecaster turns what a :class:`~eqglb.online.simulator.SlotView` knows at slot t into
values for slots ``t, t+1, ..., t+h-1``. Row 0 is always the known present (slot t); rows
1.. are forecasts. Signals forecast: ``demand`` (time, region), ``price``,
``carbon_intensity``, ``wue``, ``ewif``, ``pue`` (time, datacenter) and ``capacity``.

* :class:`SeasonalNaive` (default, causal): the value one season earlier, repeated
  (``x[s] = x[s - period * ceil((s - t) / period)]``); before a full season has been seen,
  the last value (persistence).
* :class:`PerfectForecast` (an **oracle**, not causal): the true future values, read from the
  scenario the simulator binds to it. It exists to measure how much better forecasts
  could make a policy, never to run one.
* :func:`with_error`: multiplicative lognormal noise ``exp(sigma Z - sigma^2 / 2)`` (mean 1)
  on every forecast row (not on the present, not on PUE or capacity), independent per
  slot, region/data centre and signal, drawn from a generator seeded by ``(seed, t)`` so
  a resumed run sees the same noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from eqglb.fields import SIGNALS, signal_or_default

__all__ = [
    "FORECAST_SIGNALS",
    "NOISY_SIGNALS",
    "Forecaster",
    "PerfectForecast",
    "SeasonalNaive",
    "make_forecaster",
    "with_error",
]

#: Signals a forecaster returns: every slot signal of :data:`eqglb.fields.SIGNALS`.
FORECAST_SIGNALS = (
    "demand",
    "price",
    "carbon_intensity",
    "wue",
    "ewif",
    "pue",
    "capacity",
) + tuple(
    n
    for n in SIGNALS
    if n not in ("demand", "price", "carbon_intensity", "wue", "ewif", "pue", "capacity")
)
#: Signals the error knob perturbs (in this order: the draws of earlier releases first).
NOISY_SIGNALS = ("demand", "price", "carbon_intensity", "wue", "ewif") + tuple(
    n
    for n in FORECAST_SIGNALS
    if n not in ("demand", "price", "carbon_intensity", "wue", "ewif", "pue", "capacity")
)


def _signal(source: Any, name: str) -> np.ndarray:
    """Signal ``name`` of a view or scenario; an optional signal it lacks reads as 0."""
    return np.asarray(signal_or_default(source, name, lambda: np.shape(source.price)))


class Forecaster(Protocol):
    """Something that forecasts the signals of slots t..t+h-1 from a view at slot t."""

    name: str

    def forecast(self, view: Any, h: int) -> dict[str, np.ndarray]:
        """Arrays with first axis h; row 0 is slot t's known value."""
        ...


@dataclass
class SeasonalNaive:
    """Seasonal-naive forecast: the last observed value at the same phase of the season.

    Parameters
    ----------
    period : int
        Season length [slots] (24 for a daily cycle of hourly slots).
    """

    period: int = 24
    name: str = "seasonal-naive"
    needs_oracle = False

    def __post_init__(self) -> None:
        if int(self.period) < 1:
            raise ValueError(f"period = {self.period!r}; give a season length >= 1 [slots]")
        self.period = int(self.period)

    def forecast(self, view: Any, h: int) -> dict[str, np.ndarray]:
        t = view.t
        s = t + np.arange(h)
        back = self.period * np.ceil((s - t) / self.period).astype(int)
        src = s - back
        src = np.where(src >= 0, src, t)  # not a full season seen yet: persistence
        return {name: _signal(view, name)[src] for name in FORECAST_SIGNALS}


class PerfectForecast:
    """Oracle: the true values of the coming slots (hindsight benchmark only).

    The simulator binds the scenario to it (``bind(scenario)``) because the policy using
    it declares ``needs_oracle``; the dispatch's ``info.extra["oracle"]`` is then True.
    """

    name = "perfect (oracle)"
    needs_oracle = True

    def __init__(self, scenario: Any = None) -> None:
        self._sc = scenario

    def bind(self, scenario: Any) -> None:
        self._sc = scenario

    def forecast(self, view: Any, h: int) -> dict[str, np.ndarray]:
        if self._sc is None:
            raise RuntimeError(
                "PerfectForecast has no scenario: it is an oracle and needs "
                "simulate_online to bind one (or PerfectForecast(scenario))"
            )
        t = view.t
        return {name: _signal(self._sc, name)[t : t + h] for name in FORECAST_SIGNALS}


def with_error(fc: dict[str, np.ndarray], sigma: float, seed: int, t: int) -> dict[str, np.ndarray]:
    """Forecast with multiplicative lognormal noise of log-standard-deviation ``sigma`` [-].

    Row 0 (the present) is left exact. The factor ``exp(sigma Z - sigma^2/2)`` has mean 1,
    so the noise biases no forecast on average.
    """
    if sigma <= 0:
        return fc
    rng = np.random.default_rng([int(seed), int(t)])
    out = dict(fc)
    for name in NOISY_SIGNALS:
        if name not in fc:  # an optional signal the forecaster does not give
            continue
        a = np.array(fc[name], dtype=float)
        if a.shape[0] > 1:
            z = rng.standard_normal(a[1:].shape)
            a[1:] *= np.exp(sigma * z - 0.5 * sigma * sigma)
        out[name] = a
    return out


def make_forecaster(spec: Any) -> Any:
    """Forecaster from a name (``"seasonal"``, ``"seasonal:168"``, ``"perfect"``) or object."""
    if not isinstance(spec, str):
        if not callable(getattr(spec, "forecast", None)):
            raise ValueError(f"forecaster {spec!r} has no forecast(view, h) method")
        return spec
    name, _, arg = spec.partition(":")
    if name in ("seasonal", "seasonal-naive", "naive"):
        return SeasonalNaive(int(arg) if arg else 24)
    if name in ("perfect", "oracle"):
        return PerfectForecast()
    raise ValueError(
        f"unknown forecaster {spec!r}; use 'seasonal', 'seasonal:<period>' or 'perfect' (oracle)"
    )
