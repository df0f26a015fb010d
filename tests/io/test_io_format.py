"""Tests of the scenario folder format (eqglb.io.scenario_format, docs/scenario-format.md)."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eqglb.io.scenario_format import (
    UNITS,
    ScenarioFormatError,
    convert_unit,
    read_scenario,
    write_scenario,
)
from eqglb.scenario import Scenario, ScenarioError

EXAMPLE = Path(__file__).parents[2] / "examples" / "scenario_small"
GALLON_L = 3.785411784  # US gallon [L], definition

FIELDS = (
    "demand",
    "price",
    "carbon_intensity",
    "wue",
    "ewif",
    "health_cost",
    "pue",
    "energy_per_request",
    "capacity_per_request",
    "capacity",
    "quality_loss",
    "allowed",
    "latency",
)


def assert_same(a: Scenario, b: Scenario) -> None:
    """Every field equal (arrays bit-for-bit, names, time, mode, home, text)."""
    assert a.datacenters == b.datacenters
    assert a.regions == b.regions
    assert a.models == b.models
    assert a.time.equals(b.time)
    assert a.capacity_mode == b.capacity_mode
    assert a.home == b.home
    assert a.name == b.name
    assert a.description == b.description
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        if x is None or y is None:
            assert x is None and y is None, f
            continue
        assert x.shape == y.shape, f
        np.testing.assert_array_equal(x, y, err_msg=f)


def copy_example(tmp_path: Path) -> Path:
    d = tmp_path / "sc"
    shutil.copytree(EXAMPLE, d)
    return d


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, f"test setup: {old!r} not in {path.name}"
    path.write_text(text.replace(old, new, count))


def line_of(path: Path, needle: str) -> int:
    """1-based line (as an editor shows it) of the first line containing ``needle``."""
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return n
    raise AssertionError(f"{needle!r} not in {path}")


def raises_at(
    folder: Path, file: str, line: int | None, column: str | None = None, match: str = ""
) -> ScenarioFormatError:
    with pytest.raises(ScenarioFormatError) as info:
        read_scenario(folder)
    err = info.value
    msg = str(err)
    assert file in msg, msg
    assert err.file is not None and err.file.endswith(file), msg
    if line is not None:
        assert err.line == line, msg
        assert f"line {line}" in msg or f"row {line}" in msg, msg
    if column is not None:
        assert err.column == column, msg
        assert repr(column) in msg, msg
    if match:
        assert re.search(match, msg), msg
    return err


# ---------------------------------------------------------------------------- example
def test_read_example_converts_units_to_canonical() -> None:
    sc = read_scenario(EXAMPLE)
    toml = tomllib.loads((EXAMPLE / "scenario.toml").read_text())
    assert sc.datacenters == tuple(d["name"] for d in toml["datacenter"])
    assert sc.regions == tuple(r["name"] for r in toml["region"])
    assert sc.models == tuple(m["name"] for m in toml["model"])
    assert sc.shape == (12, 3, 3, 2)
    assert sc.slot_hours == 1.0
    assert sc.time[0] == pd.Timestamp("2022-09-22T00:00Z")

    def raw(name: str) -> pd.DataFrame:
        f = pd.read_csv(EXAMPLE / f"{name}.csv")
        return f.set_index(pd.to_datetime(f.pop("time"), utc=True))

    # declared units in the example: USD/MWh, g/kWh, L/kWh, gal/MWh, requests/slot
    np.testing.assert_allclose(sc.price, raw("price")[list(sc.datacenters)] / 1000, rtol=1e-15)
    np.testing.assert_allclose(
        sc.carbon_intensity, raw("carbon_intensity")[list(sc.datacenters)] / 1000, rtol=1e-15
    )
    np.testing.assert_allclose(sc.wue, raw("wue")[list(sc.datacenters)], rtol=1e-15)
    np.testing.assert_allclose(
        sc.ewif, raw("ewif")[list(sc.datacenters)] * GALLON_L / 1000, rtol=1e-15
    )
    np.testing.assert_array_equal(sc.demand, raw("demand")[list(sc.regions)])
    # pue: us-virginia from pue.csv, the others constant from scenario.toml
    np.testing.assert_allclose(sc.pue[:, 0], raw("pue")["us-virginia"], rtol=1e-15)
    assert (sc.pue[:, 1] == toml["datacenter"][1]["pue"]).all()
    assert (sc.pue[:, 2] == toml["datacenter"][2]["pue"]).all()
    # energy in Wh -> kWh; llama-70b differs per datacenter
    assert sc.energy_per_request[:, 0] == pytest.approx([0.4e-3] * 3, rel=1e-15)
    assert sc.energy_per_request[:, 1] == pytest.approx([3.9e-3, 3.6e-3, 3.9e-3], rel=1e-15)
    assert sc.capacity_per_request.tolist() == [0.5, 4.0]
    assert sc.quality_loss.tolist() == [0.3, 0.0]
    assert sc.capacity[0].tolist() == [288000.0, 216000.0, 180000.0]
    assert sc.home == ("us-virginia", "us-oregon", "eu-dublin")
    assert sc.latency is not None and sc.latency[1, 2] == 140.0
    assert sc.attrs["coordinates"]["datacenter"]["eu-dublin"] == {"lat": 53.3, "lon": -6.3}
    assert sc.attrs["source"].startswith("hand-made")
    # routing (routes.csv): a mask that is not a product of per-axis masks
    dc, rg, md = sc.datacenters.index, sc.regions.index, sc.models.index
    a = sc.allowed
    assert a[dc("us-virginia"), rg("us-east")].all()
    assert a[dc("us-oregon"), rg("us-east"), md("llama-7b")]
    assert not a[dc("us-oregon"), rg("us-east"), md("llama-70b")]
    assert a[dc("us-oregon"), rg("us-west"), md("llama-70b")]
    assert not a[:, rg("europe")][[dc("us-virginia"), dc("us-oregon")]].any()
    assert a.sum() == 2 + 2 + 1 + 2 + 2 + 1


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_example_round_trip(tmp_path: Path, fmt: str) -> None:
    sc = read_scenario(EXAMPLE)
    out = write_scenario(sc, tmp_path / "out", fmt=fmt)
    back = read_scenario(out)
    assert_same(sc, back)
    assert back.attrs == sc.attrs
    ext = ".csv" if fmt == "csv" else ".parquet"
    assert (out / f"price{ext}").is_file() and (out / f"routes{ext}").is_file()
    # only us-virginia's pue varies, so only it is written as a table column
    assert list(
        pd.read_csv(out / "pue.csv").columns
        if fmt == "csv"
        else pd.read_parquet(out / "pue.parquet").columns
    ) == ["time", "us-virginia"]


def test_read_accepts_toml_path(tmp_path: Path) -> None:
    assert_same(read_scenario(EXAMPLE / "scenario.toml"), read_scenario(EXAMPLE))


# ---------------------------------------------------------------------------- round trips
def rich_scenario() -> Scenario:
    """Per-model capacity varying in time at one DC, non-product mask, pue per slot."""
    T, N, J, K = 5, 3, 2, 2
    rng = np.random.default_rng(7)
    time = pd.date_range("2023-03-26T00:00", periods=T, freq="15min", tz="UTC")
    allowed = np.zeros((N, J, K), dtype=bool)
    allowed[0, 0, :] = True  # dc0 serves r0 with both models
    allowed[1, 0, 1] = True  # dc1 serves r0 with model 1 only
    allowed[1, 1, 0] = True  # dc1 serves r1 with model 0 only
    allowed[2, 1, :] = True
    cap = np.broadcast_to(
        np.array([[500.0, 300.0], [400.0, 0.0], [250.5, 125.25]]), (T, N, K)
    ).copy()
    cap[:, 2, 0] += np.arange(T) * 10.1  # dc2 varies over time
    return Scenario(
        datacenters=["a,dc", 'b"dc', "c dc"],
        regions=["r-ü", "r2"],
        models=["m7b", "m70b"],
        time=time,
        demand=rng.uniform(10, 100, (T, J)),
        price=rng.normal(0.05, 0.02, (T, N)),
        carbon_intensity=rng.uniform(0.1, 0.5, (T, N)),
        wue=rng.uniform(0, 2, (T, N)),
        ewif=rng.uniform(1, 3, (T, N)),
        pue=rng.uniform(1.05, 1.5, (T, N)),
        energy_per_request=rng.uniform(1e-4, 5e-3, (N, K)),
        capacity_per_request=np.array([1.0, 7.5]),
        capacity=cap,
        quality_loss=np.array([0.1 / 3, 0.0]),
        allowed=allowed,
        capacity_mode="per_model",
        latency=rng.uniform(5, 150, (N, J)),
        home=["c dc", "a,dc"],
        name="rich",
        description='multi-line\ndescription with "quotes"',
        attrs={"n": np.int64(3)},
    )


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_round_trip_per_model_capacity_mask_and_pue(tmp_path: Path, fmt: str) -> None:
    sc = rich_scenario()
    back = read_scenario(write_scenario(sc, tmp_path / "rich", fmt=fmt))
    assert_same(sc, back)
    assert back.attrs == {"n": 3}
    # the mask is not the product of its per-axis projections
    a = sc.allowed
    assert not np.array_equal(
        a,
        a.any(axis=(1, 2))[:, None, None]
        & a.any(axis=(0, 2))[None, :, None]
        & a.any(axis=(0, 1))[None, None, :],
    )


def test_per_model_capacity_table_layout(tmp_path: Path) -> None:
    """Constant DCs stay in scenario.toml; the varying one gets a (time, model) table."""
    sc = rich_scenario()
    out = write_scenario(sc, tmp_path / "rich")
    cap = pd.read_csv(out / "capacity.csv")
    assert list(cap.columns) == ["time", "model", "c dc"]
    assert len(cap) == sc.n_time * len(sc.models)
    doc = tomllib.loads((out / "scenario.toml").read_text())
    assert doc["datacenter"][0]["capacity"] == {"m7b": 500.0, "m70b": 300.0}
    assert "capacity" not in doc["datacenter"][2]


_NAMES = ["x", "us-east", "a b", "dc,1", 'q"t', "ünï", "n.1", "7"]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    T = draw(st.integers(1, 4))
    N = draw(st.integers(1, 3))
    J = draw(st.integers(1, 3))
    K = draw(st.integers(1, 2))
    names = draw(st.permutations(_NAMES))
    shared = draw(st.booleans())
    fin = st.floats(0, 1e6, allow_nan=False, allow_subnormal=True)

    def arr(shape: tuple[int, ...], el: st.SearchStrategy[float] = fin) -> np.ndarray:
        return np.array(
            draw(st.lists(el, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        ).reshape(shape)

    allowed = arr((N, J, K), st.booleans()).astype(bool)
    for j in range(J):  # every region needs one route
        if not allowed[:, j].any():
            allowed[draw(st.integers(0, N - 1)), j, draw(st.integers(0, K - 1))] = True
    step = draw(st.sampled_from(["15min", "1h"]))
    start = draw(
        st.datetimes(
            min_value=pd.Timestamp("2000-01-01").to_pydatetime(),
            max_value=pd.Timestamp("2030-01-01").to_pydatetime(),
        )
    )
    demand = arr((T, J), st.floats(0, 1e3, allow_nan=False))
    big = 1e9 + arr((T, N) if shared else (T, N, K), st.floats(0, 1e3))
    const = draw(st.booleans())
    cap = big[:1].repeat(T, axis=0) if const else big
    pue_t = draw(st.booleans())
    pue = arr((T, N) if pue_t else (N,), st.floats(1.0, 2.0))
    return Scenario(
        datacenters=names[:N],
        regions=names[N : N + J] if N + J <= len(names) else [f"r{j}" for j in range(J)],
        models=[f"m{k}" for k in range(K)],
        time=pd.date_range(pd.Timestamp(start).floor("s"), periods=T, freq=step, tz="UTC"),
        demand=demand,
        price=arr((T, N), st.floats(-1e3, 1e3, allow_nan=False)),
        carbon_intensity=arr((T, N)),
        wue=arr((T, N)),
        ewif=arr((T, N)),
        pue=pue,
        energy_per_request=arr((N, K)) if draw(st.booleans()) else arr((K,)),
        capacity_per_request=arr((K,), st.floats(0.01, 10.0)),
        capacity=cap,
        quality_loss=arr((K,), st.floats(0, 1)),
        allowed=allowed,
        capacity_mode="shared" if shared else "per_model",
        latency=arr((N, J)) if draw(st.booleans()) else None,
        home=[names[0]] * J if draw(st.booleans()) else None,
    )


# arbitrary magnitudes on purpose: implausible values must still round-trip
@pytest.mark.filterwarnings("ignore::eqglb.units.PlausibilityWarning")
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sc=scenarios(), fmt=st.sampled_from(["csv", "parquet"]))
def test_round_trip_property(
    tmp_path_factory: pytest.TempPathFactory, sc: Scenario, fmt: str
) -> None:
    out = tmp_path_factory.mktemp("prop") / "sc"
    assert_same(sc, read_scenario(write_scenario(sc, out, fmt=fmt)))


# ---------------------------------------------------------------------------- units
def test_unit_conversions() -> None:
    assert convert_unit("price", "USD/MWh")(42.0) == pytest.approx(0.042, rel=1e-15)
    assert convert_unit("carbon_intensity", "g CO2/kWh")(400.0) == pytest.approx(0.4)
    assert convert_unit("carbon_intensity", "tCO2e/MWh")(0.4) == 0.4
    assert convert_unit("wue", "gal/MWh")(1000.0) == pytest.approx(GALLON_L)
    assert convert_unit("ewif", "m3/MWh")(2.0) == 2.0
    assert convert_unit("energy_per_request", "J")(3.6e6) == pytest.approx(1.0)
    assert convert_unit("energy_per_request", "Wh")(3.6) == 0.0036  # as the user writes it
    assert convert_unit("latency", "s")(0.25) == 250.0
    for quantity, table in UNITS.items():
        assert next(iter(table.values())) == 1.0, quantity  # first label is canonical


def test_unknown_unit_lists_accepted_labels() -> None:
    with pytest.raises(ScenarioError, match=r"'EUR/MWh'.*USD/kWh.*USD/MWh"):
        convert_unit("price", "EUR/MWh")


# ---------------------------------------------------------------------------- malformed files
def test_missing_column(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    f = d / "price.csv"
    frame = pd.read_csv(f, dtype=str).drop(columns="us-oregon")
    frame.to_csv(f, index=False)
    raises_at(d, "price.csv", 1, match=r"missing column for datacenter 'us-oregon'.*add")


def test_missing_time_column(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    edit(d / "wue.csv", "time,", "timestamp,")
    raises_at(d, "wue.csv", 1, match=r"missing column 'time'")


def test_unknown_column_names_known_ones(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    edit(d / "demand.csv", "us-west", "us-wets")
    err = raises_at(d, "demand.csv", 1, "us-wets", match=r"not a region.*did you mean 'us-west'")
    assert "column 3" in str(err)


def test_wrong_unit_label(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    toml = d / "scenario.toml"
    edit(toml, 'unit = "g/kWh"', 'unit = "g/MWh"')
    raises_at(
        d,
        "scenario.toml",
        line_of(toml, 'unit = "g/MWh"'),  # the key at fault, not its table's header
        match=r"'g/MWh'.*kg/kWh.*g/kWh.*t/MWh",
    )


def test_wrong_energy_unit(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    toml = d / "scenario.toml"
    edit(toml, 'energy_unit = "Wh"', 'energy_unit = "watts"')
    raises_at(d, "scenario.toml", line_of(toml, '"watts"'), match=r"'watts'.*'kWh', 'Wh'")


def test_unparsable_timestamp(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    f = d / "ewif.csv"
    edit(f, "2022-09-22T04:00:00Z", "22/09/2022 4am")
    raises_at(d, "ewif.csv", line_of(f, "4am"), "time", match=r"not an ISO 8601")


def test_timestamps_with_offsets_are_converted(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    edit(d / "wue.csv", "2022-09-22T04:00:00Z", "2022-09-22T06:00:00+02:00")
    edit(d / "demand.csv", "2022-09-22T00:00:00Z", "2022-09-21T20:00:00-04:00")
    assert_same(read_scenario(d), read_scenario(EXAMPLE))


def test_excel_style_csv_bom_and_crlf(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    f = d / "price.csv"
    f.write_bytes(b"\xef\xbb\xbf" + f.read_text().replace("\n", "\r\n").encode())
    assert_same(read_scenario(d), read_scenario(EXAMPLE))
    edit(d / "price.csv", "52.09", "52.09x")
    raises_at(d, "price.csv", line_of(d / "price.csv", "52.09x"), "us-oregon")


def test_time_not_matching_demand(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    f = d / "carbon_intensity.csv"
    edit(f, "2022-09-22T07:00:00Z", "2022-09-22T07:30:00Z")
    raises_at(
        d,
        "carbon_intensity.csv",
        line_of(f, "07:30"),
        "time",
        match=r"differs from .*demand\.csv line 9",
    )


def test_time_gap_in_demand(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    f = d / "demand.csv"
    lines = f.read_text().splitlines(keepends=True)
    f.write_text("".join(lines[:5] + lines[6:]))  # drop 04:00
    raises_at(d, "demand.csv", line_of(f, "T05:00"), "time", match=r"fixed length")


def test_duplicate_name_in_toml(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    toml = d / "scenario.toml"
    edit(toml, 'name = "us-west"', 'name = "us-east"')
    err = raises_at(d, "scenario.toml", None, match=r"duplicate region name 'us-east'")
    heads = [n for n, s in enumerate(toml.read_text().splitlines(), 1) if s == "[[region]]"]
    assert err.line == heads[1]
    assert f"first defined at line {heads[0]}" in str(err)


def test_missing_file(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    (d / "wue.csv").unlink()
    raises_at(
        d,
        "scenario.toml",
        line_of(d / "scenario.toml", 'file = "wue.csv"'),  # the key naming the file
        match=r"wue\.csv' does not exist",
    )


def test_missing_scenario_toml(tmp_path: Path) -> None:
    with pytest.raises(ScenarioFormatError, match=r"scenario\.toml.*does not exist"):
        read_scenario(tmp_path)
    with pytest.raises(ScenarioFormatError, match="no such scenario folder"):
        read_scenario(tmp_path / "nope")


def test_toml_syntax_error_reports_line(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    toml = d / "scenario.toml"
    edit(toml, "pue = 1.12", "pue = 1.12.5")
    err = raises_at(d, "scenario.toml", line_of(toml, "pue = 1.12.5"), match="TOML syntax")
    assert "column" in str(err)


def test_unknown_toml_key(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    toml = d / "scenario.toml"
    edit(toml, "quality_loss = 0.3", "quality_los = 0.3")
    raises_at(
        d,
        "scenario.toml",
        line_of(toml, "quality_los ="),
        match=r"unknown key 'quality_los'.*did you mean 'quality_loss'",
    )


def test_non_numeric_cell(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    f = d / "demand.csv"
    edit(f, ",12600,12600", ",12600 req,12600")
    raises_at(d, "demand.csv", line_of(f, "12600 req"), "us-west", match=r"not a number")


def test_empty_cell(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    f = d / "price.csv"
    edit(f, ",52.09,", ",,")
    raises_at(d, "price.csv", line_of(f, "T05:00"), "us-oregon", match="empty cell")


def test_too_many_cells(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    f = d / "demand.csv"
    edit(f, "17400,12600,12600", "17400,12600,12600,1")
    raises_at(d, "demand.csv", line_of(f, "12600,1"), match="4")


def test_blank_lines_do_not_shift_line_numbers(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    f = d / "demand.csv"
    edit(f, "2022-09-22T02:00:00Z", "\n\n2022-09-22T02:00:00Z")
    edit(f, "15200", "x15200")
    raises_at(d, "demand.csv", line_of(f, "x15200"), "europe")


def test_unknown_name_in_routing(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    f = d / "routes.csv"
    edit(f, "eu-dublin,us-east,llama-7b", "eu-dublin,us-east,llama-13b")
    raises_at(
        d, "routes.csv", line_of(f, "llama-13b"), "model", match=r"'llama-13b' is not a model"
    )


def test_pue_given_twice(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    edit(d / "scenario.toml", 'name = "us-virginia"', 'name = "us-virginia"\npue = 1.3')
    raises_at(d, "pue.csv", 1, match="one place only")


# ---------------------------------------------------------------------------- values
def test_nan_value_names_file_and_line(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    f = d / "carbon_intensity.csv"
    edit(f, "342.3,264.3", "NaN,264.3")
    err = raises_at(
        d,
        "carbon_intensity.csv",
        line_of(f, "NaN"),
        "us-virginia",
        match=r"carbon_intensity has 1 NaN",
    )
    assert isinstance(err, ScenarioError)


def test_negative_value_names_toml_line(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    toml = d / "scenario.toml"
    edit(toml, "capacity_per_request = 4.0", "capacity_per_request = -4.0")
    raises_at(d, "scenario.toml", line_of(toml, "= -4.0"), match="capacity_per_request")


def test_infeasible_demand_names_demand_line(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    f = d / "demand.csv"
    edit(f, ",32000", ",900000")  # europe at 11:00 exceeds eu-dublin's capacity
    raises_at(
        d, "demand.csv", line_of(f, "900000"), "europe", match=r"cannot be served.*routes\.csv"
    )


def test_parquet_errors_name_row(tmp_path: Path) -> None:
    d = copy_example(tmp_path)
    frame = pd.read_csv(d / "wue.csv")
    frame.loc[3, "us-oregon"] = -1.0
    frame.to_parquet(d / "wue.parquet", index=False)
    edit(d / "scenario.toml", 'file = "wue.csv"', 'file = "wue.parquet"')
    err = raises_at(d, "wue.parquet", 4, "us-oregon", match="negative")
    assert "row 4" in str(err)


def test_per_model_capacity_table_errors(tmp_path: Path) -> None:
    out = write_scenario(rich_scenario(), tmp_path / "rich")
    f = out / "capacity.csv"
    lines = f.read_text().splitlines(keepends=True)
    f.write_text("".join(lines[:3] + lines[4:]))  # drop line 4
    with pytest.raises(ScenarioFormatError, match=r"capacity\.csv: no row for time"):
        read_scenario(out)
    f.write_text("".join(lines[:4] + [lines[3]] + lines[4:]))  # repeat line 4 as line 5
    raises_at(out, "capacity.csv", 5, match=r"appear twice \(first on line 4\)")


# ---------------------------------------------------------------------------- writing safely
def test_write_refuses_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ScenarioFormatError, match="not empty and holds no scenario.toml"):
        write_scenario(read_scenario(EXAMPLE), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_overwrite_only_own_files(tmp_path: Path) -> None:
    sc = read_scenario(EXAMPLE)
    out = write_scenario(sc, tmp_path / "o")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ScenarioFormatError, match="overwrite=True"):
        write_scenario(sc, out, fmt="parquet")
    write_scenario(sc, out, fmt="parquet", overwrite=True)
    names = {p.name for p in out.iterdir()}
    assert "notes.txt" in names and not any(n.endswith(".csv") for n in names)
    assert_same(sc, read_scenario(out))


def test_write_rejects_reserved_names(tmp_path: Path) -> None:
    sc = read_scenario(EXAMPLE)
    bad = sc.replace(regions=("time", "us-west", "europe"), home=None)
    with pytest.raises(ScenarioFormatError, match="'time'"):
        write_scenario(bad, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_write_unknown_fmt(tmp_path: Path) -> None:
    with pytest.raises(ScenarioFormatError, match="csv.*parquet"):
        write_scenario(read_scenario(EXAMPLE), tmp_path / "x", fmt="xlsx")


# ---------------------------------------------------------------------------- documentation
def test_docs_example_is_the_example_folder() -> None:
    """docs/scenario-format.md reproduces every file of examples/scenario_small exactly."""
    doc = (Path(__file__).parents[2] / "docs" / "scenario-format.md").read_text()
    blocks = dict(re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", doc, flags=re.S))
    files = {p.name: p.read_text() for p in EXAMPLE.iterdir() if p.is_file()}
    assert blocks == files


def test_docs_units_table_matches_code() -> None:
    """Every accepted unit label is documented."""
    doc = (Path(__file__).parents[2] / "docs" / "scenario-format.md").read_text()
    section = doc.split("## Units", 1)[1].split("## Reading and writing", 1)[0]
    documented = set(re.findall(r"`([^`]+)`", section))
    for table in UNITS.values():
        assert set(table) <= documented
