"""Reader of ASOS/METAR weather observations downloaded from the Iowa Environmental Mesonet.

The IEM download service (``mesonet.agron.iastate.edu/request/download.phtml``, script
``cgi-bin/request/asos.py``) writes comma-separated rows with a header such as
``station,valid,tmpf,dwpf,relh,drct,sknt,p01i,alti,mslp,...,metar``:

- ``station``: station identifier (e.g. ``DFW``, ``EDDF``);
- ``valid``: observation time ``YYYY-MM-DD HH:MM`` (UTC unless another time zone was
  requested; pass ``tz`` then);
- ``tmpf`` / ``dwpf``: air / dew-point temperature [degF] (``tmpc`` / ``dwpc`` [degC]
  accepted too); ``relh``: relative humidity [%];
- ``alti``: altimeter setting [inHg]; ``mslp``: sea-level pressure [hPa];
- ``M`` marks a missing value (``null`` or empty too, depending on download options);
  lines starting with ``#`` (e.g. ``#DEBUG`` headers) are skipped.

From these :func:`load_asos` computes hourly wet-bulb temperature and on-site WUE per
station, with these stated rules:

1. Humidity: the dew point where given, else the relative humidity. A dew point above
   the air temperature by at most ``dew_tolerance_f`` (rounding in the METAR) is set
   equal to it; larger excess is an error.
2. Pressure: station pressure from the altimeter setting and ``elevation_m`` (default
   0 m, i.e. the altimeter setting itself) where ``alti`` is present; else ``mslp``
   reduced the same way; else the standard atmosphere at ``elevation_m``. Missing
   pressure values fall back to the standard atmosphere.
3. Wet bulb per observation (:func:`eqglb.physics.wet_bulb_temperature`), then the hourly
   value is the *mean of the observations in that UTC hour* ``[h, h+1)`` (routine and
   special reports alike); observations missing temperature or humidity are ignored.
4. Hours without any observation: runs of at most ``max_gap_hours`` consecutive hours are
   filled by linear interpolation in time (runs at the start or end of the requested
   range take the nearest hour's value); a longer run is an error unless
   ``allow_long_gaps=True`` (then filled the same way; the count of filled hours is in
   ``attrs["filled_hours"]``).
5. WUE of each hour from its wet bulb in degF (:func:`eqglb.physics.wue_from_wet_bulb`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from eqglb.io._common import (
    MISSING_TOKENS,
    DataFormatError,
    PathLike,
    parse_numbers,
    parse_times,
    read_table,
    require_columns,
    text_column,
)
from eqglb.physics import (
    INHG_TO_PA,
    c_to_f,
    f_to_c,
    station_pressure_from_altimeter,
    wet_bulb_temperature,
    wue_from_wet_bulb,
)
from eqglb.scenario import ScenarioError

__all__ = ["WeatherSignals", "load_asos", "read_asos"]

_TIME_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "ISO8601")


class WeatherSignals(NamedTuple):
    """Hourly weather-derived signals per station.

    Attributes
    ----------
    wet_bulb : pandas.DataFrame
        (time, station) wet-bulb temperature [degC], time = UTC start of the hour.
    wue : pandas.DataFrame
        (time, station) on-site water usage effectiveness [L/kWh].
    """

    wet_bulb: pd.DataFrame
    wue: pd.DataFrame


def read_asos(
    path: PathLike,
    *,
    tz: str = "UTC",
    dew_tolerance_f: float = 1.0,
    elevation_m: float | Mapping[str, float] = 0.0,
    on_duplicate: str = "raise",
) -> pd.DataFrame:
    """Read an IEM ASOS CSV into one row per usable observation.

    Parameters
    ----------
    path : path-like
        The CSV file.
    tz : str
        Time zone of the ``valid`` column (IEM's default is UTC).
    dew_tolerance_f : float
        Largest dew-point excess over the air temperature [degF] treated as rounding.
    elevation_m : float or mapping station -> float
        Station elevation [m] used to turn ``alti``/``mslp`` into station pressure;
        default 0 m. An ``elev`` column in the file (IEM option) overrides it.
    on_duplicate : {"raise", "mean"}
        Two observations of one station with the same ``valid`` time: an error, or
        averaged.

    Returns
    -------
    pandas.DataFrame
        Columns ``station``, ``time`` (UTC), ``t_dry_c`` [degC], ``t_wet_bulb_c`` [degC],
        ``pressure_pa`` [Pa], ``line`` (1-based line in the file).

    Raises
    ------
    DataFormatError
        Missing columns (no time, temperature or humidity column), an unparsable time
        stamp or number, implausible units (``relh`` above 100 %, an ``alti`` not in
        inHg, an ``mslp`` not in hPa), a dew point far above the air temperature, or a
        duplicated observation time.
    """
    table = read_table(path, what="IEM ASOS file")
    cols = {c.lower() for c in table.frame.columns}
    require_columns(table, ["station", "valid"], what="IEM ASOS file")
    if "tmpf" not in cols and "tmpc" not in cols:
        raise DataFormatError(
            table.path,
            "no air temperature column (tmpf or tmpc)",
            "download the file with the tmpf field",
            line=table.header_line,
        )
    if not cols & {"dwpf", "dwpc", "relh"}:
        raise DataFormatError(
            table.path,
            "no humidity column (dwpf, dwpc or relh)",
            "download the file with the dwpf (or relh) field",
            line=table.header_line,
        )
    if on_duplicate not in ("raise", "mean"):
        raise ScenarioError(f"on_duplicate={on_duplicate!r}; use 'raise' or 'mean'")
    n = len(table.frame)
    if n == 0:
        raise DataFormatError(
            table.path, "no observation rows", "give a file with data rows", line=table.header_line
        )
    miss = MISSING_TOKENS

    def num(col: str) -> np.ndarray:
        if col not in cols:
            return np.full(n, np.nan)
        return parse_numbers(table, col, missing=miss, allow_missing=True)

    t_f = num("tmpf") if "tmpf" in cols else c_to_f(num("tmpc"))
    if "dwpf" in cols:
        dew_f = num("dwpf")
    elif "dwpc" in cols:
        dew_f = c_to_f(num("dwpc"))
    else:
        dew_f = np.full(n, np.nan)
    relh = num("relh")
    alti = num("alti")
    mslp = num("mslp")

    def bad_range(values: np.ndarray, lo: float, hi: float, col: str, what: str) -> None:
        bad = ~np.isnan(values) & ((values < lo) | (values > hi))
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise DataFormatError(
                table.path,
                f"{col} = {values[r]:g} is outside [{lo:g}, {hi:g}] ({what})",
                f"give {col} in the IEM unit ({what})",
                line=table.line_of(r),
                column=col,
            )

    bad_range(t_f, -130.0, 140.0, "tmpf", "degF")
    bad_range(dew_f, -150.0, 100.0, "dwpf", "degF")
    bad_range(relh, 0.0, 100.5, "relh", "percent, 0-100")
    bad_range(alti, 25.0, 32.5, "alti", "inches of mercury")
    bad_range(mslp, 850.0, 1090.0, "mslp", "hPa")

    times = parse_times(table, "valid", _TIME_FORMATS, tz=tz)
    stations = text_column(table, "station").astype(str)

    if isinstance(elevation_m, Mapping):
        elev = np.array([float(elevation_m.get(s, 0.0)) for s in stations])
    else:
        elev = np.full(n, float(elevation_m))
    if "elev" in cols:
        e = num("elev")
        elev = np.where(np.isnan(e), elev, e)
    std = 101325.0 * (1.0 - 2.25577e-5 * elev) ** 5.2559
    pressure = np.where(
        ~np.isnan(alti),
        station_pressure_from_altimeter(alti * INHG_TO_PA, elev),
        np.where(~np.isnan(mslp), station_pressure_from_altimeter(mslp * 100.0, elev), std),
    )

    excess = dew_f - t_f
    too_high = ~np.isnan(excess) & (excess > dew_tolerance_f)
    if too_high.any():
        r = int(np.flatnonzero(too_high)[0])
        raise DataFormatError(
            table.path,
            f"dew point {dew_f[r]:g} F is above the air temperature {t_f[r]:g} F",
            "check the tmpf/dwpf values of this observation",
            line=table.line_of(r),
            column="dwpf",
        )
    dew_f = np.minimum(dew_f, t_f)
    use_dew = ~np.isnan(t_f) & ~np.isnan(dew_f)
    use_rh = ~np.isnan(t_f) & ~use_dew & ~np.isnan(relh)
    twb = np.full(n, np.nan)
    t_c = f_to_c(t_f)
    if use_dew.any():
        twb[use_dew] = wet_bulb_temperature(
            t_c[use_dew], dew_point=f_to_c(dew_f[use_dew]), pressure=pressure[use_dew]
        )
    if use_rh.any():
        twb[use_rh] = wet_bulb_temperature(
            t_c[use_rh], rel_hum=np.clip(relh[use_rh] / 100.0, 0.0, 1.0), pressure=pressure[use_rh]
        )
    ok = use_dew | use_rh
    out = pd.DataFrame(
        {
            "station": stations[ok],
            "time": times[ok],
            "t_dry_c": t_c[ok],
            "t_wet_bulb_c": twb[ok],
            "pressure_pa": pressure[ok],
            "line": table.lines[ok],
        }
    )
    key = out["station"] + "|" + out["time"].astype("int64").astype(str)
    dup = key.duplicated(keep="first").to_numpy()
    if dup.any():
        if on_duplicate == "raise":
            k = int(np.flatnonzero(dup)[0])
            first = int(np.flatnonzero(key.to_numpy() == key.iloc[k])[0])
            raise DataFormatError(
                table.path,
                f"station {out['station'].iloc[k]!r} has two observations at "
                f"{out['time'].iloc[k]:%Y-%m-%d %H:%M} UTC (also line {out['line'].iloc[first]})",
                "drop one of them or pass on_duplicate='mean'",
                line=int(out["line"].iloc[k]),
                column="valid",
            )
        out = out.groupby(["station", "time"], sort=False, as_index=False).agg(
            t_dry_c=("t_dry_c", "mean"),
            t_wet_bulb_c=("t_wet_bulb_c", "mean"),
            pressure_pa=("pressure_pa", "mean"),
            line=("line", "min"),
        )
    out.attrs["path"] = str(table.path)
    return out


def load_asos(
    path: PathLike,
    *,
    stations: Iterable[str] | None = None,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    cycles: float = 6.0,
    max_gap_hours: int = 3,
    allow_long_gaps: bool = False,
    tz: str = "UTC",
    elevation_m: float | Mapping[str, float] = 0.0,
    on_duplicate: str = "raise",
) -> WeatherSignals:
    """Hourly wet-bulb temperature and on-site WUE per station from an IEM ASOS file.

    Parameters
    ----------
    path : path-like
        IEM ASOS CSV.
    stations : iterable of str or None
        Stations to keep, in output order (default all, in order of first appearance).
    start, end : time or None
        First and last hour (UTC start of hour) of the output; default the first and
        last hour with an observation (over all kept stations). Hours at either end
        without observations count as gaps.
    cycles : float
        Cycles of concentration of the cooling tower [-] for the WUE (default 6).
    max_gap_hours : int
        Longest run of hours without observations filled by linear interpolation.
    allow_long_gaps : bool
        Interpolate longer runs too instead of raising.
    tz, elevation_m, on_duplicate
        See :func:`read_asos`.

    Returns
    -------
    WeatherSignals
        ``wet_bulb`` [degC] and ``wue`` [L/kWh], each (time, station) on an hourly UTC
        index (start of the hour); ``attrs["filled_hours"]`` counts interpolated hours
        per station.

    Raises
    ------
    DataFormatError
        File defects (see :func:`read_asos`), an unknown station, or a gap longer than
        ``max_gap_hours`` (naming the station, the hours and the lines around the gap).
    """
    obs = read_asos(path, tz=tz, elevation_m=elevation_m, on_duplicate=on_duplicate)
    src = obs.attrs["path"]
    known = list(pd.unique(obs["station"]))
    wanted = known if stations is None else [str(s) for s in stations]
    absent = [s for s in wanted if s not in known]
    if absent:
        raise DataFormatError(
            src,
            f"station(s) {absent} have no usable observation (stations found: {known})",
            "check the station codes or the file",
        )
    obs = obs[obs["station"].isin(wanted)]
    hour = obs["time"].dt.floor("h")
    t0 = hour.min() if start is None else _utc(start)
    t1 = hour.max() if end is None else _utc(end)
    if t1 < t0:
        raise ScenarioError(f"end {t1} is before start {t0}; give end >= start")
    index = pd.date_range(t0, t1, freq="h", name="time")
    wb: dict[str, pd.Series] = {}
    filled: dict[str, int] = {}
    for s in wanted:
        sel = obs["station"] == s
        g = obs[sel]
        hourly = g.groupby(hour[sel])["t_wet_bulb_c"].mean().reindex(index)
        lines = g.groupby(hour[sel])["line"].agg(["min", "max"]).reindex(index)
        isna = hourly.isna().to_numpy()
        if isna.all():
            raise DataFormatError(
                src,
                f"station {s!r} has no observation between {t0} and {t1}",
                "widen start/end or drop the station",
            )
        if isna.any():
            runs = _runs(isna)
            for a, b in runs:
                if b - a > max_gap_hours and not allow_long_gaps:
                    before = float(lines["max"].iloc[a - 1]) if a > 0 else np.nan
                    after = float(lines["min"].iloc[b]) if b < len(index) else np.nan
                    has_b = not np.isnan(before)
                    has_a = not np.isnan(after)
                    around = (
                        f" (between line {int(before)} and line {int(after)})"
                        if has_b and has_a
                        else f" (before line {int(after)})"
                        if has_a
                        else f" (after line {int(before)})"
                        if has_b
                        else ""
                    )
                    raise DataFormatError(
                        src,
                        f"station {s!r} has no observation for {b - a} hours from "
                        f"{index[a]:%Y-%m-%d %H:%M} to {index[b - 1]:%Y-%m-%d %H:%M} UTC" + around,
                        f"supply the missing observations, raise max_gap_hours (now "
                        f"{max_gap_hours}) or pass allow_long_gaps=True",
                        line=int(after) if has_a else int(before) if has_b else None,
                    )
            hourly = hourly.interpolate(method="time", limit_direction="both")
        filled[s] = int(isna.sum())
        wb[s] = hourly
    wet = pd.DataFrame(wb, index=index)
    wet.columns.name = "station"
    wue = pd.DataFrame(
        wue_from_wet_bulb(c_to_f(wet.to_numpy()), cycles=cycles), index=index, columns=wet.columns
    )
    for df, unit in ((wet, "degC"), (wue, "L/kWh")):
        df.attrs.update(
            unit=unit,
            source=src,
            filled_hours=filled,
            rule="mean of observations in each UTC hour; linear interpolation "
            f"of gaps up to {max_gap_hours} h",
        )
    return WeatherSignals(wet, wue)


def _utc(t: str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def _runs(mask: np.ndarray) -> Sequence[tuple[int, int]]:
    """Half-open index ranges [a, b) of consecutive True values."""
    m = np.concatenate([[False], mask, [False]]).astype(int)
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True))
