"""The one field schema (eqglb.fields) as used by Scenario, the scenario format and netCDF,
the health_cost signal in files, and errors whose location is data (issue 11 item 4)."""

from __future__ import annotations

import math
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eqglb import units
from eqglb.fields import FIELDS, SIGNALS, SITE_SIGNALS
from eqglb.io.netcdf import read_netcdf, write_netcdf
from eqglb.io.scenario_format import (
    ScenarioFormatError,
    ScenarioSpec,
    read_scenario,
    write_scenario,
)
from eqglb.scenario import InfeasibleDemandError, Scenario, ScenarioError

EXAMPLE = Path(__file__).parents[2] / "examples" / "scenario_small"


def copy_example(tmp_path: Path) -> Path:
    d = tmp_path / "sc"
    shutil.copytree(EXAMPLE, d)
    return d


def with_health(sc: Scenario, seed: int = 3) -> Scenario:
    """``sc`` with a health cost [USD/kWh] that differs per slot and site."""
    rng = np.random.default_rng(seed)
    return sc.replace(health_cost=rng.uniform(0.005, 0.08, (sc.n_time, len(sc.datacenters))))


def add_health_table(d: Path, values: np.ndarray, unit: str) -> None:
    """Write health_cost.csv next to price.csv and declare it in scenario.toml."""
    price = pd.read_csv(d / "price.csv")
    frame = price.copy()
    frame.iloc[:, 1:] = values
    frame.to_csv(d / "health_cost.csv", index=False)
    toml = d / "scenario.toml"
    text = toml.read_text()
    toml.write_text(
        text.replace(
            "[routing]",
            f'[timeseries.health_cost]\nfile = "health_cost.csv"\nunit = "{unit}"\n\n[routing]',
            1,
        )
    )


def line_of(path: Path, needle: str) -> int:
    return next(n for n, s in enumerate(path.read_text().splitlines(), 1) if needle in s)


# ---------------------------------------------------------------------------- schema
def test_scenario_stores_every_field_of_the_schema_with_its_dims() -> None:
    sc = read_scenario(EXAMPLE)
    sizes = dict(zip(("time", "datacenter", "region", "model"), sc.shape, strict=True))
    for name, f in FIELDS.items():
        a = getattr(sc, name)
        assert a is not None, name  # the example has latency and routes
        assert a.shape == tuple(sizes[d] for d in f.dims), name
        assert not a.flags.writeable, name
        assert a.dtype == (bool if f.kind == "bool" else float), name


def test_canonical_units_of_the_schema_are_those_of_units() -> None:
    """Field.unit (docs) and eqglb.units.CANONICAL (conversion, xarray attrs) agree."""
    for name, f in FIELDS.items():
        if f.kind != "float":
            continue
        q = "capacity_shared" if name == "capacity" else name
        assert units._norm(f.unit) == units._norm(units.CANONICAL[q]), name


def test_site_signals_include_health_cost() -> None:
    assert "health_cost" in SIGNALS and "health_cost" in SITE_SIGNALS
    assert "capacity" in SIGNALS and "capacity" not in SITE_SIGNALS


def test_slice_time_cuts_every_signal() -> None:
    sc = with_health(read_scenario(EXAMPLE))
    part = sc.slice_time(3, 7)
    assert part.n_time == 4
    for name in SIGNALS:
        np.testing.assert_array_equal(getattr(part, name), getattr(sc, name)[3:7], err_msg=name)
    np.testing.assert_array_equal(part.energy_per_request, sc.energy_per_request)


