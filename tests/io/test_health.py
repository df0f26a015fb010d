"""Tests of the health-2023 loader (eqglb.io.health) against the shared data.

The values are checked against an independent parse of the files with the csv module,
the annual means against the README of the data; corrupted copies (in tmp_path) must
fail with errors naming the file, line, column and fix. Tests fail (never skip) when
``../shared/data/health-2023`` is missing.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eqglb.io._common import DataFormatError
from eqglb.io.health import (
    GRIDS,
    HealthData,
    grid_mapping,
    health_cost_for,
    load_health_2023,
    nearest_grid,
    read_health_2023,
)
from eqglb.scenario import ScenarioError
from eqglb.units import UnitError

FUEL_OF = {
    "Coal_percentage": "coal",
    "Natural_Gas_percentage": "natural_gas",
    "Oil_percentage": "oil",
    "Nuclear_percentage": "nuclear",
    "Renewable_percentage": "renewable",
}


@pytest.fixture(scope="module")
def health_dir(shared_dir: Path) -> Path:
    folder = shared_dir / "data" / "health-2023"
    if not folder.is_dir():
        pytest.fail(f"shared health-2023 data missing at {folder}: these tests need it")
    return folder


@pytest.fixture(scope="module")
def data(health_dir: Path) -> HealthData:
    return read_health_2023(health_dir)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------- real files
def test_values_match_an_independent_csv_parse(health_dir, data):
    total = load_health_2023(health_dir)
    for grid in GRIDS:
        rows = _rows(health_dir / f"{grid}_dataset.csv")
        assert len(rows) == 8760
        for r in (0, 1, 2345, 6000, 8759):
            row = rows[r]
            # hour-ending label, UTC -> the slot starts one hour earlier
            start = pd.Timestamp(row["period"].replace("T", " ") + ":00", tz="UTC")
            start -= pd.Timedelta(hours=1)
            assert data.internal.index[r] == start
            internal = float(row["internal_health_cost"]) / 1000.0  # USD/MWh -> USD/kWh
            external = float(row["external_health_cost"]) / 1000.0
            assert data.internal.loc[start, grid] == pytest.approx(internal, rel=1e-12)
            assert data.external.loc[start, grid] == pytest.approx(external, rel=1e-12)
            assert total.loc[start, grid] == pytest.approx(internal + external, rel=1e-12)
            for col, fuel in FUEL_OF.items():  # column order differs between files
                assert row[col].endswith("%")
                want = float(row[col][:-1]) / 100.0
                assert data.fuel_mix.loc[start, (grid, fuel)] == pytest.approx(want, abs=1e-12)


def test_annual_means_are_those_the_readme_states(data):
    # README: means over the year 7.8-23.6 (internal) and 10.0-26.6 (external), file unit
    internal = data.internal.mean() * 1000.0
    external = data.external.mean() * 1000.0
    assert round(internal.min(), 1) == 7.8 and round(internal.max(), 1) == 23.6
    assert round(external.min(), 1) == 10.0 and round(external.max(), 1) == 26.6
    assert internal.idxmin() == "TVA" and external.idxmax() == "TVA"


def test_time_axis_is_the_hourly_slot_start_in_utc(health_dir, data):
    idx = data.internal.index
    assert len(idx) == 8760 and str(idx.tz) == "UTC"
    assert idx[0] == pd.Timestamp("2022-12-31 23:00", tz="UTC")
    assert idx[-1] == pd.Timestamp("2023-12-31 22:00", tz="UTC")
    assert (np.diff(idx.asi8) == pd.Timedelta(hours=1).value).all()
    as_start = load_health_2023(health_dir, ["ERCO"], period="start")
    assert as_start.index[0] == pd.Timestamp("2023-01-01 00:00", tz="UTC")
    np.testing.assert_array_equal(as_start["ERCO"].to_numpy(), data.cost()["ERCO"].to_numpy())
    with pytest.raises(ScenarioError, match="period"):
        read_health_2023(health_dir, ["ERCO"], period="middle")


def test_fuel_mix_rows_sum_to_one(data):
    sums = data.fuel_mix.T.groupby(level="grid").sum().T
    assert list(sums.columns) == list(GRIDS)
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=3e-4)


def test_which_selects_the_part_and_total_is_their_sum(health_dir, data):
    got = {
        w: load_health_2023(health_dir, ["PJM", "TVA"], which=w) for w in ("internal", "external")
    }
    total = load_health_2023(health_dir, ["PJM", "TVA"])
    assert list(total.columns) == ["PJM", "TVA"]
    np.testing.assert_array_equal(got["internal"].to_numpy(), data.internal[["PJM", "TVA"]])
    np.testing.assert_array_equal(got["external"].to_numpy(), data.external[["PJM", "TVA"]])
    np.testing.assert_allclose(total.to_numpy(), got["internal"] + got["external"], rtol=1e-15)
    assert total.attrs["which"] == "total" and total.attrs["unit"] == "USD/kWh"
    assert total.attrs["source_unit"] == "USD/MWh" and total.attrs["unit_assumed"] is True
    with pytest.raises(ScenarioError, match="which is 'both'"):
        load_health_2023(health_dir, which="both")


def test_unit_override(health_dir):
    mwh = load_health_2023(health_dir, ["CISO"])
    kwh = load_health_2023(health_dir, ["CISO"], unit="USD/kWh")
    cents = load_health_2023(health_dir, ["CISO"], unit="cents/kWh")
    np.testing.assert_allclose(kwh.to_numpy(), 1000.0 * mwh.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(cents.to_numpy(), 10.0 * mwh.to_numpy(), rtol=1e-12)
    assert kwh.attrs["unit_assumed"] is False
    with pytest.raises(UnitError, match=r"unit 'EUR/MWh'.*USD/MWh.*assumed"):
        load_health_2023(health_dir, ["CISO"], unit="EUR/MWh")


def test_unknown_grid_and_missing_folder(tmp_path, health_dir):
    with pytest.raises(ScenarioError, match=r"\['MISO'\] unknown"):
        load_health_2023(health_dir, ["CISO", "MISO"])
    with pytest.raises(DataFormatError, match="folder not found"):
        load_health_2023(tmp_path / "nowhere")
    with pytest.raises(
        DataFormatError, match=r"PJM_dataset\.csv: health-2023 file of PJM not found"
    ):
        load_health_2023(tmp_path, ["PJM"])


# ---------------------------------------------------------------- corrupted copies
def _corrupt(health_dir: Path, tmp_path: Path, grid: str, edit) -> Path:
    """A copy of one grid's file in tmp_path with ``edit(lines)`` applied (line 1 = header)."""
    lines = (health_dir / f"{grid}_dataset.csv").read_text().split("\n")
    edit(lines)
    (tmp_path / f"{grid}_dataset.csv").write_text("\n".join(lines))
    return tmp_path


