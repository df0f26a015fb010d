"""Labels in, labels out; units people have; plausibility warnings (issue 14, items 1-2).

A labelled input (pandas or xarray) is either aligned by name and time stamp, giving the
same scenario and the same results as the correctly ordered arrays, or refused with a
message naming the field and the labels. Units are checked against values worked out by
hand; each plausibility warning fires with its message and ``strict=True`` raises.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from eqglb import Dispatch, Scenario, ScenarioError, SolveInfo
from eqglb.costs import Objective
from eqglb.io.netcdf import read_netcdf, write_netcdf
from eqglb.simulate import evaluate
from eqglb.units import (
    CANONICAL,
    UNITS,
    PlausibilityError,
    PlausibilityWarning,
    UnitError,
    accepted_units,
    check_plausibility,
    convert,
)

DC = ["north", "south", "east"]
REG = ["r1", "r2"]
MOD = ["small", "large"]
T = 6
TIME = pd.date_range("2024-03-01", periods=T, freq="h", tz="UTC")
FIELDS = (
    "demand",
    "price",
    "carbon_intensity",
    "wue",
    "ewif",
    "pue",
    "energy_per_request",
    "capacity_per_request",
    "capacity",
    "quality_loss",
    "allowed",
    "latency",
)


def arrays(seed: int = 0) -> dict:
    """Plain, correctly ordered arrays of a small feasible scenario (distinct values)."""
    rng = np.random.default_rng(seed)
    allowed = np.ones((3, 2, 2), dtype=bool)
    allowed[2, 0, 1] = False
    return dict(
        demand=rng.uniform(10, 50, (T, 2)),
        price=rng.uniform(0.02, 0.3, (T, 3)),
        carbon_intensity=rng.uniform(0.05, 0.8, (T, 3)),
        wue=rng.uniform(0.2, 3.0, (T, 3)),
        ewif=rng.uniform(0.5, 4.0, (T, 3)),
        pue=rng.uniform(1.05, 1.6, (T, 3)),
        energy_per_request=rng.uniform(1e-4, 3e-3, (3, 2)),
        capacity_per_request=np.array([1.0, 6.0]),
        capacity=rng.uniform(400, 600, (T, 3)),
        quality_loss=np.array([0.2, 0.0]),
        allowed=allowed,
        latency=rng.uniform(5, 90, (3, 2)),
    )


def scenario(**over) -> Scenario:
    kw = dict(
        datacenters=DC,
        regions=REG,
        models=MOD,
        time=TIME,
        **arrays(),
        name="small",
        home=["north", "south"],
    )
    kw.update(over)
    return Scenario(**kw)


def wide(a: np.ndarray, cols: list[str], index=TIME) -> pd.DataFrame:
    return pd.DataFrame(a, index=index, columns=cols)


def labelled(a: dict) -> dict:
    """Every field as a labelled pandas object, rows and columns shuffled."""
    rng = np.random.default_rng(42)

    def shuffle(df: pd.DataFrame) -> pd.DataFrame:
        return df.iloc[rng.permutation(len(df.index)), rng.permutation(len(df.columns))]

    out = {
        f: shuffle(wide(a[f], DC))
        for f in ("price", "carbon_intensity", "wue", "ewif", "pue", "capacity")
    }
    out["demand"] = shuffle(wide(a["demand"], REG))
    out["energy_per_request"] = shuffle(
        pd.DataFrame(a["energy_per_request"], index=DC, columns=MOD)
    )
    out["latency"] = shuffle(pd.DataFrame(a["latency"], index=DC, columns=REG))
    out["capacity_per_request"] = pd.Series(a["capacity_per_request"], index=MOD)[::-1]
    out["quality_loss"] = pd.Series(a["quality_loss"], index=MOD)[::-1]
    out["allowed"] = (
        xr.DataArray(
            a["allowed"],
            dims=("datacenter", "region", "model"),
            coords={"datacenter": DC, "region": REG, "model": MOD},
        )
        .transpose("model", "datacenter", "region")
        .isel(datacenter=[2, 0, 1])
    )
    return out


def assert_same(a: Scenario, b: Scenario) -> None:
    assert a.datacenters == b.datacenters and a.regions == b.regions
    assert a.models == b.models and a.time.equals(b.time)
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        assert (x is None) == (y is None), f
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=f)
    assert a.home == b.home and a.capacity_mode == b.capacity_mode


def some_dispatch(sc: Scenario, policy: str = "spread") -> Dispatch:
    """Every region's demand split evenly over its allowed routes."""
    allowed = np.asarray(sc.allowed, dtype=float)
    share = allowed / allowed.sum(axis=(0, 2), keepdims=True)
    y = np.einsum("tj,njk->tnjk", np.asarray(sc.demand), share)
    return Dispatch(y=y, policy=policy)


