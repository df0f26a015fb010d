"""Physical sub-models: wet bulb against psychrolib, WUE formula, grid-mix intensities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import psychrolib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eqglb import ScenarioError
from eqglb.physics import (
    GAL_PER_MWH_TO_L_PER_KWH,
    c_to_f,
    f_to_c,
    fuel_factors,
    grid_intensity,
    station_pressure_from_altimeter,
    wet_bulb_temperature,
    wue_from_wet_bulb,
)

#: Stated agreement of the vectorised path with psychrolib [degC]. psychrolib itself stops
#: its bisection at 0.001 degC (SI), so closer agreement cannot be asked for.
TOL_C = 0.002


@pytest.fixture
def si_units():
    """psychrolib keeps its unit system in a global: set SI for a test, restore after."""
    psychrolib.SetUnitSystem(psychrolib.SI)
    yield
    psychrolib.SetUnitSystem(psychrolib.SI)


def _grid():
    """Realistic weather: -30..50 degC air, dew-point depression 0..40 degC, 3 pressures,
    plus 2000 random points (fixed seed) over 70-104 kPa."""
    t, dep, p = np.meshgrid(
        np.arange(-30.0, 50.1, 2.5),
        np.array([0.0, 0.5, 2, 5, 10, 20, 40]),
        np.array([70000.0, 85000.0, 101325.0]),
        indexing="ij",
    )
    rng = np.random.default_rng(7)
    tr = rng.uniform(-30, 50, 2000)
    t = np.concatenate([t.ravel(), tr])
    d = np.concatenate([(t[: dep.size] - dep.ravel()), tr - rng.uniform(0, 40, 2000)])
    p = np.concatenate([p.ravel(), rng.uniform(70000, 104000, 2000)])
    return t, d, p


def _check_against_psychrolib(t, w, p, got, ref):
    """< TOL_C where the wet bulb is clear of freezing. Near 0 degC ASHRAE's branches
    (eqn 33 water, eqn 35 ice) can both have a root: there ``got`` must be the
    liquid-water root of psychrolib's own equation, i.e. psychrolib's W*(Twb) crosses W
    within +-0.001 degC of it, and psychrolib's answer must be the other (ice) root."""
    err = np.abs(got - ref)
    clear = np.minimum(np.abs(got), np.abs(ref)) > 1.0
    assert clear.mean() > 0.9
    assert err[clear].max() < TOL_C
    for k in np.flatnonzero(~clear & (err >= TOL_C)):
        assert ref[k] < 0.0 <= got[k]
        lo = psychrolib.GetHumRatioFromTWetBulb(t[k], max(got[k] - 0.001, 0.0), p[k])
        hi = psychrolib.GetHumRatioFromTWetBulb(t[k], got[k] + 0.001, p[k])
        assert lo <= w[k] <= hi


def test_wet_bulb_from_dew_point_matches_psychrolib_si(si_units):
    t, d, p = _grid()
    ref = np.array(
        [psychrolib.GetTWetBulbFromTDewPoint(a, b, c) for a, b, c in zip(t, d, p, strict=True)]
    )
    w = np.array([psychrolib.GetHumRatioFromTDewPoint(b, c) for b, c in zip(d, p, strict=True)])
    got = wet_bulb_temperature(t, dew_point=d, pressure=p)
    _check_against_psychrolib(t, w, p, got, ref)


def test_wet_bulb_from_rel_hum_matches_psychrolib_si(si_units):
    rng = np.random.default_rng(11)
    t = rng.uniform(-30, 50, 2000)
    p = rng.uniform(70000, 104000, 2000)
    rh = np.concatenate([[0.0, 1.0], rng.uniform(0, 1, 1998)])
    ref = np.array(
        [psychrolib.GetTWetBulbFromRelHum(a, b, c) for a, b, c in zip(t, rh, p, strict=True)]
    )
    w = np.array(
        [psychrolib.GetHumRatioFromRelHum(a, b, c) for a, b, c in zip(t, rh, p, strict=True)]
    )
    got = wet_bulb_temperature(t, rel_hum=rh, pressure=p)
    _check_against_psychrolib(t, w, p, got, ref)


def test_wet_bulb_matches_psychrolib_ip_units(si_units):
    """Same physics in IP units (degF, psi): convert psychrolib's answer back to degC.
    IP and SI saturation formulas are separate fits (they differ by up to ~0.016 degC
    at 50 degC), so allow 0.02 degC."""
    t, d, p = _grid()
    psychrolib.SetUnitSystem(psychrolib.IP)
    ref_f = np.array(
        [
            psychrolib.GetTWetBulbFromTDewPoint(a, b, c)
            for a, b, c in zip(c_to_f(t), c_to_f(d), p / 6894.757293168, strict=True)
        ]
    )
    psychrolib.SetUnitSystem(psychrolib.SI)
    got = wet_bulb_temperature(t, dew_point=d, pressure=p)
    ref = f_to_c(ref_f)
    clear = np.minimum(np.abs(got), np.abs(ref)) > 1.0
    assert np.abs(got - ref)[clear].max() < 0.02


