"""The realistic built-in scenario used when no scenario is given.

Ten data centres and ten user regions at the sites of the eGLB study (Li, Yang, Wierman,
Ren, arXiv 2307.05494): Texas, Virginia, Georgia, Nevada, Germany, Belgium, Netherlands,
Denmark, Japan, Singapore. Region j's home data centre is site j. Routing follows the
study's partial-connectivity mask (rows = data centre, columns = region), the same for
every model; ``latency`` is the round-trip time between the sites [ms] from
:func:`eqglb.latency.rtt_matrix`: Azure's published median RTT where both sites are at
Azure regions (Frankfurt, Amsterdam, Tokyo, Singapore), otherwise the affine
great-circle model fitted on those measurements (``data/azure_rtt.csv``).

Models are four sizes of one family (Qwen3-8B/14B/32B/235B-A22B) with energy and
throughput measured by the ML.ENERGY Leaderboard on NVIDIA H100 and quality from the
Arena-Hard scores of the Qwen3 Technical Report (``data/builtin_models.csv``).

Hourly price, carbon intensity and water intensity are synthesised by a seeded AR(1)
around the hour-of-day (UTC) profiles derived from the egl-2022 data
(``data/builtin_profiles.csv``, written by ``scripts/derive_builtin_profiles.py``), and
clipped to the observed range; no hourly value of the data is copied. Demand follows
the derived hour-of-day profile of the study's AI-workload trace read in each region's
local time, scaled by region population. See ``data/PROVENANCE.md``.

Public-health cost (``health_cost``, the ``health`` burden) is synthesised the same way
around the hour-of-day profiles of the health-2023 data of four US grids
(``data/builtin_health.csv``, written by ``scripts/derive_builtin_health.py``) at the four
US sites, each mapped to the nearest grid (:data:`HEALTH_GRID`); the six sites outside
the US have no health data and get 0: not modelled (no data), not zero harm.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd

from eqglb.defaults import DEFAULT_DAYS
from eqglb.io.egl2022 import PARTIAL_MASK as _STUDY_PARTIAL_MASK
from eqglb.io.health import GRID_CENTROIDS, GRID_NAMES
from eqglb.latency import great_circle_km, rtt_matrix
from eqglb.scenario import Scenario, ScenarioError

__all__ = [
    "HEALTH_GRID",
    "LATENCY_BASE_MS",
    "LATENCY_MS_PER_KM",
    "MEAN_TOTAL_DEMAND",
    "PARTIAL_MASK",
    "PUE",
    "SITES",
    "Site",
    "builtin_scenario",
    "great_circle_km",
    "latency_ms",
    "load_health_profiles",
    "load_models",
    "load_profiles",
    "model_parameters",
]


@dataclass(frozen=True)
class Site:
    """One site: a data centre and the user region (gateway) co-located with it.

    Attributes
    ----------
    name : str
        Site name (used for both the data centre and the region).
    lat, lon : float
        Approximate public coordinates of the site's main data-centre hub [degrees].
    timezone : str
        IANA time zone of the region's users (for local-time demand).
    population : float
        Approximate 2022 population of the state or country [millions] (US Census Bureau
        state estimates; World Bank for countries), rounded; sets the region's demand share.
    gpus : int
        NVIDIA H100 GPUs of the data centre [GPUs] (a design choice, see module notes).
    """

    name: str
    lat: float
    lon: float
    timezone: str
    population: float
    gpus: int


#: The ten sites in the study's order. Coordinates: Dallas TX, Ashburn VA, Atlanta GA,
#: Reno NV, Frankfurt, Brussels, Amsterdam, Copenhagen, Tokyo, Singapore.
#: GPUs: a design choice (multiples of one 8-GPU server). Virginia is largest (Ashburn is
#: the biggest data-centre hub); Singapore and Japan are small (Singapore paused new data
#: centres 2019-2022), so Japan and Singapore users, who may only use Nevada, Japan and
#: Singapore, are resource-poor. In total the 144 GPUs could serve roughly 45 % of
#: the peak-hour requests with Qwen3-235B-A22B, so the largest model must be rationed.
SITES: tuple[Site, ...] = (
    Site("Texas", 32.78, -96.80, "America/Chicago", 30.0, 16),
    Site("Virginia", 39.04, -77.49, "America/New_York", 8.7, 32),
    Site("Georgia", 33.75, -84.39, "America/New_York", 10.9, 16),
    Site("Nevada", 39.53, -119.81, "America/Los_Angeles", 3.2, 8),
    Site("Germany", 50.11, 8.68, "Europe/Berlin", 84.0, 24),
    Site("Belgium", 50.85, 4.35, "Europe/Brussels", 11.7, 8),
    Site("Netherlands", 52.37, 4.90, "Europe/Amsterdam", 17.7, 16),
    Site("Denmark", 55.68, 12.57, "Europe/Copenhagen", 5.9, 8),
    Site("Japan", 35.68, 139.69, "Asia/Tokyo", 125.1, 8),
    Site("Singapore", 1.35, 103.82, "Asia/Singapore", 5.6, 8),
)

#: Partial-connectivity mask of the eGLB study (egl-2022 README): rows = data centre,
#: columns = region, both in the order of SITES. True = the region may use the data centre.
PARTIAL_MASK: np.ndarray = _STUDY_PARTIAL_MASK  # one definition: eqglb.io.egl2022

#: Mean demand summed over all regions [requests/hour]; split by population share.
MEAN_TOTAL_DEMAND = 200_000.0
#: Power usage effectiveness of every site [-] (eGLB study, docs/FIGURES.md).
PUE = 1.1
#: Latency proxy: propagation [ms/km] (1 ms per 100 km) plus a fixed base [ms].
LATENCY_MS_PER_KM = 0.01
LATENCY_BASE_MS = 5.0
#: Environmental signals synthesised from the profile table, in Scenario field order.
_SIGNALS = ("price", "carbon_intensity", "water")

#: Grid of the health-2023 data (:mod:`eqglb.io.health`) whose public-health cost each
#: site gets: the grid whose service-area centroid (:data:`eqglb.io.health.GRID_CENTROIDS`)
#: is nearest by great-circle distance (:func:`eqglb.io.health.grid_mapping`). Texas
#: (Dallas) lies in ERCOT and Virginia (Ashburn) in PJM, 255 and 252 km from their
#: centroids. Georgia (Atlanta) is served by Southern Company, which the data lack; TVA
#: (295 km; PJM 755 km) is the nearest and covers a corner of north-west Georgia.
#: Nevada (Reno) is served by NV Energy, also absent; CISO is nearest (259 km). The other
#: sites are over 5,000 km from every grid: None, health cost 0, not modelled (no data),
#: not zero harm.
HEALTH_GRID: dict[str, str | None] = {
    "Texas": "ERCO",
    "Virginia": "PJM",
    "Georgia": "TVA",
    "Nevada": "CISO",
    "Germany": None,
    "Belgium": None,
    "Netherlands": None,
    "Denmark": None,
    "Japan": None,
    "Singapore": None,
}
_PROFILES_CSV = ("builtin_profiles.csv", "scripts/derive_builtin_profiles.py")
_HEALTH_CSV = ("builtin_health.csv", "scripts/derive_builtin_health.py")


def latency_ms(sites: tuple[Site, ...] = SITES) -> np.ndarray:
    """Latency proxy (datacenter, region) [ms]: 1 ms per 100 km of great-circle distance + 5 ms.

    Kept for the egl-2022 reproduction; the built-in scenario uses measured and modelled
    round-trip times (:func:`eqglb.latency.rtt_matrix`).
    """
    lat = np.array([s.lat for s in sites])
    lon = np.array([s.lon for s in sites])
    km = great_circle_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    return LATENCY_BASE_MS + LATENCY_MS_PER_KM * km


@functools.lru_cache(maxsize=1)
def _read_profiles() -> pd.DataFrame:
    with resources.files("eqglb").joinpath("data/builtin_profiles.csv").open("r") as fh:
        return pd.read_csv(fh, comment="#")


@functools.lru_cache(maxsize=1)
def _read_health() -> pd.DataFrame:
    with resources.files("eqglb").joinpath("data/builtin_health.csv").open("r") as fh:
        return pd.read_csv(fh, comment="#")


def load_health_profiles() -> pd.DataFrame:
    """The derived public-health profile table shipped with eqglb (a copy).

    Returns
    -------
    pandas.DataFrame
        Columns ``signal, grid, hour_utc, mean, resid_std, min, max, ar1, unit``: signal
        ``health_cost`` [USD/kWh of electricity consumed; the source's unit is assumed to be
        USD/MWh] for the grids CISO, ERCO, PJM, TVA, per hour of day (UTC slot start).
        See ``data/PROVENANCE.md``.
    """
    return _read_health().copy()


def load_profiles() -> pd.DataFrame:
    """The derived profile table shipped with eqglb (a copy).

    Returns
    -------
    pandas.DataFrame
        Columns ``signal, site, hour_utc, mean, resid_std, min, max, ar1, unit``; signals
        ``price`` [USD/kWh], ``carbon_intensity`` [kg CO2/kWh], ``water`` [L/kWh] per site
        and ``workload`` [-, mean 1] for site ``all``. See ``data/PROVENANCE.md``.
    """
    return _read_profiles().copy()


@functools.lru_cache(maxsize=1)
def _read_models() -> pd.DataFrame:
    with resources.files("eqglb").joinpath("data/builtin_models.csv").open("r") as fh:
        return pd.read_csv(fh)


def load_models() -> pd.DataFrame:
    """The model table shipped with eqglb (a copy): energy, throughput and quality with sources.

    Columns: ``model``, ``energy_model_id``, ``gpus`` [GPUs per deployment],
    ``energy_per_request_J`` [J/request], ``output_tokens_per_s`` [tokens/s, all GPUs of
    a deployment], ``mean_output_tokens`` [tokens/request], ``energy_source``,
    ``quality_benchmark``, ``quality_score`` [benchmark points], ``quality_source``.
    """
    return _read_models().copy()


def model_parameters(models: pd.DataFrame | None = None) -> dict[str, np.ndarray]:
    """Per-model scenario inputs from the model table.

    Parameters
    ----------
    models : pandas.DataFrame, optional
        Table as returned by :func:`load_models` (default: the shipped one).

    Returns
    -------
    dict
        ``energy_per_request`` [kWh/request] = J / 3.6e6;
        ``capacity_per_request`` [GPU-seconds/request] = GPUs / (output tokens/s / mean
        output tokens), i.e. GPUs divided by requests/s of one deployment;
        ``quality_loss`` [-] = (best score - score) / best score (best model = 0).
    """
    m = load_models() if models is None else models
    score = m["quality_score"].to_numpy(float)
    requests_per_s = m["output_tokens_per_s"].to_numpy(float) / m["mean_output_tokens"].to_numpy(
        float
    )
    return {
        "energy_per_request": m["energy_per_request_J"].to_numpy(float) / 3.6e6,
        "capacity_per_request": m["gpus"].to_numpy(float) / requests_per_s,
        "quality_loss": (score.max() - score) / score.max(),
    }


def _ar1(rng: np.random.Generator, phi: np.ndarray, n_time: int) -> np.ndarray:
    """Unit-variance stationary AR(1) paths, one column per coefficient: array (time, series) [-].

    z[t] = phi z[t-1] + sqrt(1 - phi^2) e[t], e ~ N(0, 1), z[0] ~ N(0, 1).
    (The recursion runs over time, vectorised over series; ``scipy.signal.lfilter`` does
    the same but importing it costs about 1 s, more than building the whole scenario.)
    """
    phi = np.clip(np.asarray(phi, float), -0.999, 0.999)
    gain = np.sqrt(1.0 - phi * phi)
    e = rng.standard_normal((n_time, phi.size))
    z = np.empty_like(e)
    z[0] = rng.standard_normal(phi.size)
    for t in range(1, n_time):
        z[t] = phi * z[t - 1] + gain * e[t]
    return z


def _pivot(
    table: pd.DataFrame,
    signal: str,
    sites: list[str],
    source: tuple[str, str] = _PROFILES_CSV,
) -> dict[str, np.ndarray]:
    """Arrays (hour, site) of mean and resid_std and (site,) of min, max, ar1 for one signal.

    ``source`` names the table's file and the script that writes it (for messages).
    """
    sub = table[table["signal"] == signal]
    missing = sorted(set(sites) - set(sub["site"]))
    if missing:
        raise ScenarioError(
            f"{source[0]}: signal {signal!r} has no rows for site(s) "
            f"{missing}; regenerate it with {source[1]}"
        )
    out = {}
    for col in ("mean", "resid_std"):
        wide = sub.pivot(index="hour_utc", columns="site", values=col).reindex(range(24))
        out[col] = wide[sites].to_numpy(float)
    for col in ("min", "max", "ar1"):
        out[col] = sub.groupby("site")[col].first()[sites].to_numpy(float)
    if np.isnan(out["mean"]).any():
        raise ScenarioError(
            f"{source[0]}: signal {signal!r} lacks some of the 24 "
            f"hours; regenerate it with {source[1]}"
        )
    return out


def _synthesise(
    prof: dict[str, np.ndarray], hours: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Seeded AR(1) around the hour-of-day profile, clipped to the observed range.

    x[t, s] = clip(mean[h[t, s], s] + resid_std[h[t, s], s] * z[t, s], min[s], max[s]),
    z a unit-variance AR(1) with the derived coefficient of each series.
    ``hours`` is (time,) or (time, series) [hour of day].
    """
    n_time, n_series = len(hours), prof["mean"].shape[1]
    h = np.broadcast_to(hours.reshape(n_time, -1), (n_time, n_series))
    cols = np.arange(n_series)[None, :]
    z = _ar1(rng, prof["ar1"], n_time)
    x = prof["mean"][h, cols] + prof["resid_std"][h, cols] * z
    return np.clip(x, prof["min"][None, :], prof["max"][None, :])