# ---------------------------------------------------------------------------- labels in
def test_shuffled_labelled_inputs_align_and_give_the_same_results() -> None:
    ref = scenario()
    sc = scenario(**labelled(arrays()), home={"r2": "south", "r1": "north"})
    assert_same(ref, sc)
    e_ref, e = evaluate(ref, some_dispatch(ref)), evaluate(sc, some_dispatch(sc))
    assert e.energy_cost == e_ref.energy_cost and e.carbon == e_ref.carbon
    assert e.social == e_ref.social and e.water == e_ref.water


def test_misordered_frame_would_have_changed_the_results() -> None:
    """The test above is not vacuous: the same values taken by position differ."""
    a = arrays()
    lab = labelled(a)
    positional = scenario(demand=lab["demand"].to_numpy(), price=lab["price"].to_numpy())
    assert not np.array_equal(positional.price, scenario().price)
    assert (
        evaluate(positional, some_dispatch(positional)).energy_cost
        != evaluate(scenario(), some_dispatch(scenario())).energy_cost
    )


def test_time_index_shifted_by_five_hours_is_refused() -> None:
    a = arrays()
    shifted = wide(a["demand"], REG, index=TIME + pd.Timedelta(hours=5))
    with pytest.raises(
        ScenarioError,
        match=r"demand: the index does not match the "
        r"scenario's time: slots missing 5 \(first 2024-03-01 00:00 UTC\), "
        r"extra 5 \(first 2024-03-01 06:00 UTC\); it is shifted by "
        r"\+05:00:00.*give tz-aware time stamps",
    ):
        scenario(demand=shifted)


def test_naive_local_times_are_refused_but_tz_aware_ones_align() -> None:
    a = arrays()
    local = TIME.tz_convert("America/New_York")
    with pytest.raises(ScenarioError, match=r"price: .*shifted by -05:00:00"):
        scenario(price=wide(a["price"], DC, index=local.tz_localize(None)))
    sc = scenario(price=wide(a["price"], DC, index=local))  # same instants, other zone
    np.testing.assert_array_equal(sc.price, a["price"])
    naive_utc = scenario(price=wide(a["price"], DC, index=TIME.tz_localize(None)))
    np.testing.assert_array_equal(naive_utc.price, a["price"])


@pytest.mark.parametrize(
    "frame, pattern",
    [
        (
            lambda a: wide(a["price"], ["north", "south", "West"]),
            r"price: the columns do not match the scenario's datacenters: missing \['east'\], "
            r"extra \['West'\]; label them with the names in `datacenters`",
        ),
        (
            lambda a: wide(a["price"][:, :2], ["north", "south"]),
            r"price: the columns .* missing \['east'\], extra \[\]",
        ),
        (
            lambda a: wide(a["price"], ["north", "north", "east"]),
            r"price: the columns repeats \['north'\]; give each data centre once",
        ),
        (
            lambda a: wide(a["demand"][:5], REG, index=TIME[:5]),
            r"demand: the index .* slots missing 1 \(first 2024-03-01 05:00 UTC\), extra none",
        ),
        (
            lambda a: pd.DataFrame(a["demand"], index=[f"t{i}" for i in range(T)], columns=REG),
            r"demand: the index should hold time stamps",
        ),
        (
            lambda a: pd.Series(a["price"][0], index=DC),
            r"price: a Series \(one dimension\) cannot hold \(time, datacenter\)",
        ),
    ],
)
def test_unaligned_labels_are_refused_naming_them(frame, pattern) -> None:
    a = arrays()
    value = frame(a)
    field = pattern.split(":")[0]
    with pytest.raises(ScenarioError, match=pattern):
        scenario(**{field: value})