def test_psychrolib_method_is_psychrolib_and_restores_units(si_units):
    psychrolib.SetUnitSystem(psychrolib.IP)
    got = wet_bulb_temperature(
        [30.0, 10.0], dew_point=[20.0, -5.0], pressure=90000.0, method="psychrolib"
    )
    assert psychrolib.GetUnitSystem() == psychrolib.IP  # restored
    psychrolib.SetUnitSystem(psychrolib.SI)
    want = [
        psychrolib.GetTWetBulbFromTDewPoint(30.0, 20.0, 90000.0),
        psychrolib.GetTWetBulbFromTDewPoint(10.0, -5.0, 90000.0),
    ]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_saturated_air_wet_bulb_equals_dry_bulb():
    """At 100 % humidity no evaporation can cool the bulb: Twb = Tdb."""
    t = np.array([-10.0, 5.0, 25.0, 40.0])
    np.testing.assert_allclose(wet_bulb_temperature(t, dew_point=t), t, atol=1e-4)
    np.testing.assert_allclose(wet_bulb_temperature(t, rel_hum=np.ones(4)), t, atol=1e-4)


@settings(max_examples=60, deadline=None)
@given(t=st.floats(-20, 45), dep=st.floats(0.1, 30), p=st.floats(75000, 104000))
def test_wet_bulb_lies_between_dew_point_and_dry_bulb(t, dep, p):
    wb = float(wet_bulb_temperature(t, dew_point=t - dep, pressure=p))
    assert t - dep - 1e-6 <= wb <= t + 1e-6
    # more moisture -> warmer wet bulb
    assert float(wet_bulb_temperature(t, dew_point=t - dep / 2, pressure=p)) >= wb - 1e-6


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(t_dry=20.0, dew_point=10.0, pressure=1013.25), "pressure"),  # hPa given
        (dict(t_dry=20.0, rel_hum=55.0), "fraction"),  # percent given
        (dict(t_dry=20.0, dew_point=25.0), "above t_dry"),
        (dict(t_dry=20.0), "exactly one"),
        (dict(t_dry=20.0, dew_point=10.0, rel_hum=0.5), "exactly one"),
        (dict(t_dry=[20.0, np.nan], dew_point=10.0), "NaN"),
        (dict(t_dry=20.0, dew_point=10.0, method="stull"), "unknown wet-bulb method"),
    ],
)
def test_wet_bulb_rejects_bad_input(kwargs, match):
    t = kwargs.pop("t_dry")
    with pytest.raises(ScenarioError, match=match):
        wet_bulb_temperature(t, **kwargs)


def test_wue_formula_hand_values():
    """S = 6 so S/(S-1) = 1.2.

    Twb = 60 F: 6e-5*216000 - 0.01*3600 + 0.61*60 - 10.4 = 12.96 - 36 + 36.6 - 10.4 = 3.16
                -> 1.2 * 3.16 = 3.792 L/kWh
    Twb = 32 F: 6e-5*32768 - 0.01*1024 + 0.61*32 - 10.4 = 1.96608 - 10.24 + 19.52 - 10.4
                = 0.84608 -> 1.015296 L/kWh
    Twb = 80 F: 30.72 - 64 + 48.8 - 10.4 = 5.12 -> 6.144 L/kWh
    Twb = 0 F: 1.2 * (-10.4) < 0.05 -> clipped to 0.05 L/kWh
    S = 3 (factor 1.5), 60 F: 1.5 * 3.16 = 4.74 L/kWh
    """
    np.testing.assert_allclose(
        wue_from_wet_bulb([60.0, 32.0, 80.0, 0.0]), [3.792, 1.015296, 6.144, 0.05], rtol=1e-12
    )
    assert wue_from_wet_bulb(60.0, cycles=3.0) == pytest.approx(4.74, rel=1e-12)
    assert wue_from_wet_bulb(0.0, floor=0.2) == pytest.approx(0.2)
    with pytest.raises(ScenarioError, match="cycles"):
        wue_from_wet_bulb(60.0, cycles=1.0)
    with pytest.raises(ScenarioError, match="NaN"):
        wue_from_wet_bulb([60.0, np.nan])


def test_temperature_conversions():
    assert float(f_to_c(212.0)) == pytest.approx(100.0)
    assert float(c_to_f(-40.0)) == pytest.approx(-40.0)


def test_station_pressure_from_altimeter_standard_atmosphere():
    """At sea level the altimeter setting is the pressure; at 1000 m the standard-atmosphere
    ratio (ASHRAE eqn 3, psychrolib's GetStandardAtmPressure) applies."""
    assert float(station_pressure_from_altimeter(101000.0, 0.0)) == pytest.approx(101000.0)
    psychrolib.SetUnitSystem(psychrolib.SI)
    ratio = psychrolib.GetStandardAtmPressure(1000.0) / 101325.0
    assert float(station_pressure_from_altimeter(101325.0, 1000.0)) == pytest.approx(
        101325.0 * ratio, rel=1e-12
    )


