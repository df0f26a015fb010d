"""Seeded synthetic scenarios of equitable GLB at any size (benchmarks, ``eqglb scenario generate``).

Every scenario is synthetic but shaped like the real problem: data centres and user
regions scattered over the globe, routing limited to the nearest data centres of each
region (latency), a diurnal demand in each region's local time, diurnal electricity
price, carbon and water intensity in each data centre's local time plus AR(1) noise,
K model sizes whose energy and capacity per request grow with size while the quality
loss falls (the largest model is the best, loss 0), and capacities sized so that the
largest model cannot serve every request at peak hour (the best model is rationed).

Tiers (:data:`TIERS`, used by ``benchmarks/``): ``tiny`` (tests), ``paper`` 10 x 10 x 3 x
720 (the eGLB study's size over 30 days), ``medium`` 20 x 50 x 3 x 720 and ``year`` 100 x
1000 x 5 x 8760 (every region may use every data centre, as in issue 5's count of 4.4e9
variables; the largest model is hosted at about 60 % of the sites).

Usage::

    from eqglb.synthetic import make_instance, make_scenario
    sc = make_instance("paper", seed=0)
    big = make_scenario(50, 200, 3, 24 * 30, seed=1)   # N, J, K, T [hourly slots]

On the command line: ``eqglb scenario generate --datacenters 50 --regions 200 --models 3
--days 30 --out big/`` writes the same scenario as a scenario folder (see
docs/scenario-format.md) for ``eqglb solve --scenario big/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from eqglb.scenario import Scenario

__all__ = ["TIERS", "Tier", "make_instance", "make_scenario"]


@dataclass(frozen=True)
class Tier:
    """Sizes of one benchmark tier.

    Attributes
    ----------
    datacenters, regions, models, slots : int
        N, J, K and T (hourly slots).
    reach : int
        Number of nearest data centres each region may use [-].
    """

    datacenters: int
    regions: int
    models: int
    slots: int
    reach: int


TIERS: dict[str, Tier] = {
    "tiny": Tier(3, 4, 2, 6, 2),
    "small": Tier(5, 6, 3, 48, 3),
    "paper": Tier(10, 10, 3, 720, 5),
    "medium": Tier(20, 50, 3, 720, 6),
    "year": Tier(100, 1000, 5, 8760, 100),
}


def _diurnal(hours_local: np.ndarray, peak_hour: float, amplitude: float) -> np.ndarray:
    """1 + amplitude * cos(2 pi (h - peak) / 24) [-]."""
    return 1.0 + amplitude * np.cos(2 * np.pi * (hours_local - peak_hour) / 24.0)


def site_signals(rng: np.random.Generator, local_hours: np.ndarray) -> dict[str, np.ndarray]:
    """Seeded hourly signals of N sites from their local hours (time, datacenter): price
    [USD/kWh], carbon_intensity [kg/kWh], wue [L/kWh], ewif [L/kWh] (time, datacenter) and
    pue (datacenter,) [-], each a per-site level x a diurnal curve x AR(1) noise."""
    T, N = local_hours.shape
    price = (
        np.asarray(rng.uniform(0.05, 0.2, N))[None, :]
        * _diurnal(local_hours, 18.0, 0.3)
        * np.exp(0.15 * _ar1(rng, 0.9, (T, N)))
    )
    ci = np.clip(
        np.asarray(rng.uniform(0.05, 0.8, N))[None, :]
        * _diurnal(local_hours, 19.0, 0.2)
        * np.exp(0.1 * _ar1(rng, 0.95, (T, N))),
        0.01,
        None,
    )
    wue = np.clip(
        np.asarray(rng.uniform(0.2, 3.0, N))[None, :]
        * _diurnal(local_hours, 15.0, 0.4)
        * np.exp(0.1 * _ar1(rng, 0.9, (T, N))),
        0.05,
        None,
    )
    ewif = np.asarray(rng.uniform(0.5, 4.0, N))[None, :] * np.exp(0.05 * _ar1(rng, 0.95, (T, N)))
    pue = rng.uniform(1.1, 1.5, N)
    return {"price": price, "carbon_intensity": ci, "wue": wue, "ewif": ewif, "pue": pue}


def _ar1(rng: np.random.Generator, phi: float, shape: tuple[int, int]) -> np.ndarray:
    """Unit-variance AR(1) noise along axis 0 (time) [-]."""
    e = rng.standard_normal(shape)
    z = np.empty(shape)
    z[0] = e[0]
    g = np.sqrt(1 - phi * phi)
    for t in range(1, shape[0]):
        z[t] = phi * z[t - 1] + g * e[t]
    return z


def make_scenario(
    datacenters: int,
    regions: int,
    models: int,
    slots: int,
    *,
    reach: int = 5,
    seed: int = 0,
    capacity_mode: str = "shared",
    headroom: float = 1.15,
    validate_feasibility: bool = True,
    name: str | None = None,
) -> Scenario:
    """Build one seeded synthetic scenario.

    Parameters
    ----------
    datacenters, regions, models, slots : int
        N, J, K and T (hourly slots from 2022-01-01 00:00 UTC).
    reach : int
        Each region may use its ``reach`` nearest data centres (plus its two nearest
        ones always host every model) [-].
    seed : int
        Seed; equal arguments give equal scenarios.
    capacity_mode : {"shared", "per_model"}
        Capacity pools (see :class:`eqglb.Scenario`).
    headroom : float
        Capacity of each data centre = headroom x its peak load when every region splits
        its demand evenly over its allowed data centres with the smallest model [-] (so
        every slot is feasible; the best model is rationed at peak).
    validate_feasibility : bool
        Passed to Scenario (the exact check is skipped above 4 M variables anyway).
    name : str, optional
        Scenario name; default ``bench-NxJxKxT-seedS``.

    Returns
    -------
    Scenario
        Demand [requests/h], price [USD/kWh], carbon intensity [kg CO2/kWh], wue and
        ewif [L/kWh], pue [-], energy per request [kWh/request], capacity per request
        [GPU-s/request], capacity [GPU-s/h] (shared) or [requests/h] (per model).
    """
    for arg, value in (
        ("datacenters", datacenters),
        ("regions", regions),
        ("models", models),
        ("slots", slots),
        ("reach", reach),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{arg} = {value!r}; give a whole number >= 1")
    if capacity_mode not in ("shared", "per_model"):
        raise ValueError(f"capacity_mode = {capacity_mode!r}; use 'shared' or 'per_model'")
    if not (np.isfinite(headroom) and headroom > 0):
        raise ValueError(f"headroom = {headroom!r}; give a factor > 0 [-] (1.15 by default)")
    rng = np.random.default_rng(seed)
    N, J, K, T = datacenters, regions, models, slots
    # places: longitude sets the local time, latitude only the distance
    lon_d, lat_d = rng.uniform(-180, 180, N), rng.uniform(-50, 60, N)
    lon_r, lat_r = rng.uniform(-180, 180, J), rng.uniform(-50, 60, J)
    p1, p2 = np.radians(lat_d)[:, None], np.radians(lat_r)[None, :]
    dl = np.radians(lon_r[None, :] - lon_d[:, None])
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    km = 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))  # (N, J)
    latency = 5.0 + 0.01 * km
    order = np.argsort(km, axis=0)  # nearest data centres of each region first
    reach = max(1, min(reach, N))
    route = np.zeros((N, J), dtype=bool)
    route[order[:reach], np.arange(J)[None, :]] = True
    # models: size grows with k; the largest (last) is the best
    size = np.geomspace(1.0, 10.0 ** (0.6 * (K - 1)), K) if K > 1 else np.ones(1)
    eps = 2.5e-5 * size[None, :] * rng.uniform(0.8, 1.25, (N, 1))  # kWh/request
    r = 0.15 * size * rng.uniform(0.9, 1.1, K)  # GPU-s/request
    quality_loss = np.linspace(0.3, 0.0, K) if K > 1 else np.zeros(1)
    hosted = np.ones((N, K), dtype=bool)
    if K > 1:  # the largest model is not hosted everywhere (but at each region's 2 nearest)
        hosted[:, -1] = rng.random(N) < 0.6
        hosted[order[: min(2, N)].ravel(), -1] = True
    allowed = route[:, :, None] & hosted[:, None, :]
    # time series in local time
    time = pd.date_range("2022-01-01", periods=T, freq="h", tz="UTC")
    h_utc = np.asarray(time.hour, dtype=float)[:, None]
    local_d = (h_utc + lon_d[None, :] / 15.0) % 24
    local_r = (h_utc + lon_r[None, :] / 15.0) % 24
    population = rng.lognormal(0.0, 1.0, J)
    demand = (
        2.0e4
        * population[None, :]
        * _diurnal(local_r, 20.0, 0.5)
        * np.exp(0.1 * _ar1(rng, 0.8, (T, J)))
    )
    demand = np.round(demand, 1)
    sig = site_signals(rng, local_d)
    price, ci, wue, ewif, pue = (
        sig[k] for k in ("price", "carbon_intensity", "wue", "ewif", "pue")
    )
    # capacity from an even split over allowed data centres with the smallest model
    share = route / route.sum(axis=0, keepdims=True)  # (N, J)
    load = demand @ share.T  # (T, N) requests
    if capacity_mode == "shared":
        capacity = headroom * r[0] * load.max(axis=0) + 1.0
    else:
        # per model: the even split of every request, in each model's own pool, so that
        # a region may use any of its hosted models (rationed by headroom)
        capacity = headroom * load.max(axis=0)[:, None] * hosted / 2.0 + 1.0
        capacity[:, 0] = headroom * load.max(axis=0) + 1.0
    return Scenario(
        datacenters=tuple(f"dc{i:03d}" for i in range(N)),
        regions=tuple(f"region{j:04d}" for j in range(J)),
        models=tuple(f"model{k}" for k in range(K)),
        time=time,
        demand=demand,
        price=price,
        carbon_intensity=ci,
        wue=wue,
        ewif=ewif,
        pue=pue,
        energy_per_request=eps,
        capacity_per_request=r,
        capacity=capacity,
        quality_loss=quality_loss,
        allowed=allowed,
        capacity_mode=capacity_mode,
        latency=latency,
        name=name or f"bench-{N}x{J}x{K}x{T}-seed{seed}",
        description="synthetic benchmark instance (eqglb.synthetic)",
        attrs={"seed": seed, "generator": "eqglb.synthetic"},
        validate_feasibility=validate_feasibility,
    )


def make_instance(tier: str, seed: int = 0, **kw: Any) -> Scenario:
    """Scenario of a named tier (``TIERS``); keyword arguments go to :func:`make_scenario`."""
    try:
        t = TIERS[tier]
    except KeyError:
        raise ValueError(f"unknown tier {tier!r}; choose from {list(TIERS)}") from None
    return make_scenario(
        t.datacenters, t.regions, t.models, t.slots, reach=t.reach, seed=seed, **kw
    )