def test_transposed_frame_and_default_index_and_dict() -> None:
    a = arrays()
    ref = scenario()
    as_csv = wide(a["ewif"], DC).iloc[::-1].rename_axis("time").reset_index()
    as_csv["time"] = as_csv["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")  # strings, as read
    sc = scenario(
        demand=wide(a["demand"], REG).T,  # regions as rows: transposed back
        ewif=as_csv[["time", "east", "north", "south"]],
        price=pd.DataFrame(a["price"], columns=DC),  # RangeIndex: positional time
        quality_loss={"large": 0.0, "small": 0.2},
        wue={"south": a["wue"][:, 1], "east": a["wue"][:, 2], "north": a["wue"][:, 0]},
    )
    assert_same(ref, sc)
    with pytest.raises(
        ScenarioError,
        match=r"price: the index has 5 unlabelled entries; "
        r"the scenario has 6 time stamps",
    ):
        scenario(price=pd.DataFrame(a["price"][:5], columns=DC))


def test_long_tables_and_multiindex_series() -> None:
    a = arrays()
    long = (
        wide(a["demand"], REG)
        .rename_axis("time")
        .reset_index()
        .melt(id_vars="time", var_name="region", value_name="demand")
        .sample(frac=1, random_state=3)
    )
    cap = xr.DataArray(
        np.broadcast_to(a["capacity"][:, :, None], (T, 3, 2)) / 6.0,
        dims=("time", "datacenter", "model"),
        coords={"time": TIME.tz_localize(None), "datacenter": DC, "model": MOD},
    )
    cap_series = cap.to_series().reorder_levels(["model", "time", "datacenter"])
    sc = scenario(demand=long, capacity=cap_series, capacity_mode="per_model")
    np.testing.assert_array_equal(sc.demand, a["demand"])
    np.testing.assert_array_equal(sc.capacity, cap.values)
    with pytest.raises(
        ScenarioError,
        match=r"demand: the long table's column has no value "
        r"for \{'time': .*'region': 'r2'\} \(1 combination\(s\) missing\)",
    ):
        scenario(demand=long[~((long.region == "r2") & (long.time == TIME[3]))])
    with pytest.raises(
        ScenarioError,
        match=r"demand: the long table has value columns "
        r"\['a', 'b'\]; name the one to use 'demand'",
    ):
        scenario(demand=long.drop(columns="demand").assign(a=1.0, b=2.0))


def test_dataarray_inputs_align_by_dim_name() -> None:
    a = arrays()
    da = xr.DataArray(
        a["price"].T[::-1],
        dims=("datacenter", "time"),
        coords={"datacenter": DC[::-1], "time": TIME.tz_localize(None)},
    )
    np.testing.assert_array_equal(scenario(price=da).price, a["price"])
    with pytest.raises(
        ScenarioError,
        match=r"price: the DataArray has dims \('dc', 'time'\)"
        r"; expected \(time, datacenter\).*rename",
    ):
        scenario(price=da.rename(datacenter="dc"))


def test_from_frames_infers_names_and_order() -> None:
    a = arrays()
    lab = labelled(a)
    sc = Scenario.from_frames(
        demand=wide(a["demand"], REG)[["r2", "r1"]],
        price=wide(a["price"], DC),
        carbon_intensity=lab["carbon_intensity"],
        wue=lab["wue"],
        ewif=lab["ewif"],
        pue=1.2,
        energy_per_request=lab["energy_per_request"],
        capacity_per_request=lab["capacity_per_request"],
        capacity=lab["capacity"],
        quality_loss=lab["quality_loss"],
        allowed=lab["allowed"],
        name="inferred",
    )
    assert sc.regions == ("r2", "r1") and sc.datacenters == tuple(DC)
    assert sc.models == ("large", "small") and sc.time.equals(TIME)
    np.testing.assert_array_equal(sc.demand, a["demand"][:, ::-1])
    np.testing.assert_array_equal(sc.quality_loss, [0.0, 0.2])
    np.testing.assert_array_equal(sc.energy_per_request, a["energy_per_request"][:, ::-1])
    assert (np.asarray(sc.pue) == 1.2).all()
    with pytest.raises(
        ScenarioError,
        match=r"from_frames: no labelled input names the "
        r"regions; give regions=\[...\]",
    ):
        Scenario.from_frames(
            demand=a["demand"],
            price=wide(a["price"], DC),
            carbon_intensity=0.3,
            wue=1.0,
            ewif=1.0,
            pue=1.2,
            energy_per_request=lab["energy_per_request"],
            capacity_per_request=lab["capacity_per_request"],
            capacity=500.0,
            quality_loss=lab["quality_loss"],
        )