def test_packaged_fuel_factors_are_the_model_md_table():
    """Values typed from docs/MODEL.md (kg CO2/kWh; gal/MWh)."""
    f = fuel_factors()
    carbon = dict(
        coal=0.968,
        natural_gas=0.44,
        nuclear=0.015,
        oil=0.89,
        other=0.45,
        solar=0.02,
        hydro=0.014,
        wind=0.023,
    )
    gal = dict(coal=450, natural_gas=300, nuclear=600, oil=350, other=475, solar=0, hydro=0, wind=0)
    assert set(f.index) == set(carbon)
    for fuel in carbon:
        assert f.loc[fuel, "carbon_kg_per_kwh"] == pytest.approx(carbon[fuel])
        assert f.loc[fuel, "water_l_per_kwh"] == pytest.approx(gal[fuel] * 3.785412e-3, rel=1e-6)
        assert f.loc[fuel, "source"]  # every row says where it comes from


def test_grid_mix_hand_example():
    """Slot 0: 50 % coal, 50 % wind ->
    ci = 0.5*0.968 + 0.5*0.023 = 0.4955 kg/kWh; ewif = 0.5*450 gal/MWh = 225 gal/MWh.
    Slot 1: 100 MW gas, 300 MW nuclear, -50 MW hydro (pumping, clipped to 0) ->
    ci = (100*0.44 + 300*0.015)/400 = 0.12125; ewif = (100*300 + 300*600)/400 = 525 gal/MWh.
    """
    gen = pd.DataFrame(
        {
            "coal": [200.0, 0.0],
            "wind": [200.0, 0.0],
            "natural_gas": [0.0, 100.0],
            "nuclear": [0.0, 300.0],
            "hydro": [0.0, -50.0],
        }
    )
    out = grid_intensity(gen)
    np.testing.assert_allclose(out["carbon_intensity"], [0.4955, 0.12125], rtol=1e-12)
    np.testing.assert_allclose(
        out["ewif"], np.array([225.0, 525.0]) * GAL_PER_MWH_TO_L_PER_KWH, rtol=1e-12
    )


def test_grid_mix_hydro_convention_and_overrides():
    """Half hydro, half solar: hydro water 0 by default (eGLB), else the user's value."""
    gen = pd.DataFrame({"hydro": [10.0], "solar": [10.0]})
    assert grid_intensity(gen)["ewif"].iloc[0] == 0.0
    assert grid_intensity(gen, hydro_water_l_per_kwh=17.0)["ewif"].iloc[0] == pytest.approx(8.5)
    assert grid_intensity(gen, carbon={"solar": 0.05})["carbon_intensity"].iloc[0] == (
        pytest.approx((0.014 + 0.05) / 2)
    )
    with pytest.raises(ScenarioError, match="hydro_water"):
        grid_intensity(gen, hydro_water_l_per_kwh=-1.0)


def test_user_fuel_factor_file(tmp_path):
    p = tmp_path / "factors.csv"
    p.write_text(
        "fuel,carbon_kg_per_kwh,water_l_per_kwh,source\n"
        "lignite,1.1,2.0,my study\nwind,0.01,0.0,my study\n"
    )
    f = fuel_factors(p)
    out = grid_intensity(pd.DataFrame({"lignite": [1.0], "wind": [3.0]}), f)
    assert out["carbon_intensity"].iloc[0] == pytest.approx((1.1 + 3 * 0.01) / 4)
    assert out["ewif"].iloc[0] == pytest.approx(0.5)
    bad = tmp_path / "bad.csv"
    bad.write_text("fuel,carbon_kg_per_kwh\ncoal,1\n")
    with pytest.raises(ScenarioError, match="water"):
        fuel_factors(bad)


def test_grid_mix_rejects_bad_input():
    with pytest.raises(ScenarioError, match="no carbon/water factor.*'peat'"):
        grid_intensity(pd.DataFrame({"peat": [1.0]}))
    with pytest.raises(ScenarioError, match="negative"):
        grid_intensity(pd.DataFrame({"hydro": [-1.0], "coal": [2.0]}), negative="raise")
    with pytest.raises(ScenarioError, match="total generation is 0"):
        grid_intensity(pd.DataFrame({"hydro": [-1.0], "coal": [0.0]}))
    out = grid_intensity(pd.DataFrame({"coal": [0.0, 1.0]}), on_zero="nan")
    assert np.isnan(out["carbon_intensity"].iloc[0])
    assert out["carbon_intensity"].iloc[1] == pytest.approx(0.968)
    with pytest.raises(ScenarioError, match="NaN"):
        grid_intensity(pd.DataFrame({"coal": [np.nan]}))