def _health_cost(hours: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Synthetic public-health cost (time, site) [USD/kWh], 0 at sites without a grid.

    One AR(1) path per grid (sites sharing a grid would share its path), drawn from
    ``rng`` in the order of the grids' first appearance in :data:`HEALTH_GRID`.
    """
    grids = list(dict.fromkeys(g for g in HEALTH_GRID.values() if g is not None))
    table = _read_health().rename(columns={"grid": "site"})
    per_grid = _synthesise(_pivot(table, "health_cost", grids, _HEALTH_CSV), hours, rng)
    out = np.zeros((len(hours), len(SITES)))
    for i, s in enumerate(SITES):
        grid = HEALTH_GRID[s.name]
        if grid is not None:
            out[:, i] = per_grid[:, grids.index(grid)]
    return out


def builtin_scenario(
    days: int = DEFAULT_DAYS, seed: int = 0, start="2022-09-22", *, health: bool = True
) -> Scenario:
    """The realistic built-in scenario: 10 sites, 4 Qwen3 models, hourly slots.

    Parameters
    ----------
    days : int
        Horizon [days] (default 7, :data:`eqglb.defaults.DEFAULT_DAYS`, as ``eqglb run``);
        the scenario has ``days * 24`` hourly slots.
    seed : int
        Seed of the synthetic signals and demand; the same seed gives the same scenario.
    start : str or pandas.Timestamp
        Start of the first slot, on a whole hour; naive times are UTC.
    health : bool
        Whether to synthesise the public-health cost ``health_cost`` at the US sites
        (default True). It is drawn from a fifth random stream, so the other signals and
        the demand are the same with or without it (and as before it existed).

    Returns
    -------
    Scenario
        Validated (and checked feasible) scenario with ``datacenters`` = ``regions`` =
        the ten sites, ``home[j]`` = site j, ``allowed`` = the study's partial mask for
        every model, ``latency`` = round-trip time [ms] between the sites
        (:func:`eqglb.latency.rtt_matrix`), demand [requests/hour], price [USD/kWh],
        carbon_intensity [kg CO2/kWh], wue [L/kWh] = egl-2022 combined on-site + off-site
        water intensity (applied to IT energy as in the study), ewif = 0, pue = 1.1,
        energy_per_request [kWh/request], capacity_per_request [GPU-s/request],
        capacity [GPU-s/hour] = GPUs x 3600 (shared mode), quality_loss [-],
        health_cost [USD/kWh of facility energy] at the US sites from the grid of
        :data:`HEALTH_GRID` (health-2023 data, unit assumed USD/MWh in the source), 0
        elsewhere (not modelled: no data, not zero harm); None with ``health=False``.

    Raises
    ------
    ScenarioError
        If ``days`` is not a positive integer, ``seed`` is not a non-negative integer or
        ``start`` is not a timestamp on a whole hour.
    """
    if isinstance(days, bool) or not isinstance(days, (int, np.integer)) or days < 1:
        raise ScenarioError(
            f"builtin scenario: days is {days!r}; give a positive whole number of days, e.g. days=7"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ScenarioError(f"builtin scenario: seed is {seed!r}; give an integer >= 0")
    if not isinstance(health, (bool, np.bool_)):
        raise ScenarioError(f"builtin scenario: health is {health!r}; give True or False")
    try:
        t0 = pd.Timestamp(start)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(
            f"builtin scenario: start {start!r} is not a timestamp ({exc}); "
            "give an ISO 8601 time such as 2022-09-22 00:00"
        ) from exc
    if t0 is pd.NaT:
        raise ScenarioError(
            f"builtin scenario: start {start!r} is not a timestamp; "
            "give an ISO 8601 time such as 2022-09-22 00:00"
        )
    t0 = t0.tz_localize("UTC") if t0.tz is None else t0.tz_convert("UTC")
    if t0 != t0.floor("h"):
        raise ScenarioError(
            f"builtin scenario: start {start!r} is not on a whole hour; "
            f"use e.g. {t0.floor('h'):%Y-%m-%d %H:00}"
        )

    n_time = int(days) * 24
    time = pd.date_range(t0, periods=n_time, freq="h")
    names = tuple(s.name for s in SITES)
    table = _read_profiles()
    # five streams: price, carbon, water, demand, health. SeedSequence.spawn(5) gives the
    # same first four children as spawn(4), so adding health left the others unchanged.
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(5)]

    hours_utc = np.asarray(time.hour)
    sig = {
        name: _synthesise(_pivot(table, name, list(names)), hours_utc, rng)
        for name, rng in zip(_SIGNALS, streams[:3], strict=True)
    }

    work = _pivot(table, "workload", ["all"] * len(SITES))
    local_hours = np.stack([np.asarray(time.tz_convert(s.timezone).hour) for s in SITES], axis=1)
    shape = _synthesise(work, local_hours, streams[3])  # (time, region) [-], mean ~ 1
    population = np.array([s.population for s in SITES])
    scale = MEAN_TOTAL_DEMAND * population / population.sum()  # [requests/hour]
    demand = np.round(shape * scale[None, :])

    health_cost = _health_cost(hours_utc, streams[4]) if health else None
    us = [s.name for s in SITES if HEALTH_GRID[s.name] is not None]
    not_modelled = [s.name for s in SITES if HEALTH_GRID[s.name] is None]

    params = model_parameters()
    models = load_models()
    gpus = np.array([s.gpus for s in SITES], dtype=float)
    description = (
        "Built-in eqglb scenario (synthetic, seeded). Sites and partial-connectivity mask of "
        "the eGLB study (Li, Yang, Wierman, Ren, arXiv 2307.05494). Hourly price, carbon "
        "intensity and water intensity synthesised by a seeded AR(1) around hour-of-day "
        "profiles derived from the study's egl-2022 data (MIT licence, 2022-09-22..2022-10-11), "
        "clipped to the observed range; demand follows the derived hour-of-day profile of the "
        "study's AI-workload trace in each region's local time, scaled by population "
        f"({MEAN_TOTAL_DEMAND:,.0f} requests/hour on average in total). Models Qwen3-8B/14B/32B/"
        "235B-A22B: energy and throughput from the ML.ENERGY Leaderboard (H100, lm-arena-chat), "
        "quality loss from Arena-Hard (non-thinking) in the Qwen3 Technical Report "
        "(arXiv 2505.09388, Tables 12, 14, 16, 18). Capacities are a design choice "
        f"({int(gpus.sum())} H100 GPUs in total)."
    )
    if health:
        description += (
            " Public-health cost of the grid's air pollution (internal + external) at the US "
            "sites, synthesised the same way around hour-of-day profiles derived from the "
            "health-2023 data of four US grids (Ren-Research/Health-Impact-Predictor, MIT "
            "licence, 2023; source unit assumed USD/MWh), each site mapped to the nearest grid ("
            + ", ".join(f"{n} -> {HEALTH_GRID[n]}" for n in us)
            + "); at "
            + ", ".join(not_modelled)
            + " it is not modelled (no data), not zero harm, and set to 0."
        )
    description += " See eqglb/data/PROVENANCE.md."
    attrs = {
        "source": "eqglb.builtin.builtin_scenario",
        "seed": int(seed),
        "days": int(days),
        "signals_source": "egl-2022 (Li et al., arXiv 2307.05494, MIT licence), "
        "derived statistics in eqglb/data/builtin_profiles.csv",
        "models_source": "eqglb/data/builtin_models.csv",
        "units": {
            "demand": "requests/hour",
            "price": "USD/kWh",
            "carbon_intensity": "kg CO2/kWh",
            "wue": "L/kWh (on-site + off-site)",
            "ewif": "L/kWh",
            "energy_per_request": "kWh/request",
            "capacity_per_request": "GPU-seconds/request",
            "capacity": "GPU-seconds/hour",
            "latency": "ms (round trip)",
            **(
                {"health_cost": "USD/kWh of facility energy (source unit assumed USD/MWh)"}
                if health
                else {}
            ),
        },
        "latency_source": "eqglb/data/azure_rtt.csv (Azure median inter-region RTT, "
        "measured where both sites are Azure regions, else fitted model)",
        "sites": {
            s.name: {
                "lat": s.lat,
                "lon": s.lon,
                "timezone": s.timezone,
                "population_millions": s.population,
                "gpus": s.gpus,
            }
            for s in SITES
        },
        **(
            {
                "health_source": "health-2023 (Ren-Research/Health-Impact-Predictor, MIT "
                "licence; Liu, Wu, Li, Ren, NeurIPS 2025 workshop ResponsibleFM), derived "
                "statistics in eqglb/data/builtin_health.csv; health_cost = internal + "
                "external health cost; the source states no unit, USD/MWh assumed",
                "health_grids": {
                    n: {
                        "grid": str(HEALTH_GRID[n]),
                        "name": GRID_NAMES[str(HEALTH_GRID[n])],
                        "centroid": list(GRID_CENTROIDS[str(HEALTH_GRID[n])]),
                    }
                    for n in us
                },
                "health_not_modelled": {
                    "sites": not_modelled,
                    "note": "no health data: health_cost 0 = not modelled (no data), not zero harm",
                },
            }
            if health
            else {}
        ),
        "quality_benchmark": str(models["quality_benchmark"].iloc[0]),
        "quality_score": dict(
            zip(models["model"], models["quality_score"].astype(float), strict=True)
        ),
    }
    return Scenario(
        datacenters=names,
        regions=names,
        models=tuple(str(m) for m in models["model"]),
        time=time,
        demand=demand,
        price=sig["price"],
        carbon_intensity=sig["carbon_intensity"],
        wue=sig["water"],
        ewif=np.zeros((n_time, len(SITES))),
        pue=np.full(len(SITES), PUE),
        energy_per_request=params["energy_per_request"],
        capacity_per_request=params["capacity_per_request"],
        capacity=gpus * 3600.0,
        quality_loss=params["quality_loss"],
        health_cost=health_cost,
        allowed=PARTIAL_MASK,
        capacity_mode="shared",
        latency=rtt_matrix([(s.lat, s.lon) for s in SITES], [(s.lat, s.lon) for s in SITES]),
        home=names,
        name="builtin",
        description=description,
        attrs=attrs,
    )