# ---------------------------------------------------------------------------- labels out
def rich() -> Scenario:
    a = arrays(1)
    cap = np.stack([a["capacity"] / 6.0] * 2, axis=-1)
    return scenario(
        capacity=cap,
        capacity_mode="per_model",
        attrs={"source": "test", "n": np.int64(3), "nested": {"x": [1, 2]}},
        description="multi-line\ndescription, ü",
    )


@pytest.mark.parametrize("make", [scenario, rich])
def test_scenario_xarray_round_trip(make) -> None:
    sc = make()
    ds = sc.to_xarray()
    assert ds["price"].dims == ("time", "datacenter") and ds["price"].attrs["units"] == "USD/kWh"
    assert ds["carbon_intensity"].attrs["units"] == "kg/kWh"
    assert ds["demand"].attrs["units"] == "requests/slot"
    assert ds["capacity"].attrs["units"] == CANONICAL["capacity_" + sc.capacity_mode]
    assert list(ds["datacenter"].values) == DC
    ds["price"][0, 0] = -9.0  # the Dataset is a copy: nothing writes back into sc
    assert sc.price[0, 0] != -9.0
    back = Scenario.from_xarray(make().to_xarray())
    assert_same(sc, back)
    assert back.name == sc.name and back.description == sc.description
    assert back.attrs == (
        {} if make is scenario else {"source": "test", "n": 3, "nested": {"x": [1, 2]}}
    )


def test_from_xarray_reads_units_attrs_and_refuses_missing_parts() -> None:
    sc = scenario()
    ds = sc.to_xarray()
    ds["price"] = ds["price"] * 1000.0
    ds["price"].attrs["units"] = "USD/MWh"
    ds["demand"] = ds["demand"] / sc.slot_hours
    ds["demand"].attrs["units"] = "requests/hour"
    back = Scenario.from_xarray(ds)
    np.testing.assert_allclose(back.price, sc.price, rtol=1e-15)
    np.testing.assert_allclose(back.demand, sc.demand, rtol=1e-15)
    with pytest.raises(
        ScenarioError,
        match=r"from_xarray: the Dataset lacks variable\(s\) "
        r"\['wue'\]",
    ):
        Scenario.from_xarray(ds.drop_vars("wue"))
    ds["price"].attrs["units"] = "EUR/kWh"
    with pytest.raises(
        UnitError,
        match=r"'EUR/kWh' is not an accepted unit of price; use "
        r"one of \['USD/kWh', 'USD/MWh'",
    ):
        Scenario.from_xarray(ds)


def test_dispatch_to_xarray_and_back() -> None:
    sc = scenario()
    d = Dispatch(
        y=some_dispatch(sc).y,
        policy="p",
        info=SolveInfo(
            status="optimal",
            solver="HIGHS",
            solve_time=0.5,
            objective=2.0,
            dual_bound=1.9,
            iterations=4,
        ),
    )
    da = d.to_xarray(sc)
    assert da.dims == ("time", "datacenter", "region", "model")
    assert da.attrs["units"] == "requests/slot" and da.attrs["policy"] == "p"
    assert da.attrs["solve_status"] == "optimal"
    assert list(da["region"].values) == REG and list(da["model"].values) == MOD
    assert float(da.sel(datacenter="south", region="r2", model="large").sum()) == pytest.approx(
        float(d.y[:, 1, 1, 1].sum())
    )
    shuffled = da.transpose("model", "region", "time", "datacenter").isel(
        datacenter=[2, 1, 0], time=slice(None, None, -1)
    )
    back = Dispatch.from_xarray(sc, shuffled)
    np.testing.assert_array_equal(back.y, d.y)
    assert back.policy == "p" and back.info == d.info
    with pytest.raises(
        ScenarioError,
        match=r"dispatch: the coordinate 'region' does not "
        r"match the scenario's regions: missing \['r2'\], extra \['R2'\]",
    ):
        Dispatch.from_xarray(sc, da.assign_coords(region=["r1", "R2"]))


