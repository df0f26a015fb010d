"""Physical sub-models that turn raw weather and grid data into scenario inputs.

- :func:`wet_bulb_temperature`: psychrometric wet-bulb temperature [degC] from dry-bulb
  temperature, dew point or relative humidity, and pressure. The default ``"numpy"``
  method solves the same ASHRAE equations as psychrolib (Handbook Fundamentals 2017,
  ch. 1: Hyland-Wexler saturation pressure, eqns 5-6 with the switch at the triple point;
  humidity ratio eqn 20; psychrometric equations 33 and 35) by a vectorised bisection to
  1e-6 degC, so it agrees with psychrolib to within psychrolib's own bisection tolerance
  (0.001 degC). ``method="psychrolib"`` calls psychrolib element by element (reference).
- :func:`wue_from_wet_bulb`: on-site cooling-tower water usage effectiveness [L/kWh].
- :func:`grid_intensity`: generation-weighted carbon intensity [kg CO2/kWh] and
  energy-water intensity factor EWIF [L/kWh] of an hourly fuel mix, with per-fuel factors
  read from ``eqglb/data/fuel_factors.csv`` (replaceable).

Conventions (each one a parameter):

- Hydro: water factor 0 by default, as in the eGLB study (reservoir evaporation is not
  counted); pass ``hydro_water_l_per_kwh`` to count a reservoir-evaporation value of your
  choice.
- Negative generation (pumped storage or batteries charging, station service): clipped to
  0 before weighting (``negative="clip"``), i.e. charging is neither generation nor an
  emission credit; ``negative="raise"`` rejects it instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from eqglb.scenario import ScenarioError

__all__ = [
    "GAL_PER_MWH_TO_L_PER_KWH",
    "INHG_TO_PA",
    "c_to_f",
    "f_to_c",
    "fuel_factors",
    "grid_intensity",
    "station_pressure_from_altimeter",
    "wet_bulb_temperature",
    "wue_from_wet_bulb",
]

#: 1 US gal/MWh in L/kWh (3.785411784 L per US gallon, 1000 kWh per MWh).
GAL_PER_MWH_TO_L_PER_KWH = 3.785411784e-3
#: 1 inch of mercury in Pa.
INHG_TO_PA = 3386.389

_MIN_HUM_RATIO = 1e-7  # psychrolib's floor on the humidity ratio [kg/kg]
_TRIPLE_POINT_C = 0.01
_FREEZING_C = 0.0
_BISECTION_STEPS = 36  # bracket <= 300 degC wide -> 300 / 2**36 < 1e-8 degC


def f_to_c(t_f: Any) -> np.ndarray:
    """Degrees Fahrenheit -> degrees Celsius."""
    return (np.asarray(t_f, dtype=float) - 32.0) * (5.0 / 9.0)


def c_to_f(t_c: Any) -> np.ndarray:
    """Degrees Celsius -> degrees Fahrenheit."""
    return np.asarray(t_c, dtype=float) * 1.8 + 32.0


# ----------------------------------------------------------------------------- psychrometrics
def _sat_vap_pres(t_c: np.ndarray) -> np.ndarray:
    """Saturation vapour pressure [Pa] over ice (T <= 0.01 degC) or liquid water (ASHRAE eqns 5-6)."""
    t = t_c + 273.15
    ice = (
        -5.6745359e03 / t
        + 6.3925247
        - 9.677843e-03 * t
        + 6.2215701e-07 * t**2
        + 2.0747825e-09 * t**3
        - 9.484024e-13 * t**4
        + 4.1635019 * np.log(t)
    )
    water = (
        -5.8002206e03 / t
        + 1.3914993
        - 4.8640239e-02 * t
        + 4.1764768e-05 * t**2
        - 1.4452093e-08 * t**3
        + 6.5459673 * np.log(t)
    )
    return np.exp(np.where(t_c <= _TRIPLE_POINT_C, ice, water))


def _hum_ratio_from_vap_pres(p_v: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Humidity ratio [kg water/kg dry air] (ASHRAE eqn 20), floored like psychrolib."""
    return np.maximum(0.621945 * p_v / (p - p_v), _MIN_HUM_RATIO)


