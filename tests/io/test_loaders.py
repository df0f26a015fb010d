"""Real-data loaders: egl-2022 and Azure traces (shared files), EIA-930, IEM ASOS and
Electricity Maps (small fixtures in tests/io/data written in the published layouts).

Every malformed-input test checks that the error is a ScenarioError subclass naming the
file and the 1-based line of the defect.
"""

from __future__ import annotations

import csv
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import psychrolib
import pytest

from eqglb import ScenarioError
from eqglb.io._common import DataFormatError
from eqglb.io.asos import load_asos, read_asos
from eqglb.io.azure import azure_arrivals, read_azure_trace, spread_over_regions
from eqglb.io.egl2022 import SITES, load_egl2022, read_egl2022_signals
from eqglb.io.eia930 import load_eia930, read_eia930_generation
from eqglb.io.electricitymaps import load_electricitymaps

DATA = Path(__file__).resolve().parent / "data"
EIA = DATA / "eia930_balance_2022_sample.csv"
ASOS = DATA / "asos_iem_sample.csv"
EM_DE = DATA / "electricitymaps_DE_2022_hourly_sample.csv"
EM_ERCO = DATA / "electricitymaps_US-TEX-ERCO_2022_hourly_sample.csv"
GAL = 3.785411784e-3  # L/kWh per gal/MWh


def _rewrite(src: Path, dst: Path, edit) -> Path:
    """Copy a text file applying ``edit(list_of_lines) -> list_of_lines``."""
    lines = src.read_text(encoding="utf-8").splitlines()
    dst.write_text("\n".join(edit(lines)) + "\n", encoding="utf-8")
    return dst


def _raises_at(fn, path: Path, line: int | None, match: str) -> DataFormatError:
    with pytest.raises(DataFormatError, match=match) as info:
        fn()
    err = info.value
    assert isinstance(err, ScenarioError)
    assert Path(err.path).name == Path(path).name, str(err)
    assert err.line == line, str(err)
    assert "; " in str(err)  # problem; fix
    return err


# =========================================================================== egl-2022
@pytest.fixture(scope="module")
def egl_dir(request) -> Path:
    shared = request.getfixturevalue("shared_dir")
    return shared / "data" / "egl-2022"


@pytest.fixture(scope="module")
def egl_full(egl_dir):
    return load_egl2022(egl_dir)


def _first_row(path: Path) -> tuple[list[str], list[str], int]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1], len(rows) - 1


def test_egl2022_full_scenario_matches_files(egl_dir, egl_full):
    s = egl_full
    assert s.shape == (457, 10, 10, 1)
    assert s.datacenters == SITES and s.regions == SITES and s.home == SITES
    assert "Belgium" in s.datacenters and "Belguim" not in s.datacenters
    assert s.time[0] == pd.Timestamp("2022-09-22 00:00", tz="UTC")
    assert s.time[-1] == pd.Timestamp("2022-10-11 00:00", tz="UTC")
    # first rows read independently with the csv module
    _, row, _ = _first_row(egl_dir / "AI_workload.csv")
    assert row[0] == "2022-09-22 00"
    np.testing.assert_allclose(s.demand[0], float(row[1]) / 2708.0)
    for i, site in enumerate(SITES):
        fsite = "Belguim" if site == "Belgium" else site
        hp, rp, _ = _first_row(egl_dir / "price" / f"{fsite}_Price.csv")
        hc, rc, _ = _first_row(egl_dir / "carbon" / f"{fsite}_carbon.csv")
        hw, rw, _ = _first_row(egl_dir / "water" / f"{fsite}_water.csv")
        assert hp[1] == "Price (USD/MWh)" and hc[1] == "Carbon (kg/kWh)" and hw[1] == " WUE (L/kWh)"
        assert s.price[0, i] == pytest.approx(float(rp[1]) / 1000.0, rel=1e-15)
        assert s.carbon_intensity[0, i] == pytest.approx(float(rc[1]), rel=1e-15)
        assert s.wue[0, i] == pytest.approx(float(rw[1]), rel=1e-15)
    assert (s.ewif == 0).all() and (s.pue == 1).all()
    assert (s.energy_per_request == 1000.0).all() and (s.capacity == 1.0).all()
    assert s.models == ("BLOOM-176B",) and s.quality_loss.tolist() == [0.0]
    assert s.allowed.all()
    assert s.demand.max() == pytest.approx(1.0)  # the trace peak is 2708 W