def test_evaluation_to_frame_and_xarray() -> None:
    sc = scenario()
    ev = evaluate(sc, some_dispatch(sc), Objective(mu_carbon=2.0))
    df = ev.to_frame()
    assert list(df.columns) == ["policy", "quantity", "dimension", "name", "value", "unit"]
    carbon = df[df.quantity == "carbon"].set_index("name")["value"]
    assert carbon.to_dict() == ev.carbon
    assert set(df[df.quantity == "carbon"].unit) == {"kg CO2"}
    assert df[df.quantity == "social"].set_index("name")["value"].to_dict() == ev.social
    assert df.loc[df.quantity == "energy_cost", "value"].item() == ev.energy_cost
    assert df.loc[df.quantity == "objective", "value"].item() == ev.objective
    ds = ev.to_xarray()
    assert ds["water"].sel(datacenter="east").item() == ev.water["east"]
    assert ds["social"].sel(region="r2").item() == ev.social["r2"]
    assert ds["carbon"].attrs["units"] == "kg CO2" and ds["energy_cost"].item() == ev.energy_cost
    assert ds["carbon_summary"].sel(metric="gini").item() == ev.summary["carbon"]["gini"]
    assert ds["flagged"].item() == ev.flagged and ds["policy"].item() == "spread"


def test_netcdf_round_trip(tmp_path: Path) -> None:
    sc = rich()
    d1 = Dispatch(
        y=some_dispatch(sc).y,
        policy="spread",
        info=SolveInfo(status="feasible", solver="eqglb-online", solve_time=0.25),
    )
    d2 = Dispatch(y=some_dispatch(sc).y * 1.5, policy="more")
    evs = [evaluate(sc, d1), evaluate(sc, d2, Objective(combined_environment=True, mu_carbon=1.0))]
    path = write_netcdf(tmp_path / "run.nc", sc, dispatches=[d1, d2], evaluations=evs)
    got = read_netcdf(path)
    assert_same(sc, got.scenario)
    assert got.scenario.name == sc.name and got.scenario.description == sc.description
    assert list(got.dispatches) == ["spread", "more"]
    np.testing.assert_array_equal(got.dispatches["more"].y, d2.y)
    assert got.dispatches["spread"].info == d1.info and got.dispatches["more"].info is None
    res = got.results
    assert list(res["policy"].values) == ["spread", "more"]
    np.testing.assert_array_equal(
        res["carbon"].sel(policy="more").values, list(evs[1].carbon.values())
    )
    assert res["energy_cost"].sel(policy="spread").item() == evs[0].energy_cost
    assert np.isnan(res["environment_summary"].sel(policy="spread")).all()
    # the file re-evaluates to the same numbers
    again = evaluate(got.scenario, got.dispatches["spread"])
    assert again.energy_cost == evs[0].energy_cost and again.carbon == evs[0].carbon
    only = read_netcdf(write_netcdf(tmp_path / "sc.nc", scenario()))
    assert_same(scenario(), only.scenario) and only.dispatches == {} and only.results is None


def test_netcdf_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"read_netcdf: '.*missing.nc' does not exist"):
        read_netcdf(tmp_path / "missing.nc")
    bad = tmp_path / "bad.nc"
    bad.write_text("not netcdf")
    with pytest.raises(ScenarioError, match=r"bad.nc' is not a readable netCDF-4 file"):
        read_netcdf(bad)
    with pytest.raises(ScenarioError, match=r"folder '.*nowhere' does not exist"):
        write_netcdf(tmp_path / "nowhere" / "x.nc", scenario())
    d = some_dispatch(scenario())
    with pytest.raises(ScenarioError, match=r"policy name\(s\) \['spread'\] more than once"):
        write_netcdf(tmp_path / "x.nc", scenario(), dispatches=[d, d])