def _set_cell(lines: list[str], line: int, column: str, value: str) -> None:
    header = lines[0].split(",")
    cells = lines[line - 1].split(",")
    cells[header.index(column)] = value
    lines[line - 1] = ",".join(cells)


def _error(folder: Path, grid: str) -> DataFormatError:
    with pytest.raises(DataFormatError) as info:
        read_health_2023(folder, [grid])
    return info.value


def test_bad_percentage_is_located(health_dir, tmp_path):
    folder = _corrupt(
        health_dir, tmp_path, "ERCO", lambda ls: _set_cell(ls, 101, "Coal_percentage", "1x.5%")
    )
    err = _error(folder, "ERCO")
    assert err.path.endswith("ERCO_dataset.csv") and err.line == 101
    assert err.column == "Coal_percentage"
    assert "ERCO_dataset.csv, line 101, column 'Coal_percentage'" in str(err)
    assert "'1x.5' is not a number" in str(err) and "decimal number" in str(err)


def test_percentage_without_sign_is_located(health_dir, tmp_path):
    folder = _corrupt(
        health_dir, tmp_path, "PJM", lambda ls: _set_cell(ls, 7, "Oil_percentage", "0.20")
    )
    err = _error(folder, "PJM")
    assert (err.line, err.column) == (7, "Oil_percentage")
    assert "no '%' sign" in str(err) and "with a % sign" in str(err)


def test_shares_not_summing_to_100_are_located(health_dir, tmp_path):
    folder = _corrupt(
        health_dir, tmp_path, "TVA", lambda ls: _set_cell(ls, 50, "Nuclear_percentage", "0.00%")
    )
    err = _error(folder, "TVA")
    assert err.line == 50 and "sum to" in str(err) and "not 100 %" in str(err)


def test_missing_row_is_located(health_dir, tmp_path):
    folder = _corrupt(health_dir, tmp_path, "CISO", lambda ls: ls.pop(500))  # line 501
    err = _error(folder, "CISO")
    # lines 500 and 501 of the copy are 2023-01-21T18 and T20: one hour missing
    assert err.line == 501 and err.column == "period"
    assert "1 missing slot(s)" in str(err) and "between line 500 and this line" in str(err)
    assert "fill the missing time slots" in str(err)