@pytest.mark.parametrize(
    ("name", "bad", "fix"),
    [
        ("health_cost", -0.01, "health_cost must be >= 0"),
        ("pue", 0.0, "PUE is facility/IT energy"),
        ("wue", np.nan, "fill or drop them"),
    ],
)
def test_bounds_of_the_schema_are_enforced_with_data(name: str, bad: float, fix: str) -> None:
    sc = with_health(read_scenario(EXAMPLE))
    a = np.array(getattr(sc, name))
    a[4, 2] = bad
    with pytest.raises(ScenarioError) as info:
        sc.replace(**{name: a})
    err = info.value
    assert err.field == name
    assert err.coordinate == {"time": 4, "datacenter": 2}
    assert err.fix is not None and fix in err.fix and str(err).endswith(err.fix)
    assert "slot 4" in str(err) and "'eu-dublin'" in str(err)


def test_open_lower_bound_refuses_the_bound_itself() -> None:
    f = FIELDS["capacity_per_request"]
    assert f.out_of_bounds(0.0) and not f.out_of_bounds(1e-12)
    assert FIELDS["quality_loss"].out_of_bounds(1.0 + 1e-12)
    assert not FIELDS["price"].out_of_bounds(-50.0)
    sc = read_scenario(EXAMPLE)
    with pytest.raises(ScenarioError, match=r"capacity_per_request is 0 for model 'llama-7b'"):
        sc.replace(capacity_per_request=[0.0, 4.0])


# ---------------------------------------------------------------------------- health_cost
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_health_cost_round_trips_exactly(tmp_path: Path, fmt: str) -> None:
    sc = with_health(read_scenario(EXAMPLE))
    out = write_scenario(sc, tmp_path / "h", fmt=fmt)
    ext = ".csv" if fmt == "csv" else ".parquet"
    assert (out / f"health_cost{ext}").is_file()
    doc = tomllib.loads((out / "scenario.toml").read_text())
    assert doc["timeseries"]["health_cost"] == {"file": f"health_cost{ext}", "unit": "USD/kWh"}
    back = read_scenario(out)
    np.testing.assert_array_equal(back.health_cost, sc.health_cost)
    np.testing.assert_array_equal(back.price, sc.price)


def test_zero_health_cost_is_not_written_and_reads_as_zero(tmp_path: Path) -> None:
    sc = read_scenario(EXAMPLE)
    assert not np.any(sc.health_cost)
    out = write_scenario(sc, tmp_path / "z")
    assert not (out / "health_cost.csv").exists()
    assert "health_cost" not in (out / "scenario.toml").read_text()
    back = read_scenario(out)
    assert back.health_cost.shape == (sc.n_time, len(sc.datacenters))
    assert not np.any(back.health_cost)