# ---------------------------------------------------------------------------- units
def test_unit_conversions_by_hand() -> None:
    assert convert("demand", 400.0, "requests/hour", slot_hours=0.25) == 100.0
    assert convert("demand", 2.0, "requests/s", slot_hours=1.0) == 7200.0
    assert convert("demand", 3.0, "requests / minute", slot_hours=0.5) == 90.0
    assert convert("demand", 48.0, "requests/day", slot_hours=1.0) == 2.0
    assert convert("price", 42.0, "USD/MWh") == pytest.approx(0.042, rel=1e-15)
    assert convert("price", 12.5, "cents/kWh") == 0.125
    assert convert("carbon_intensity", 400.0, "g CO2/kWh") == 0.4
    assert convert("carbon_intensity", 1000.0, "lb/MWh") == pytest.approx(0.45359237)
    assert convert("wue", 1000.0, "gal/MWh") == pytest.approx(3.785411784)
    assert convert("energy_per_request", 3.6, "kJ/request") == pytest.approx(0.001)
    # 0.002 Wh per output token x 500 tokens = 1 Wh = 0.001 kWh per request
    got = convert(
        "energy_per_request", [[0.002, 0.004]], "Wh/token", tokens_per_request=[[500.0, 250.0]]
    )
    np.testing.assert_allclose(got, [[0.001, 0.001]], rtol=1e-15)
    assert convert("capacity", 2.0, "units/s", slot_hours=0.25) == 1800.0
    assert (
        convert("capacity", 60.0, "requests/hour", slot_hours=0.5, capacity_mode="per_model")
        == 30.0
    )
    assert convert("latency", 0.2, "s") == 200.0
    assert accepted_units("capacity", "per_model")[0] == "requests/slot"
    for quantity, table in UNITS.items():
        assert next(iter(table.values())) == 1.0, quantity  # canonical label first


def test_unknown_units_and_missing_context_are_refused() -> None:
    with pytest.raises(
        UnitError,
        match=r"'kWh/fortnight' is not an accepted unit of "
        r"energy_per_request; use one of \['kWh/request', 'Wh/request'",
    ):
        convert("energy_per_request", 1.0, "kWh/fortnight")
    with pytest.raises(UnitError, match=r"'colour' is not a Scenario field with a unit"):
        convert("colour", 1.0, "-")
    with pytest.raises(UnitError, match=r"demand in 'requests/hour' needs the slot length"):
        convert("demand", 1.0, "requests/hour")
    with pytest.raises(UnitError, match=r"needs tokens_per_request"):
        convert("energy_per_request", 1.0, "J/token")
    with pytest.raises(UnitError, match=r"tokens_per_request has a value <= 0"):
        convert("energy_per_request", 1.0, "J/token", tokens_per_request=0.0)


def test_from_frames_converts_units() -> None:
    a = arrays()
    sl = 0.25
    t = pd.date_range("2024-03-01", periods=T, freq="15min", tz="UTC")
    tokens = pd.Series({"large": 800.0, "small": 200.0})
    kw = dict(
        carbon_intensity=wide(a["carbon_intensity"] * 1000, DC, t),
        wue=wide(a["wue"], DC, t),
        ewif=wide(a["ewif"], DC, t),
        pue=1.1,
        energy_per_request=pd.DataFrame(
            a["energy_per_request"] * 1e3 / [200.0, 800.0], index=DC, columns=MOD
        ),
        capacity_per_request=pd.Series(a["capacity_per_request"], index=MOD),
        capacity=wide(a["capacity"] / sl, DC, t),
        quality_loss=pd.Series(a["quality_loss"], index=MOD),
    )
    sc = Scenario.from_frames(
        demand=wide(a["demand"] / sl / 3600, REG, t),
        price=wide(a["price"] * 1e3, DC, t),
        tokens_per_request=tokens,
        **kw,
        units={
            "demand": "requests/s",
            "price": "USD/MWh",
            "carbon_intensity": "g/kWh",
            "energy_per_request": "Wh/token",
            "capacity": "units/hour",
        },
    )
    np.testing.assert_allclose(sc.demand, a["demand"], rtol=1e-13)
    np.testing.assert_allclose(sc.price, a["price"], rtol=1e-13)
    np.testing.assert_allclose(sc.carbon_intensity, a["carbon_intensity"], rtol=1e-13)
    np.testing.assert_allclose(sc.energy_per_request, a["energy_per_request"], rtol=1e-13)
    np.testing.assert_allclose(sc.capacity, a["capacity"], rtol=1e-13)
    with pytest.raises(UnitError, match=r"units: 'colour' is not a Scenario field"):
        Scenario.from_frames(
            demand=wide(a["demand"], REG, t),
            price=wide(a["price"], DC, t),
            units={"colour": "-"},
            **kw,
        )