def test_short_year_is_refused(health_dir, tmp_path):
    folder = _corrupt(health_dir, tmp_path, "CISO", lambda ls: ls.__delitem__(slice(-24, None)))
    err = _error(folder, "CISO")
    assert "8,736 hourly rows" in str(err) and "expected 8,760" in str(err)
    assert err.line == 8737


def test_negative_cost_is_located(health_dir, tmp_path):
    folder = _corrupt(
        health_dir, tmp_path, "ERCO", lambda ls: _set_cell(ls, 2000, "external_health_cost", "-1.5")
    )
    err = _error(folder, "ERCO")
    assert (err.line, err.column) == (2000, "external_health_cost")
    assert "-1.5 is negative" in str(err) and "cost >= 0" in str(err)


@pytest.mark.parametrize(
    ("cell", "words"), [("inf", "not finite"), ("", "missing"), ("n/a", "not a number")]
)
def test_cost_that_is_not_a_finite_number_is_located(health_dir, tmp_path, cell, words):
    folder = _corrupt(
        health_dir, tmp_path, "TVA", lambda ls: _set_cell(ls, 3, "internal_health_cost", cell)
    )
    err = _error(folder, "TVA")
    assert (err.line, err.column) == (3, "internal_health_cost") and words in str(err)


def test_missing_column_is_named(health_dir, tmp_path):
    def drop(lines: list[str]) -> None:
        lines[0] = lines[0].replace("internal_health_cost", "internal_cost")

    err = _error(_corrupt(health_dir, tmp_path, "PJM", drop), "PJM")
    assert err.line == 1 and "no column 'internal_health_cost'" in str(err)


# ---------------------------------------------------------------- mapping sites to grids
def test_nearest_grid_of_cities_inside_each_grid():
    assert nearest_grid(34.05, -118.24)[0] == "CISO"  # Los Angeles (CISO's south)
    assert nearest_grid(29.76, -95.37)[0] == "ERCO"  # Houston
    assert nearest_grid(39.95, -75.17)[0] == "PJM"  # Philadelphia
    assert nearest_grid(41.88, -87.63)[0] == "PJM"  # Chicago (ComEd zone)
    assert nearest_grid(36.16, -86.78)[0] == "TVA"  # Nashville
    grid, km = nearest_grid(35.6, -86.7)
    assert grid == "TVA" and km == pytest.approx(0.0, abs=1e-9)


def test_grid_mapping_of_the_builtin_sites():
    from eqglb.builtin import HEALTH_GRID, SITES

    mapping = grid_mapping([(s.name, s.lat, s.lon) for s in SITES])
    assert mapping == HEALTH_GRID
    assert [mapping[n] for n in ("Texas", "Virginia", "Georgia", "Nevada")] == [
        "ERCO",
        "PJM",
        "TVA",
        "CISO",
    ]
    assert grid_mapping([("Atlanta", 33.75, -84.39)], max_km=200.0) == {"Atlanta": None}


def test_health_cost_for_lays_grids_out_per_datacenter(health_dir):
    cost = load_health_2023(health_dir, ["ERCO", "PJM"])
    out = health_cost_for(
        ["dc_tx", "dc_va", "dc_eu"], cost, {"dc_tx": "ERCO", "dc_va": "PJM", "dc_eu": None}
    )
    assert list(out.columns) == ["dc_tx", "dc_va", "dc_eu"]
    assert out.index.equals(cost.index)
    np.testing.assert_array_equal(out["dc_tx"].to_numpy(), cost["ERCO"].to_numpy())
    np.testing.assert_array_equal(out["dc_va"].to_numpy(), cost["PJM"].to_numpy())
    np.testing.assert_array_equal(out["dc_eu"].to_numpy(), 0.0)
    assert "not zero harm" in out.attrs["unmapped"] and out.attrs["mapping"]["dc_eu"] is None
    with pytest.raises(ScenarioError, match="grid 'TVA'"):
        health_cost_for(["a"], cost, {"a": "TVA"})
    with pytest.raises(ScenarioError, match=r"\['b'\], not among"):
        health_cost_for(["a"], cost, {"b": "PJM"})


def test_the_loaders_are_exported_by_eqglb_io():
    import eqglb.io
    import eqglb.io.health as health

    for name in ("load_health_2023", "read_health_2023", "grid_mapping", "health_cost_for"):
        assert getattr(eqglb.io, name) is getattr(health, name)
        assert name in eqglb.io.__all__
    with pytest.raises(AttributeError, match="no attribute 'load_health'"):
        eqglb.io.load_health  # noqa: B018