def test_egl2022_last_row_and_price_truncation(egl_dir, egl_full):
    """Non-US price files have 481 rows; row 457 (line 458) is the last one kept."""
    with (egl_dir / "price" / "Germany_Price.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert len(rows) - 1 == 481
    assert rows[457][0] == "2022-10-11 00"
    assert egl_full.price[-1, SITES.index("Germany")] == pytest.approx(float(rows[457][1]) / 1000)


def test_egl2022_partial_mask_is_the_readme_mask(egl_dir):
    text = (egl_dir / "README.md").read_text()
    rows = re.findall(r"^(TX|VA|GA|NV|DE|BE|NL|DK|JP|SG)((?: [01]){10})\s*$", text, re.M)
    assert len(rows) == 10
    mask = np.array([[int(x) for x in r[1].split()] for r in rows], dtype=bool)
    s = load_egl2022(egl_dir, "partial")
    np.testing.assert_array_equal(s.allowed[:, :, 0], mask)
    assert s.name == "egl-2022-partial"


def test_egl2022_raw_signals(egl_dir):
    sig = read_egl2022_signals(egl_dir)
    assert set(sig) == {"workload", "price", "carbon", "water"}
    assert sig["price"].shape == (457, 10) and list(sig["price"].columns) == list(SITES)
    assert sig["price"].attrs["unit"] == "USD/MWh"
    _, row, _ = _first_row(egl_dir / "price" / "Texas_Price.csv")
    assert sig["price"]["Texas"].iloc[0] == float(row[1])  # raw USD/MWh, not converted
    assert len(read_egl2022_signals(egl_dir, horizon=None)["water"]) == 457  # shortest file
    assert len(read_egl2022_signals(egl_dir, horizon=24)["carbon"]) == 24
    with pytest.raises(DataFormatError, match="fewer than horizon=481"):
        read_egl2022_signals(egl_dir, horizon=481)
    with pytest.raises(ScenarioError, match="connectivity"):
        load_egl2022(egl_dir, "some")


@pytest.fixture
def egl_copy(egl_dir, tmp_path) -> Path:
    """A scratch copy of the shared folder (never committed) to plant defects in."""
    dst = tmp_path / "egl"
    shutil.copytree(egl_dir, dst)
    for f in dst.rglob("*"):
        f.chmod(0o755 if f.is_dir() else 0o644)
    dst.chmod(0o755)
    return dst


def test_egl2022_missing_file(egl_copy):
    (egl_copy / "water" / "Japan_water.csv").unlink()
    _raises_at(
        lambda: read_egl2022_signals(egl_copy),
        egl_copy / "water" / "Japan_water.csv",
        None,
        "not found",
    )


@pytest.mark.parametrize(
    "header, match",
    [
        ("Time (UTC),Price (EUR/MWh)", "unit mismatch.*EUR/MWh"),
        ("Time (UTC),Cost (USD/MWh)", "no column 'Price \\(USD/MWh\\)'"),
        ("Time,Price (USD/MWh)", "no column 'Time \\(UTC\\)'"),
        ("Time (UTC),Price (USD/MWh),Extra", "unexpected column"),
    ],
)
def test_egl2022_bad_header(egl_copy, header, match):
    f = egl_copy / "price" / "Nevada_Price.csv"
    _rewrite(f, f, lambda ls: [header] + [x + (",1" if "Extra" in header else "") for x in ls[1:]])
    _raises_at(lambda: read_egl2022_signals(egl_copy), f, 1, match)


def test_egl2022_water_header_quirk_needs_only_whitespace(egl_copy):
    """' WUE (L/kWh)' (leading space, as published) is accepted; another unit is not."""
    f = egl_copy / "water" / "Denmark_water.csv"
    _rewrite(f, f, lambda ls: ["Time (UTC),WUE (L/kWh)"] + ls[1:])
    assert read_egl2022_signals(egl_copy)["water"].shape == (457, 10)
    _rewrite(f, f, lambda ls: ["Time (UTC), WUE (gal/kWh)"] + ls[1:])
    _raises_at(lambda: read_egl2022_signals(egl_copy), f, 1, "unit mismatch")


def test_egl2022_duplicate_missing_and_bad_hours(egl_copy):
    f = egl_copy / "carbon" / "Georgia_carbon.csv"
    orig = f.read_text()
    # line 11 repeats line 10's hour
    _rewrite(f, f, lambda ls: ls[:10] + [ls[9]] + ls[10:])
    _raises_at(lambda: read_egl2022_signals(egl_copy), f, 11, "duplicated time 2022-09-22 08:00")
    f.write_text(orig)
    # drop line 6 (2022-09-22 04): the gap is reported on the next line (now line 6)
    _rewrite(f, f, lambda ls: ls[:5] + ls[6:])
    _raises_at(
        lambda: read_egl2022_signals(egl_copy),
        f,
        6,
        "1 missing slot.*2022-09-22 04:00 UTC.*between line 5",
    )
    f.write_text(orig)
    _rewrite(f, f, lambda ls: ls[:3] + ["2022-09-22 2x," + ls[3].split(",")[1]] + ls[4:])
    _raises_at(lambda: read_egl2022_signals(egl_copy), f, 4, "does not parse")
    f.write_text(orig)
    _rewrite(f, f, lambda ls: ls[:3] + [ls[3].split(",")[0] + ",abc"] + ls[4:])
    _raises_at(lambda: read_egl2022_signals(egl_copy), f, 4, "'abc' is not a number")


def test_egl2022_files_must_start_together(egl_copy):
    f = egl_copy / "price" / "Japan_Price.csv"
    _rewrite(f, f, lambda ls: [ls[0]] + ls[2:])
    _raises_at(lambda: read_egl2022_signals(egl_copy), f, 2, "first hour is 2022-09-22 01:00")


# =========================================================================== Azure traces
@pytest.fixture(scope="module")
def azure_dir(request) -> Path:
    d = request.getfixturevalue("shared_dir") / "data" / "azure-llm-2023"
    if not d.is_dir():
        pytest.fail(f"shared data folder {d} is missing; the Azure trace tests need it")
    return d


@pytest.mark.parametrize("name", ["code", "conv"])
def test_azure_counts_match_rows(azure_dir, name):
    path = azure_dir / f"AzureLLMInferenceTrace_{name}.csv"
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    trace = read_azure_trace(path)
    assert len(trace) == len(rows)
    first = datetime.strptime(rows[0][0][:26], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    assert trace["time"].iloc[0] == pd.Timestamp(first)
    for slot in ("1min", "1h"):
        a = azure_arrivals(trace, slot)
        assert int(a["requests"].sum()) == len(rows)
        assert int(a["generated_tokens"].sum()) == sum(int(r[2]) for r in rows)
        assert a.index.freq == pd.Timedelta(slot)
    a = azure_arrivals(path, "1min")
    assert a.attrs["mean_context_tokens"] == pytest.approx(np.mean([int(r[1]) for r in rows]))
    assert a.attrs["mean_generated_tokens"] == pytest.approx(np.mean([int(r[2]) for r in rows]))
    minute = pd.Timestamp(first).floor("1min")
    n_first = sum(1 for r in rows if r[0].startswith(f"{minute:%Y-%m-%d %H:%M}"))
    assert a["requests"].iloc[0] == n_first


def test_azure_window_drops_outside(azure_dir):
    path = azure_dir / "AzureLLMInferenceTrace_code.csv"
    a = azure_arrivals(path, "10min", start="2023-11-16 18:30", end="2023-11-16 18:50")
    assert len(a) == 3
    assert a["requests"].sum() + a.attrs["dropped"] == len(read_azure_trace(path))


def test_azure_arrivals_small_trace(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:00:10.5000000,100,10\n"
        "2023-11-16 18:00:50.0000000,300,30\n"
        "2023-11-16 18:02:00.0000000,50,5\n"
    )
    a = azure_arrivals(p, "1min")
    assert a["requests"].tolist() == [2, 0, 1]
    assert a["mean_context_tokens"].iloc[0] == 200.0 and np.isnan(a["mean_context_tokens"].iloc[1])
    assert a["generated_tokens"].tolist() == [40, 0, 5]


@pytest.mark.parametrize(
    "bad_line, match, line",
    [
        ("TIMESTAMP,ContextTokens", "no column 'GeneratedTokens'", 1),
        ("2023-11-16 18:00:x1.0,1,1", "does not parse", 3),
        ("2023-11-16 18:00:20.0,1.5,1", "not a whole number", 3),
        ("2023-11-16 17:59:00.0,1,1", "earlier than the row before", 3),
    ],
)
def test_azure_malformed(tmp_path, bad_line, match, line):
    p = tmp_path / "t.csv"
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens", "2023-11-16 18:00:10.0,1,1", bad_line]
    if line == 1:
        rows = [bad_line, "2023-11-16 18:00:10.0,1"]
    p.write_text("\n".join(rows) + "\n")
    _raises_at(lambda: read_azure_trace(p), p, line, match)


def test_spread_over_regions_hand_example():
    """Profile 0..23 per hour. Region 'east' at UTC+2 sees at UTC hour h the local hour h+2:
    demand = 0.25 * (h + 2) mod 24; 'west' at UTC-1, weight 0.75: 0.75 * (h - 1) mod 24."""
    idx = pd.date_range("2022-01-01", periods=24, freq="h", tz="UTC")
    prof = pd.Series(np.arange(24.0), index=idx)
    d = spread_over_regions(
        prof,
        ["east", "west"],
        utc_offsets={"east": 2, "west": -1},
        weights={"east": 0.25, "west": 0.75},
    )
    h = np.arange(24)
    np.testing.assert_allclose(d["east"], 0.25 * ((h + 2) % 24))
    np.testing.assert_allclose(d["west"], 0.75 * ((h - 1) % 24))
    even = spread_over_regions(prof, ["a", "b", "c", "d"])
    np.testing.assert_allclose(even.sum(axis=1), prof)  # default weights 1/J, no shift
    assert even.sum().sum() == pytest.approx(prof.sum())
    with pytest.raises(ScenarioError, match="not a multiple"):
        spread_over_regions(prof, ["a"], utc_offsets=[5.5])
    with pytest.raises(ScenarioError, match="weights >= 0"):
        spread_over_regions(prof, ["a"], weights=[-1.0])
    with pytest.raises(ScenarioError, match="one per region"):
        spread_over_regions(prof, ["a", "b"], utc_offsets=[1.0])


# =========================================================================== EIA-930
def test_eia930_fixture_hand_values():
    """Adjusted columns (default). ERCO, hour ending 01:00 UTC (slot 00:00):
    coal 10,000, gas 20,000, nuclear 5,000, hydro 100, wind 14,900 -> total 50,000 MW:
    ci = (10000*0.968 + 20000*0.44 + 5000*0.015 + 100*0.014 + 14900*0.023) / 50000
       = 18899.1 / 50000 = 0.377982 kg/kWh;
    ewif = (10000*450 + 20000*300 + 5000*600) / 50000 = 270 gal/MWh.
    CISO same hour: gas 8,000, nuclear 2,000, hydro -500 (pumping, clipped), solar 10,000,
    wind 2,000, other 1,000 -> total 23,000:
    ci = (3520 + 30 + 200 + 46 + 450) / 23000 = 4246 / 23000;
    ewif = (8000*300 + 2000*600 + 1000*475) / 23000 = 4,075,000 / 23000 gal/MWh.
    """
    g = load_eia930(EIA)
    assert list(g.carbon_intensity.columns) == ["ERCO", "CISO"]
    assert g.carbon_intensity.index[0] == pd.Timestamp("2022-09-22 00:00", tz="UTC")
    assert len(g.carbon_intensity) == 3
    assert g.carbon_intensity.loc[g.carbon_intensity.index[0], "ERCO"] == pytest.approx(0.377982)
    assert g.ewif["ERCO"].iloc[0] == pytest.approx(270 * GAL)
    assert g.carbon_intensity["CISO"].iloc[0] == pytest.approx(4246 / 23000)
    assert g.ewif["CISO"].iloc[0] == pytest.approx(4_075_000 / 23000 * GAL)


def test_eia930_reported_columns_and_options():
    """Reported coal of ERCO's first hour is 10,500 (adjusted 10,000): total 50,500."""
    g = load_eia930(EIA, adjusted=False, balancing_authorities=["ERCO"])
    assert list(g.carbon_intensity.columns) == ["ERCO"]
    assert g.carbon_intensity["ERCO"].iloc[0] == pytest.approx((18899.1 + 500 * 0.968) / 50500)
    # hydro convention: CISO slot 2 has 1,200 MW hydro of 22,200 MW total
    base = load_eia930(EIA, balancing_authorities=["CISO"])
    wet = load_eia930(EIA, balancing_authorities=["CISO"], hydro_water_l_per_kwh=5.0)
    assert wet.ewif["CISO"].iloc[2] - base.ewif["CISO"].iloc[2] == pytest.approx(5.0 * 1200 / 22200)
    gen = read_eia930_generation(EIA)["CISO"]
    assert gen["hydro"].iloc[0] == -500.0  # raw, clipped only when weighting
    assert gen["solar"].iloc[0] == 10000.0  # "10,000" with a thousands separator


def test_eia930_negative_rule():
    _raises_at(lambda: load_eia930(EIA, negative="raise"), EIA, 5, "negative generation")


def test_eia930_two_files_concatenate(tmp_path):
    a = _rewrite(EIA, tmp_path / "EIA930_BALANCE_a.csv", lambda ls: ls[:3])
    b = _rewrite(EIA, tmp_path / "EIA930_BALANCE_b.csv", lambda ls: [ls[0]] + ls[3:])
    both = load_eia930([a, b])
    one = load_eia930(EIA)
    pd.testing.assert_frame_equal(both.carbon_intensity, one.carbon_intensity)


def _join(cells: list[str]) -> str:
    return ",".join(f'"{c}"' if "," in c else c for c in cells)


def _edit_cell(line: str, col: int, value: str) -> str:
    cells = next(csv.reader([line]))
    cells[col] = value
    return _join(cells)


def _blank_fuels(line: str) -> str:
    """Empty every 'Net Generation (MW) from ...' cell (columns 16-33)."""
    return _join([c if k < 16 or k > 33 else "" for k, c in enumerate(next(csv.reader([line])))])


@pytest.mark.parametrize(
    "edit, line, match",
    [
        (
            lambda ls: [ls[0].replace("UTC Time at End of Hour", "UTC Time")] + ls[1:],
            1,
            "no column 'UTC Time at End of Hour'",
        ),
        (
            lambda ls: ls[:2] + [_edit_cell(ls[2], 4, "09/22/2022 2:00:00 XM")] + ls[3:],
            3,
            "does not parse",
        ),
        (lambda ls: ls[:3] + [ls[2]] + ls[3:], 4, "duplicated time 2022-09-22 01:00.*'ERCO'"),
        (lambda ls: ls[:2] + ls[3:], 3, "missing slot.*2022-09-22 01:00.*'ERCO'"),
        (lambda ls: ls[:2] + [_edit_cell(ls[2], 26, "2l,000")] + ls[3:], 3, "'2l,000' is not"),
        (lambda ls: ls[:6] + [_blank_fuels(ls[6])] + ls[7:], 7, "no generation value"),
        (
            lambda ls: [ls[0].replace("from Wind (Adjusted)", "from Tidal (Adjusted)")] + ls[1:],
            1,
            "unknown energy source column",
        ),
        (
            lambda ls: (
                [ls[0].replace("(MW) from Solar (Adjusted)", "(GW) from Solar (Adjusted)")] + ls[1:]
            ),
            1,
            "unit mismatch.*'GW'",
        ),
    ],
)
def test_eia930_malformed(tmp_path, edit, line, match):
    p = _rewrite(EIA, tmp_path / "EIA930_BALANCE_bad.csv", edit)
    _raises_at(lambda: load_eia930(p), p, line, match)


def test_eia930_unknown_authority():
    with pytest.raises(DataFormatError, match=r"\['PJM'\] not found"):
        load_eia930(EIA, balancing_authorities=["PJM"])


# =========================================================================== IEM ASOS
def _psychro_wb(tmpf, dwpf=None, relh=None, alti=29.92):
    """Independent reference: psychrolib SI, station pressure = altimeter (elevation 0)."""
    psychrolib.SetUnitSystem(psychrolib.SI)
    t = (tmpf - 32) * 5 / 9
    p = alti * 3386.389
    if dwpf is not None:
        return psychrolib.GetTWetBulbFromTDewPoint(t, (dwpf - 32) * 5 / 9, p)
    return psychrolib.GetTWetBulbFromRelHum(t, relh / 100.0, p)


def test_asos_fixture_hourly_rule():
    w = load_asos(ASOS)
    assert list(w.wet_bulb.columns) == ["DFW", "IAD"]
    assert w.wet_bulb.index[0] == pd.Timestamp("2022-09-22 00:00", tz="UTC")
    assert len(w.wet_bulb) == 7
    dfw = w.wet_bulb["DFW"]
    assert dfw.iloc[0] == pytest.approx(_psychro_wb(91, 60, alti=29.88), abs=2e-3)
    # hour 02: mean of the 02:20 special and the 02:53 routine report
    h2 = (_psychro_wb(85, 61, alti=29.90) + _psychro_wb(84, 62, alti=29.90)) / 2
    assert dfw.iloc[2] == pytest.approx(h2, abs=2e-3)
    # hour 05: dew point 'M', relative humidity 55 % used instead
    h5 = _psychro_wb(80, relh=55.0, alti=29.92)
    assert dfw.iloc[5] == pytest.approx(h5, abs=2e-3)
    # hour 04: no observation, linear interpolation between hours 03 and 05
    h3 = _psychro_wb(82, 62, alti=29.91)
    assert dfw.iloc[4] == pytest.approx((h3 + h5) / 2, abs=2e-3)
    assert w.wet_bulb.attrs["filled_hours"] == {"DFW": 1, "IAD": 0}
    # hour 06: the 06:53 row has tmpf 'M' and is ignored; 06:55 is used
    assert dfw.iloc[6] == pytest.approx(_psychro_wb(79, 63, alti=29.92), abs=2e-3)
    # WUE from Twb in F with S = 6
    twb_f = w.wet_bulb.to_numpy() * 1.8 + 32
    want = np.maximum(1.2 * (6e-5 * twb_f**3 - 0.01 * twb_f**2 + 0.61 * twb_f - 10.4), 0.05)
    np.testing.assert_allclose(w.wue.to_numpy(), want, rtol=1e-12)


def test_asos_read_skips_debug_lines_and_keeps_line_numbers():
    obs = read_asos(ASOS)
    assert obs["line"].iloc[0] == 6  # 4 '#DEBUG' lines + header
    assert len(obs) == 14  # 15 rows, one without temperature
    assert obs["time"].iloc[0] == pd.Timestamp("2022-09-22 00:53", tz="UTC")


def test_asos_elevation_lowers_pressure():
    low = read_asos(ASOS)
    high = read_asos(ASOS, elevation_m={"DFW": 171.0})
    ratio = (high["pressure_pa"] / low["pressure_pa"]).to_numpy()
    dfw = (low["station"] == "DFW").to_numpy()
    psychrolib.SetUnitSystem(psychrolib.SI)
    np.testing.assert_allclose(ratio[dfw], psychrolib.GetStandardAtmPressure(171.0) / 101325.0)
    np.testing.assert_allclose(ratio[~dfw], 1.0)


@pytest.mark.parametrize(
    "edit, line, match",
    [
        (
            lambda ls: (
                ls[:4]
                + ["station,valid,tmpf,alti"]
                + [",".join(x.split(",")[:3]) + ",29.9" for x in ls[5:]]
            ),
            5,
            "no humidity column",
        ),
        (
            lambda ls: ls[:6] + [ls[6].replace("2022-09-22 01:53", "2022-09-22 1h53")] + ls[7:],
            7,
            "does not parse",
        ),
        (
            lambda ls: ls[:7] + [ls[7].replace("02:20", "01:53")] + ls[8:],
            8,
            "two observations at 2022-09-22 01:53.*also line 7",
        ),
        (
            lambda ls: ls[:8] + [ls[8].replace("29.90", "1011.6")] + ls[9:],
            9,
            "alti = 1011.6.*inches of mercury",
        ),
        (lambda ls: ls[:10] + [ls[10].replace("55.00", "155.00")] + ls[11:], 11, "relh = 155"),
        (
            lambda ls: ls[:5] + [ls[5].replace("91.00,60.00", "61.00,70.00")] + ls[6:],
            6,
            "dew point 70 F is above",
        ),
    ],
)
def test_asos_malformed(tmp_path, edit, line, match):
    p = _rewrite(ASOS, tmp_path / "asos.csv", edit)
    _raises_at(lambda: load_asos(p), p, line, match)


def test_asos_long_gap_is_an_error_unless_allowed():
    """DFW has no observation in hour 04 (between lines 10 and 11)."""
    err = _raises_at(
        lambda: load_asos(ASOS, max_gap_hours=0),
        ASOS,
        11,
        "'DFW' has no observation for 1 hours from 2022-09-22 04:00",
    )
    assert "between line 10 and line 11" in str(err)
    _raises_at(
        lambda: load_asos(ASOS, stations=["IAD"], start="2022-09-21 20:00"),
        ASOS,
        14,
        "4 hours from 2022-09-21 20:00 to 2022-09-21 23:00 UTC \\(before line 14\\)",
    )
    edge = load_asos(ASOS, stations=["IAD"], start="2022-09-21 23:00", end="2022-09-22 07:00")
    assert edge.wet_bulb["IAD"].iloc[0] == edge.wet_bulb["IAD"].iloc[1]  # nearest value
    assert edge.wet_bulb["IAD"].iloc[-1] == edge.wet_bulb["IAD"].iloc[-2]
    w = load_asos(ASOS, max_gap_hours=0, allow_long_gaps=True)
    assert np.isfinite(w.wet_bulb.to_numpy()).all()
    with pytest.raises(DataFormatError, match="'XYZ'"):
        load_asos(ASOS, stations=["XYZ"])


# =========================================================================== Electricity Maps
def test_electricitymaps_both_layouts():
    df = load_electricitymaps([EM_DE, EM_ERCO])
    assert list(df.columns) == ["DE", "US-TEX-ERCO"]
    assert df.index[0] == pd.Timestamp("2022-09-22 00:00", tz="UTC") and len(df) == 4
    np.testing.assert_allclose(df["DE"], [0.4125, 0.40525, 0.398, 0.4015])
    lca = load_electricitymaps([EM_DE, EM_ERCO], kind="lifecycle", zones=["US-TEX-ERCO", "DE"])
    assert list(lca.columns) == ["US-TEX-ERCO", "DE"]
    np.testing.assert_allclose(lca["US-TEX-ERCO"], [0.4207, 0.4255, 0.4310, 0.4292])
    np.testing.assert_allclose(lca["DE"], [0.4701, 0.463, 0.45575, 0.4595])


def test_electricitymaps_estimated_rows():
    _raises_at(
        lambda: load_electricitymaps(EM_ERCO, allow_estimated=False), EM_ERCO, 4, "estimated"
    )
    assert load_electricitymaps(EM_DE, allow_estimated=False).shape == (4, 1)


@pytest.mark.parametrize(
    "edit, line, match",
    [
        (
            lambda ls: [ls[0].replace("gCO₂eq/kWh (direct)", "kgCO₂eq/kWh (direct)")] + ls[1:],
            1,
            "unit mismatch",
        ),
        (lambda ls: [ls[0].replace("Zone Id", "Zone")] + ls[1:], 1, "no column 'Zone Id'"),
        (
            lambda ls: [ls[0].replace("(direct)", "(operational)")] + ls[1:],
            1,
            "no 'Carbon Intensity",
        ),
        (
            lambda ls: ls[:2] + [ls[2].replace("2022-09-22 01:00:00", "22/09/2022 01h")] + ls[3:],
            3,
            "does not parse",
        ),
        (lambda ls: ls[:3] + [ls[2]] + ls[3:], 4, "duplicated time 2022-09-22 01:00.*'DE'"),
        (lambda ls: ls[:2] + ls[3:], 3, "missing slot.*2022-09-22 01:00"),
        (lambda ls: ls[:2] + [ls[2].replace("405.25", "")] + ls[3:], 3, "missing"),
    ],
)
def test_electricitymaps_malformed(tmp_path, edit, line, match):
    p = _rewrite(EM_DE, tmp_path / "em.csv", edit)
    _raises_at(lambda: load_electricitymaps(p), p, line, match)


# =========================================================================== shared CSV reading
def test_ragged_row_header_only_and_infinite_values(tmp_path):
    p = _rewrite(EM_DE, tmp_path / "em.csv", lambda ls: ls[:3] + [ls[3] + ",extra"] + ls[4:])
    _raises_at(lambda: load_electricitymaps(p), p, 4, "row has 12 fields but the header has 11")
    p = _rewrite(EM_DE, tmp_path / "em2.csv", lambda ls: ls[:1])
    _raises_at(lambda: load_electricitymaps(p), p, 1, "no data rows")
    p = _rewrite(
        EM_DE, tmp_path / "em3.csv", lambda ls: ls[:2] + [ls[2].replace("405.25", "inf")] + ls[3:]
    )
    _raises_at(lambda: load_electricitymaps(p), p, 3, "not finite")
    p = _rewrite(
        EM_DE, tmp_path / "em4.csv", lambda ls: ["# exported by hand", "", ls[0], "", *ls[1:]]
    )
    df = load_electricitymaps(p)
    assert len(df) == 4
    p5 = _rewrite(EM_DE, tmp_path / "em5.csv", lambda ls: ["# note", "", ls[0], "", ls[1], ls[1]])
    _raises_at(lambda: load_electricitymaps(p5), p5, 6, "duplicated.*also on line 5")