# ---------------------------------------------------------------------------- plausibility
def test_plausible_scenario_is_silent() -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        sc = scenario()
    assert [w for w in seen if issubclass(w.category, PlausibilityWarning)] == []
    assert check_plausibility(sc) == []


def _with(field: str, value: float, at: tuple[int, ...]) -> dict:
    a = arrays()[field].copy()
    a[at] = value
    return {field: a}


@pytest.mark.parametrize(
    "field, value, at, pattern",
    [
        (
            "price",
            42.0,
            (2, 1),
            r"price is 42 USD/kWh at slot 2 \(2024-03-01 02:00\), datacenter 'south', outside the "
            r"plausible range \(\[-1, 5\] USD/kWh\); likely USD/MWh given as USD/kWh",
        ),
        (
            "price",
            -30.0,
            (0, 0),
            r"price is -30 USD/kWh at slot 0 .*datacenter 'north'.*"
            r"\[-1, 5\] USD/kWh.*below -1 USD/kWh is likely USD/MWh",
        ),
        (
            "carbon_intensity",
            450.0,
            (4, 2),
            r"carbon_intensity is 450 kg/kWh at slot 4 \(2024-03-01 04:00\), datacenter 'east', "
            r"outside the plausible range \(at most 2 kg/kWh\); likely g/kWh given as kg/kWh",
        ),
        (
            "pue",
            0.5,
            (1, 0),
            r"pue is 0.5 - at slot 1 .*datacenter 'north'.*\[1, 3\] -.*at least 1",
        ),
        ("pue", 3.4, (1, 2), r"pue is 3.4 - at slot 1 .*datacenter 'east'.*\[1, 3\]"),
        (
            "wue",
            475.0,
            (3, 1),
            r"wue is 475 L/kWh at slot 3 .*datacenter 'south'.*at most 20 "
            r"L/kWh.*gal/MWh",
        ),
        (
            "ewif",
            1800.0,
            (5, 0),
            r"ewif is 1800 L/kWh at slot 5 .*datacenter 'north'.*at most "
            r"100 L/kWh.*L/MWh",
        ),
    ],
)
def test_each_plausibility_warning_fires_and_strict_raises(field, value, at, pattern) -> None:
    over = _with(field, value, at)
    with pytest.warns(PlausibilityWarning, match=pattern):
        sc = scenario(**over)
    assert getattr(sc, field)[at] == value  # a warning, the value is kept
    with pytest.raises(PlausibilityError, match=pattern):
        scenario(**over, strict=True)
    with pytest.raises(PlausibilityError, match=pattern):  # strict survives replace()
        scenario(strict=True).replace(**over)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scenario(**over, plausibility_checks=False)
    assert issubclass(PlausibilityError, ScenarioError)


def test_warning_counts_other_values_and_units_silence_it() -> None:
    a = arrays()
    mwh = a["price"] * 1000.0
    with pytest.warns(
        PlausibilityWarning,
        match=r"price is \d+(\.\d+)? USD/kWh .*\(and 17 "
        r"other value\(s\) outside it\)",
    ):
        scenario(price=mwh)
    lab = labelled(a)
    kw = {f: lab[f] for f in FIELDS if f not in ("price", "allowed")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sc = Scenario.from_frames(price=wide(mwh, DC), units={"price": "USD/MWh"}, **kw)
    np.testing.assert_allclose(sc.price, a["price"], rtol=1e-15)
    with pytest.raises(PlausibilityError, match="price is"):
        Scenario.from_frames(price=wide(mwh, DC), strict=True, **kw)