def test_health_cost_in_usd_per_mwh_is_converted(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    rng = np.random.default_rng(11)
    raw = np.round(rng.uniform(5.0, 40.0, (12, 3)), 2)  # USD/MWh, as the health-2023 data
    add_health_table(d, raw, "USD/MWh")
    sc = read_scenario(d)
    cols = pd.read_csv(d / "health_cost.csv").columns[1:]
    order = [list(cols).index(n) for n in sc.datacenters]
    np.testing.assert_array_equal(sc.health_cost, raw[:, order] / 1000.0)


@pytest.mark.parametrize(("value", "match"), [("-3.5", "negative"), ("nan", "NaN/inf")])
def test_bad_health_value_is_located(tmp_path: Path, value: str, match: str) -> None:
    d = copy_example(tmp_path)
    add_health_table(d, np.full((12, 3), 20.0), "USD/MWh")
    f = d / "health_cost.csv"
    lines = f.read_text().splitlines()
    cells = lines[6].split(",")  # line 7: slot 5
    header = lines[0].split(",")
    cells[2] = value
    lines[6] = ",".join(cells)
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(ScenarioFormatError) as info:
        read_scenario(d)
    err = info.value
    assert err.file is not None and err.file.endswith("health_cost.csv")
    assert err.line == 7 and err.column == header[2] and err.column_number == 3
    assert err.field == "health_cost"
    dcs = tomllib.loads((d / "scenario.toml").read_text())["datacenter"]
    assert err.coordinate == {"time": 5, "datacenter": [x["name"] for x in dcs].index(header[2])}
    assert match in str(err) and "line 7" in str(err) and repr(header[2]) in str(err)


def test_health_cost_without_unit_is_refused_at_its_table(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    add_health_table(d, np.full((12, 3), 0.02), "USD/kWh")
    toml = d / "scenario.toml"
    toml.write_text(toml.read_text().replace('unit = "USD/kWh"\n', "", 1))
    with pytest.raises(ScenarioFormatError) as info:
        read_scenario(d)
    assert info.value.line == line_of(toml, "[timeseries.health_cost]")
    assert "has no unit" in str(info.value) and "USD/MWh" in str(info.value)


def test_implausible_health_cost_warns_of_the_unit() -> None:
    sc = read_scenario(EXAMPLE)
    with pytest.warns(units.PlausibilityWarning, match=r"health_cost.*USD/MWh"):
        sc.replace(health_cost=np.full((sc.n_time, len(sc.datacenters)), 25.0))


def test_netcdf_round_trip_with_health_cost(tmp_path: Path) -> None:
    sc = with_health(read_scenario(EXAMPLE))
    back = read_netcdf(write_netcdf(tmp_path / "s.nc", sc)).scenario
    np.testing.assert_array_equal(back.health_cost, sc.health_cost)
    ds = sc.to_xarray()
    assert ds["health_cost"].dims == ("time", "datacenter")
    assert ds["health_cost"].attrs["units"] == "USD/kWh"
    # absent (all 0): not written, read back as 0
    plain = read_scenario(EXAMPLE)
    assert "health_cost" not in plain.to_xarray().data_vars
    again = read_netcdf(write_netcdf(tmp_path / "p.nc", plain)).scenario
    assert not np.any(again.health_cost)


def test_from_frames_takes_health_cost_with_a_unit() -> None:
    sc = read_scenario(EXAMPLE)
    idx = sc.time
    health = pd.DataFrame(
        np.arange(36, dtype=float).reshape(12, 3) + 1.0, index=idx, columns=sc.datacenters
    )
    got = Scenario.from_frames(
        demand=pd.DataFrame(sc.demand, index=idx, columns=sc.regions),
        price=pd.DataFrame(sc.price, index=idx, columns=sc.datacenters),
        carbon_intensity=pd.DataFrame(sc.carbon_intensity, index=idx, columns=sc.datacenters),
        wue=pd.DataFrame(sc.wue, index=idx, columns=sc.datacenters),
        ewif=pd.DataFrame(sc.ewif, index=idx, columns=sc.datacenters),
        health_cost=health[list(reversed(sc.datacenters))],  # aligned by name
        pue=pd.DataFrame(sc.pue, index=idx, columns=sc.datacenters),
        energy_per_request=sc.energy_per_request,
        capacity_per_request=pd.Series(sc.capacity_per_request, index=sc.models),
        capacity=pd.DataFrame(sc.capacity, index=idx, columns=sc.datacenters),
        quality_loss=pd.Series(sc.quality_loss, index=sc.models),
        allowed=sc.allowed,
        units={"health_cost": "USD/MWh"},
    )
    np.testing.assert_array_equal(got.health_cost, health.to_numpy() / 1000.0)


# ---------------------------------------------------------------------------- errors as data
def test_example_toml_is_a_valid_spec() -> None:
    spec = ScenarioSpec.model_validate(tomllib.loads((EXAMPLE / "scenario.toml").read_text()))
    assert [d.name for d in spec.datacenter] == ["us-virginia", "us-oregon", "eu-dublin"]
    assert spec.timeseries.price.unit == "USD/MWh"  # type: ignore[attr-defined]
    assert spec.timeseries.health_cost is None  # type: ignore[attr-defined]


def test_toml_errors_carry_field_line_and_fix(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    toml = d / "scenario.toml"
    toml.write_text(toml.read_text().replace("quality_loss = 0.0", 'quality_loss = "best"'))
    with pytest.raises(ScenarioFormatError) as info:
        read_scenario(d)
    err = info.value
    assert err.field == "model.1.quality_loss"
    assert err.line == line_of(toml, '"best"')
    assert err.problem == "quality_loss of model 'llama-70b' is 'best'"
    assert err.fix == "write a number (e.g. 1.2)"
    assert str(err).endswith(f": {err.problem}; {err.fix}")


def test_number_in_a_toml_table_is_checked(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    toml = d / "scenario.toml"
    toml.write_text(toml.read_text().replace("us-oregon = 3.6", "us-oregon = 1e20"))
    with pytest.raises(ScenarioFormatError) as info:
        read_scenario(d)
    assert info.value.line == line_of(toml, "us-oregon = 1e20")
    assert "energy_per_request of model 'llama-70b' at 'us-oregon' is 1e+20" in str(info.value)
    assert "beyond the supported magnitude" in str(info.value)
    toml.write_text(toml.read_text().replace("us-oregon = 1e20", 'us-oregon = "3.6"'))
    with pytest.raises(ScenarioFormatError, match=r"at 'us-oregon' is '3\.6'; write a number"):
        read_scenario(d)


def test_infeasible_demand_is_data_and_located(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    f = d / "demand.csv"
    f.write_text(f.read_text().replace(",32000", ",900000", 1))
    with pytest.raises(ScenarioFormatError) as info:
        read_scenario(d)
    err = info.value
    assert isinstance(err.__cause__, InfeasibleDemandError)
    assert err.field == "demand" and err.column == "europe"
    assert err.coordinate == {"time": err.line - 2, "region": 2}
    assert err.fix is not None and err.fix.startswith("raise capacity")


def test_rate_units_use_the_slot_length(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    toml = d / "scenario.toml"
    toml.write_text(toml.read_text().replace('unit = "requests/slot"', 'unit = "requests/s"'))
    sc = read_scenario(d, validate_feasibility=False)
    raw = pd.read_csv(d / "demand.csv")[list(sc.regions)].to_numpy()
    np.testing.assert_array_equal(sc.demand, raw * 3600.0)  # 1 h slots
    assert math.isclose(sc.slot_hours, 1.0)


def test_sub_table_of_an_array_of_tables_is_located(tmp_path: Path) -> None:
    """``[model.energy_per_request]`` after the second ``[[model]]`` belongs to it."""
    d = copy_example(tmp_path)
    toml = d / "scenario.toml"
    text = toml.read_text()
    old = "energy_per_request = { us-virginia = 3.9, us-oregon = 3.6, eu-dublin = 3.9 }\n"
    assert old in text
    text = text.replace(old, "").replace(
        "[attrs]",
        "[model.energy_per_request]\nus-virginia = 3.9\nus-oregon = 3.6\neu-dublim = 3.9\n\n"
        "[attrs]",
    )
    toml.write_text(text)
    with pytest.raises(ScenarioFormatError) as info:
        read_scenario(d)
    assert info.value.line == line_of(toml, "[model.energy_per_request]")
    assert "energy_per_request of model 'llama-70b' names unknown datacenter 'eu-dublim'" in str(
        info.value
    )
    assert "did you mean 'eu-dublin'" in str(info.value)


def test_netcdf_value_error_keeps_its_data(tmp_path: Path) -> None:
    sc = with_health(read_scenario(EXAMPLE))
    path = write_netcdf(tmp_path / "s.nc", sc)
    import xarray as xr

    ds = xr.open_dataset(path, engine="h5netcdf").load()
    ds.close()
    ds["health_cost"][2, 1] = -1.0
    ds.to_netcdf(tmp_path / "bad.nc", engine="h5netcdf")
    with pytest.raises(ScenarioError) as info:
        read_netcdf(tmp_path / "bad.nc")
    err = info.value
    assert str(err).startswith(f"{tmp_path / 'bad.nc'}: health_cost has 1 negative")
    assert err.field == "health_cost" and err.coordinate == {"time": 2, "datacenter": 1}