def _hum_ratio_from_wet_bulb(t_db: np.ndarray, t_wb: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Humidity ratio that a wet-bulb temperature implies (ASHRAE eqns 33 and 35)."""
    ws = _hum_ratio_from_vap_pres(_sat_vap_pres(t_wb), p)
    above = ((2501.0 - 2.326 * t_wb) * ws - 1.006 * (t_db - t_wb)) / (
        2501.0 + 1.86 * t_db - 4.186 * t_wb
    )
    below = ((2830.0 - 0.24 * t_wb) * ws - 1.006 * (t_db - t_wb)) / (
        2830.0 + 1.86 * t_db - 2.1 * t_wb
    )
    return np.maximum(np.where(t_wb >= _FREEZING_C, above, below), _MIN_HUM_RATIO)


def _dew_point_from_vap_pres(t_db: np.ndarray, p_v: np.ndarray) -> np.ndarray:
    """Dew point [degC]: inverse of the saturation pressure by bisection on [-100, t_db]."""
    lo = np.full_like(t_db, -100.0)
    hi = t_db.copy()
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        above = _sat_vap_pres(mid) > p_v
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return np.minimum(0.5 * (lo + hi), t_db)


def _first_bad(mask: np.ndarray) -> str:
    mask = np.asarray(mask)
    if mask.ndim == 0:
        return "the value given"
    idx = np.argwhere(mask)[0]
    return f"index {tuple(int(i) for i in idx)}" if idx.size > 1 else f"index {int(idx[0])}"


def wet_bulb_temperature(
    t_dry: Any,
    *,
    dew_point: Any = None,
    rel_hum: Any = None,
    pressure: Any = 101325.0,
    method: str = "numpy",
) -> np.ndarray:
    """Thermodynamic (psychrometric) wet-bulb temperature.

    Parameters
    ----------
    t_dry : array_like
        Dry-bulb air temperature [degC], in [-100, 200] (psychrolib's range).
    dew_point : array_like, optional
        Dew-point temperature [degC], <= ``t_dry``. Give exactly one of ``dew_point`` and
        ``rel_hum``.
    rel_hum : array_like, optional
        Relative humidity [-], a fraction in [0, 1] (not percent).
    pressure : array_like
        Atmospheric (station) pressure [Pa], in [30 000, 120 000]; default sea level.
    method : {"numpy", "psychrolib"}
        ``"numpy"``: vectorised bisection on the ASHRAE psychrometric equation (fast;
        agrees with psychrolib to < 0.002 degC, see Notes). ``"psychrolib"``:
        psychrolib's SI functions element by element (the reference; slow).

    Returns
    -------
    numpy.ndarray
        Wet-bulb temperature [degC], broadcast shape of the inputs.

    Notes
    -----
    ASHRAE's psychrometric equation has two branches, eqn 33 (wet bulb >= 0 degC, liquid
    water) and eqn 35 (below 0 degC, ice), that do not meet at 0 degC: for some air whose
    wet bulb is within about 0.8 degC of freezing both branches have a root. This method
    then returns the liquid-water root (the state of a cooling tower's water); psychrolib
    returns whichever root its bisection reaches (the ice root for about 0.5 % of random
    weather), so there the two may differ by up to about 0.8 degC. Everywhere else they
    agree to < 0.002 degC (psychrolib stops at 0.001 degC).

    Raises
    ------
    ScenarioError
        Non-finite inputs, values outside the ranges above (e.g. a pressure given in hPa
        or a humidity in percent), a dew point above the dry-bulb temperature, or an
        unknown method; the message names the first offending index.
    """
    if (dew_point is None) == (rel_hum is None):
        raise ScenarioError(
            "wet_bulb_temperature needs exactly one of dew_point [degC] and "
            "rel_hum [-]; give one of them"
        )
    try:
        t = np.asarray(t_dry, dtype=float)
        hum = np.asarray(dew_point if dew_point is not None else rel_hum, dtype=float)
        p = np.asarray(pressure, dtype=float)
        t, hum, p = np.broadcast_arrays(t, hum, p)
    except ValueError as exc:
        raise ScenarioError(
            f"wet_bulb_temperature inputs are not numbers of compatible "
            f"shapes ({exc}); give arrays of one shape"
        ) from exc
    hum_name = "dew_point" if dew_point is not None else "rel_hum"
    for name, a in (("t_dry", t), (hum_name, hum), ("pressure", p)):
        if not np.isfinite(a).all():
            raise ScenarioError(
                f"{name} has NaN/inf at {_first_bad(~np.isfinite(a))}; "
                "fill or drop missing values first"
            )
    if ((t < -100) | (t > 200)).any():
        raise ScenarioError(
            f"t_dry is outside [-100, 200] degC at "
            f"{_first_bad((t < -100) | (t > 200))}; give degrees Celsius"
        )
    if ((p < 3.0e4) | (p > 1.2e5)).any():
        bad = (p < 3.0e4) | (p > 1.2e5)
        raise ScenarioError(
            f"pressure {p[bad].ravel()[0]:g} Pa at {_first_bad(bad)} "
            "is implausible; give station pressure in Pa (sea level ~101325)"
        )
    if dew_point is not None:
        if (hum > t).any():
            raise ScenarioError(
                f"dew_point is above t_dry at {_first_bad(hum > t)}; the dew "
                "point cannot exceed the dry-bulb temperature"
            )
        if (hum < -100).any():
            raise ScenarioError(
                f"dew_point is below -100 degC at {_first_bad(hum < -100)}; give degrees Celsius"
            )
    elif ((hum < 0) | (hum > 1)).any():
        raise ScenarioError(
            f"rel_hum is outside [0, 1] at {_first_bad((hum < 0) | (hum > 1))}; "
            "give a fraction (percent / 100)"
        )

    if method == "psychrolib":
        return _wet_bulb_psychrolib(t, hum, p, dew_point is not None)
    if method != "numpy":
        raise ScenarioError(f"unknown wet-bulb method {method!r}; use 'numpy' or 'psychrolib'")

    # Bracket: the wet bulb lies between the dew point and the dry bulb (as in psychrolib).
    if dew_point is not None:
        w = _hum_ratio_from_vap_pres(_sat_vap_pres(hum), p)
        lo = hum.copy()
    else:
        w = _hum_ratio_from_vap_pres(hum * _sat_vap_pres(t), p)
        lo = _dew_point_from_vap_pres(t, p * w / (0.621945 + w))
    hi = t.copy()
    # ASHRAE's eqn 35 (ice bulb, Twb < 0) lies above eqn 33 (water, Twb >= 0) at 0 degC, so
    # near freezing both branches can have a root. Rule: take the liquid-water root when
    # there is one (W*(0, water) <= W), else the ice root; each branch is monotone.
    liquid = (hi >= _FREEZING_C) & (_hum_ratio_from_wet_bulb(t, np.zeros_like(t), p) <= w)
    lo = np.where(liquid, np.maximum(lo, _FREEZING_C), lo)
    hi = np.where(liquid, hi, np.minimum(hi, _FREEZING_C))
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        above = _hum_ratio_from_wet_bulb(t, mid, p) > w
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return 0.5 * (lo + hi)


def _wet_bulb_psychrolib(t: np.ndarray, hum: np.ndarray, p: np.ndarray, is_dew: bool) -> np.ndarray:
    import psychrolib

    previous = psychrolib.GetUnitSystem()
    psychrolib.SetUnitSystem(psychrolib.SI)
    try:
        f = psychrolib.GetTWetBulbFromTDewPoint if is_dew else psychrolib.GetTWetBulbFromRelHum
        out = np.array(
            [
                f(float(a), float(b), float(c))
                for a, b, c in zip(t.ravel(), hum.ravel(), p.ravel(), strict=True)
            ]
        )
    finally:
        if previous is not None:
            psychrolib.SetUnitSystem(previous)
    return out.reshape(t.shape)


def station_pressure_from_altimeter(altimeter_pa: Any, elevation_m: Any) -> np.ndarray:
    """Station pressure from an altimeter setting.

    The altimeter setting is the sea-level pressure of the standard atmosphere that gives
    the station pressure at the station's elevation, so
    ``P_stn = A * (1 - 2.25577e-5 h)^5.2559`` (ASHRAE Handbook Fundamentals 2017, ch. 1,
    eqn 3, as psychrolib's ``GetStandardAtmPressure``).

    Parameters
    ----------
    altimeter_pa : array_like
        Altimeter setting [Pa].
    elevation_m : array_like
        Station elevation above sea level [m].

    Returns
    -------
    numpy.ndarray
        Station pressure [Pa].
    """
    a = np.asarray(altimeter_pa, dtype=float)
    h = np.asarray(elevation_m, dtype=float)
    return a * (1.0 - 2.25577e-5 * h) ** 5.2559


# ----------------------------------------------------------------------------- cooling water
def wue_from_wet_bulb(t_wet_bulb_f: Any, cycles: float = 6.0, floor: float = 0.05) -> np.ndarray:
    """On-site water usage effectiveness of an evaporative cooling tower.

    ``wue = S / (S - 1) * (6e-5 Twb^3 - 0.01 Twb^2 + 0.61 Twb - 10.4)``, clipped below at
    ``floor`` (eGLB study, docs/model.md).

    Parameters
    ----------
    t_wet_bulb_f : array_like
        Wet-bulb temperature [degF] (convert degC with :func:`c_to_f`).
    cycles : float
        Cycles of concentration S of the cooling tower [-], > 1 (default 6).
    floor : float
        Lower clip [L/kWh] (default 0.05).

    Returns
    -------
    numpy.ndarray
        Water consumed per unit of IT energy [L/kWh].
    """
    if not np.isfinite(cycles) or cycles <= 1:
        raise ScenarioError(
            f"cycles of concentration is {cycles!r}; it must be > 1 "
            "(S/(S-1) blows up at 1; typical towers run 3-10)"
        )
    t = np.asarray(t_wet_bulb_f, dtype=float)
    if not np.isfinite(t).all():
        raise ScenarioError(
            f"wet-bulb temperature has NaN/inf at {_first_bad(~np.isfinite(t))}; "
            "fill or drop missing values first"
        )
    poly = 6e-5 * t**3 - 0.01 * t**2 + 0.61 * t - 10.4
    return np.maximum(cycles / (cycles - 1.0) * poly, floor)


# ----------------------------------------------------------------------------- grid mix
def fuel_factors(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Per-fuel carbon and water factors.

    Parameters
    ----------
    path : path-like or None
        A CSV with columns ``fuel``, ``carbon_kg_per_kwh``, ``water_gal_per_mwh`` (or
        ``water_l_per_kwh``) and optionally ``source``. ``None`` reads the packaged
        ``eqglb/data/fuel_factors.csv`` (the eGLB study's values, see docs/model.md).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``fuel`` with columns ``carbon_kg_per_kwh`` [kg CO2/kWh],
        ``water_l_per_kwh`` [L/kWh] and ``source``.
    """
    if path is None:
        with resources.files("eqglb.data").joinpath("fuel_factors.csv").open("r") as fh:
            df = pd.read_csv(fh)
        where = "eqglb/data/fuel_factors.csv"
    else:
        where = str(path)
        try:
            df = pd.read_csv(path)
        except (OSError, pd.errors.ParserError) as exc:
            raise ScenarioError(
                f"{where}: cannot read fuel factors ({exc}); give a CSV with "
                "columns fuel, carbon_kg_per_kwh, water_gal_per_mwh"
            ) from exc
    df.columns = [str(c).strip() for c in df.columns]
    if "water_l_per_kwh" not in df.columns and "water_gal_per_mwh" in df.columns:
        df["water_l_per_kwh"] = df["water_gal_per_mwh"].astype(float) * GAL_PER_MWH_TO_L_PER_KWH
    for col in ("fuel", "carbon_kg_per_kwh", "water_l_per_kwh"):
        if col not in df.columns:
            raise ScenarioError(
                f"{where}: fuel-factor table has no column {col!r}; give columns "
                "fuel, carbon_kg_per_kwh and water_gal_per_mwh (or water_l_per_kwh)"
            )
    if "source" not in df.columns:
        df["source"] = ""
    df["fuel"] = df["fuel"].astype(str).str.strip()
    out = df.set_index("fuel")[["carbon_kg_per_kwh", "water_l_per_kwh", "source"]]
    vals = out[["carbon_kg_per_kwh", "water_l_per_kwh"]].apply(pd.to_numeric, errors="coerce")
    if vals.isna().any().any() or (vals < 0).any().any():
        fuel = vals.index[(vals.isna() | (vals < 0)).any(axis=1)][0]
        raise ScenarioError(
            f"{where}: factors of fuel {fuel!r} are missing, not numbers or "
            "negative; give numbers >= 0"
        )
    out = out.assign(
        carbon_kg_per_kwh=vals["carbon_kg_per_kwh"], water_l_per_kwh=vals["water_l_per_kwh"]
    )
    return out


def grid_intensity(
    generation: pd.DataFrame,
    factors: pd.DataFrame | None = None,
    *,
    carbon: Mapping[str, float] | None = None,
    water: Mapping[str, float] | None = None,
    hydro_water_l_per_kwh: float | None = None,
    negative: str = "clip",
    on_zero: str = "raise",
) -> pd.DataFrame:
    """Generation-weighted carbon intensity and EWIF of a fuel mix.

    ``ci[t] = sum_f g[t,f] c_f / sum_f g[t,f]`` and ``ewif[t] = sum_f g[t,f] w_f / sum_f g[t,f]``
    with ``g`` the (clipped) generation of fuel f in slot t.

    Parameters
    ----------
    generation : pandas.DataFrame
        Generation by fuel, one column per fuel named as in the factor table (e.g.
        ``coal``, ``natural_gas``, ``nuclear``, ``oil``, ``other``, ``solar``, ``hydro``,
        ``wind``), one row per slot [MW or MWh; any common unit, only shares matter].
    factors : pandas.DataFrame or None
        Output of :func:`fuel_factors` (``None``: the packaged eGLB factors).
    carbon, water : mapping fuel -> float, optional
        Overrides of single factors [kg CO2/kWh] and [L/kWh].
    hydro_water_l_per_kwh : float or None
        Water factor of ``hydro`` [L/kWh]; ``None`` keeps the table's value (0: the eGLB
        convention, reservoir evaporation not counted). Give a reservoir-evaporation
        value to count it.
    negative : {"clip", "raise"}
        Negative generation (storage charging, station service) is clipped to 0
        (``"clip"``, default) or rejected (``"raise"``).
    on_zero : {"raise", "nan"}
        A slot whose clipped total is 0 has no defined intensity: raise, or return NaN
        for it (loaders use ``"nan"`` and then name the line of the file).

    Returns
    -------
    pandas.DataFrame
        Same index as ``generation``; columns ``carbon_intensity`` [kg CO2/kWh] and
        ``ewif`` [L/kWh].

    Raises
    ------
    ScenarioError
        A fuel without factors, NaN generation, negative generation with
        ``negative="raise"``, or a zero-total slot with ``on_zero="raise"``.
    """
    if negative not in ("clip", "raise"):
        raise ScenarioError(f"negative={negative!r}; use 'clip' or 'raise'")
    if on_zero not in ("raise", "nan"):
        raise ScenarioError(f"on_zero={on_zero!r}; use 'raise' or 'nan'")
    fac = fuel_factors() if factors is None else factors
    c = fac["carbon_kg_per_kwh"].astype(float).to_dict()
    w = fac["water_l_per_kwh"].astype(float).to_dict()
    c.update({k: float(v) for k, v in (carbon or {}).items()})
    w.update({k: float(v) for k, v in (water or {}).items()})
    if hydro_water_l_per_kwh is not None:
        if not np.isfinite(hydro_water_l_per_kwh) or hydro_water_l_per_kwh < 0:
            raise ScenarioError(
                f"hydro_water_l_per_kwh is {hydro_water_l_per_kwh!r}; give a "
                "reservoir-evaporation factor >= 0 [L/kWh]"
            )
        w["hydro"] = float(hydro_water_l_per_kwh)
    fuels = [str(f) for f in generation.columns]
    unknown = [f for f in fuels if f not in c or f not in w]
    if unknown:
        raise ScenarioError(
            f"no carbon/water factor for fuel(s) {unknown}; known fuels: "
            f"{sorted(set(c) & set(w))}; rename the column(s) or pass factors"
        )
    g = generation.to_numpy(dtype=float)
    if np.isnan(g).any():
        r, k = np.argwhere(np.isnan(g))[0]
        raise ScenarioError(
            f"generation of fuel {fuels[k]!r} is NaN at {generation.index[r]}; "
            "fill it (0 if the fuel is absent)"
        )
    if (g < 0).any():
        if negative == "raise":
            r, k = np.argwhere(g < 0)[0]
            raise ScenarioError(
                f"generation of fuel {fuels[k]!r} is negative ({g[r, k]:g}) at "
                f"{generation.index[r]}; use negative='clip' or fix the data"
            )
        g = np.clip(g, 0.0, None)
    total = g.sum(axis=1)
    zero = total <= 0
    if zero.any() and on_zero == "raise":
        r = int(np.flatnonzero(zero)[0])
        raise ScenarioError(
            f"total generation is 0 at {generation.index[r]}, so the mix has no "
            "intensity; drop or fill that slot"
        )
    cvec = np.array([c[f] for f in fuels])
    wvec = np.array([w[f] for f in fuels])
    with np.errstate(invalid="ignore", divide="ignore"):
        ci = np.where(zero, np.nan, g @ cvec / np.where(zero, 1.0, total))
        ew = np.where(zero, np.nan, g @ wvec / np.where(zero, 1.0, total))
    return pd.DataFrame({"carbon_intensity": ci, "ewif": ew}, index=generation.index)
