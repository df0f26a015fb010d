"""Tests of the built-in scenario (eqglb.builtin) and of its derived data tables.

Tests that read the shared egl-2022 data or docs fail (never skip) when ``../shared`` is
missing beside the checkout.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eqglb import Scenario, ScenarioError
from eqglb._feasibility import first_unservable
from eqglb.builtin import (
    HEALTH_GRID,
    PARTIAL_MASK,
    SITES,
    builtin_scenario,
    great_circle_km,
    load_health_profiles,
    load_models,
    load_profiles,
)
from eqglb.latency import load_rtt_table, rtt_model

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared"
EGL = SHARED / "data" / "egl-2022"
NAMES = [
    "Texas",
    "Virginia",
    "Georgia",
    "Nevada",
    "Germany",
    "Belgium",
    "Netherlands",
    "Denmark",
    "Japan",
    "Singapore",
]
FILE_STEM = {n: ("Belguim" if n == "Belgium" else n) for n in NAMES}


def _egl_dir() -> Path:
    assert EGL.is_dir(), (
        f"shared egl-2022 data not found at {EGL.resolve()}; these tests "
        "need ../shared/data/egl-2022 beside the checkout"
    )
    return EGL


def _load_script(name: str = "derive_builtin_profiles"):
    path = ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sc() -> Scenario:
    return builtin_scenario()


# ---------------------------------------------------------------- structure
def test_sites_regions_models_and_horizon(sc):
    assert isinstance(sc, Scenario)
    assert list(sc.datacenters) == NAMES
    assert list(sc.regions) == NAMES
    assert sc.models == ("Qwen3-8B", "Qwen3-14B", "Qwen3-32B", "Qwen3-235B-A22B")
    T, N, J, K = sc.shape
    assert (N, J, K) == (10, 10, 4)
    assert T == 7 * 24  # eqglb.defaults.DEFAULT_DAYS, as eqglb run
    assert sc.slot_hours == 1.0
    assert sc.time[0] == pd.Timestamp("2022-09-22 00:00", tz="UTC")
    assert sc.home == tuple(NAMES)
    assert "2307.05494" in sc.description and "egl-2022" in sc.description


def test_longer_horizon_and_other_start():
    sc = builtin_scenario(days=15, start="2023-03-20 06:00")
    assert sc.n_time == 15 * 24
    assert sc.time[0] == pd.Timestamp("2023-03-20 06:00", tz="UTC")


def test_routing_is_the_study_mask_for_every_model(sc):
    readme = (_egl_dir() / "README.md").read_text()
    rows = re.findall(r"^(TX|VA|GA|NV|DE|BE|NL|DK|JP|SG)((?: [01]){10})\s*$", readme, re.M)
    assert [r[0] for r in rows] == ["TX", "VA", "GA", "NV", "DE", "BE", "NL", "DK", "JP", "SG"]
    mask = np.array([[int(v) for v in r[1].split()] for r in rows], dtype=bool)
    np.testing.assert_array_equal(PARTIAL_MASK, mask)
    for k in range(4):
        np.testing.assert_array_equal(sc.allowed[:, :, k], mask)


def test_latency_is_measured_or_modelled_rtt(sc):
    # quarter of a great circle: pi/2 * 6371.0088 km
    assert great_circle_km(0.0, 0.0, 0.0, 90.0) == pytest.approx(np.pi / 2 * 6371.0088)
    assert great_circle_km(0.0, 0.0, 90.0, 0.0) == pytest.approx(np.pi / 2 * 6371.0088)
    lat = sc.latency
    i = NAMES.index
    table, model = load_rtt_table(), rtt_model()
    azure = {
        "Germany": "Germany West Central",
        "Netherlands": "West Europe",
        "Japan": "Japan East",
        "Singapore": "Southeast Asia",
    }
    for a in NAMES:
        for b in NAMES:
            if a != b and a in azure and b in azure:  # both at Azure regions: measured
                ra, rb = table.regions.index(azure[a]), table.regions.index(azure[b])
                want = np.nanmean([table.directed[ra, rb], table.directed[rb, ra]])
            else:  # the fitted affine model
                sa, sb = SITES[i(a)], SITES[i(b)]
                want = model.a_ms + model.b_ms_per_km * great_circle_km(
                    sa.lat, sa.lon, sb.lat, sb.lon
                )
            assert lat[i(a), i(b)] == pytest.approx(want, rel=1e-12), (a, b)
    assert lat[i("Germany"), i("Netherlands")] == 12.5  # published 12 and 13 ms
    np.testing.assert_allclose(np.diag(lat), model.a_ms)
    np.testing.assert_allclose(lat, lat.T)
    assert (lat[~np.eye(10, dtype=bool)] > model.a_ms).all()
    # Europe is closer to Europe than to the US; Japan is closer to Singapore than to Texas
    assert lat[i("Germany"), i("Netherlands")] < lat[i("Germany"), i("Virginia")]
    assert lat[i("Japan"), i("Singapore")] < lat[i("Japan"), i("Texas")]
    # the home data centre is the nearest allowed one for every region
    masked = np.where(sc.allowed[:, :, 0], lat, np.inf)
    np.testing.assert_array_equal(masked.argmin(axis=0), np.arange(10))


# ---------------------------------------------------------------- feasibility and capacity
def test_feasible_every_slot(sc):
    assert first_unservable(sc) is None
    assert np.isfinite(sc.demand).all() and (sc.demand > 0).all()


def test_largest_model_cannot_serve_everyone_at_peak(sc):
    total = sc.demand.sum(axis=1)
    t = int(total.argmax())
    k = int(np.argmax(sc.capacity_per_request))
    assert sc.models[k] == "Qwen3-235B-A22B"
    need = total[t] * sc.capacity_per_request[k]  # GPU-s to serve all on the 235B
    cap = sc.capacity[t].sum()
    assert cap < need
    assert 0.3 <= cap / need <= 0.5  # roughly 30-50 % of the peak requests on the 235B
    # the cheapest model could serve everyone several times over
    assert total[t] * sc.capacity_per_request.min() < 0.2 * cap


def test_capacity_differs_and_asia_is_resource_poor(sc):
    gpus = sc.capacity[0] / 3600.0
    assert gpus.max() >= 3 * gpus.min()
    mask = sc.allowed[:, :, 0]
    demand = sc.demand.mean(axis=0)
    i = NAMES.index

    def per_request(group):
        """Capacity reachable by a group of regions per request of the group [GPU-s]."""
        cols = [i(n) for n in group]
        reachable = mask[:, cols].any(axis=1)
        return sc.capacity[0][reachable].sum() / demand[cols].sum()

    asia = per_request(["Japan", "Singapore"])
    assert asia < per_request(["Germany", "Belgium", "Netherlands", "Denmark"])
    assert asia < per_request(["Texas", "Virginia", "Georgia", "Nevada"])
    # Japan, the largest region, is the poorest one on its own too
    alone = [per_request([n]) for n in NAMES]
    assert int(np.argmin(alone)) == i("Japan")


def test_demand_size_and_population_shares(sc):
    mean = sc.demand.mean(axis=0)
    assert (mean >= 1_000).all() and (mean <= 100_000).all()  # requests/hour per region
    pop = np.array([s.population for s in SITES])
    np.testing.assert_allclose(mean / mean.sum(), pop / pop.sum(), rtol=0.05)
    np.testing.assert_array_equal(sc.demand, np.round(sc.demand))


def test_demand_follows_the_workload_profile_in_local_time():
    sc = builtin_scenario(days=56, seed=3)
    w = load_profiles().query("signal == 'workload'").sort_values("hour_utc")["mean"].to_numpy()
    for j, site in enumerate(SITES):
        local = np.asarray(sc.time.tz_convert(site.timezone).hour)
        by_local = pd.Series(sc.demand[:, j]).groupby(local).mean().to_numpy()
        assert np.corrcoef(by_local, w)[0, 1] > 0.6, site.name


# ---------------------------------------------------------------- models
def test_quality_loss_normalised_and_cited(sc):
    s = sc.quality_loss
    assert ((s >= 0) & (s <= 1)).all()
    assert s.min() == 0.0 and sc.models[int(s.argmin())] == "Qwen3-235B-A22B"
    assert (np.diff(s) < 0).all()  # larger model, smaller loss
    models = load_models()
    # Arena-Hard, non-thinking mode, Qwen3 Technical Report (arXiv:2505.09388v1):
    # Table 18 Qwen3-8B 79.6, Table 16 Qwen3-14B 86.3, Table 14 Qwen3-32B 92.8,
    # Table 12 Qwen3-235B-A22B 96.1.
    np.testing.assert_allclose(models["quality_score"], [79.6, 86.3, 92.8, 96.1])
    assert models["quality_source"].str.contains("2505.09388").all()
    for table, model in zip((18, 16, 14, 12), models["model"], strict=True):
        src = models.set_index("model").loc[model, "quality_source"]
        assert f"Table {table}" in src
    np.testing.assert_allclose(s, (96.1 - models["quality_score"]) / 96.1)


def test_energy_and_capacity_per_request_follow_figures_md(sc):
    figures = SHARED / "docs" / "FIGURES.md"
    assert figures.is_file(), f"{figures.resolve()} missing; the tests need ../shared/docs"
    rows = re.findall(
        r"^\| (Qwen3-[\w-]+) \| (\d+) \| ([\d.]+) \| ([\d.]+) \| (\d+) \|",
        figures.read_text(),
        re.M,
    )
    assert len(rows) == 4
    for k, (name, gpus, joules, tok_s, out_len) in enumerate(rows):
        assert name.startswith(sc.models[k])
        assert sc.energy_per_request[0, k] == pytest.approx(float(joules) / 3.6e6)
        per_s = float(tok_s) / float(out_len)  # requests/s of one deployment
        assert sc.capacity_per_request[k] == pytest.approx(int(gpus) / per_s)
    np.testing.assert_array_equal(sc.energy_per_request, np.tile(sc.energy_per_request[0], (10, 1)))


# ---------------------------------------------------------------- signals
def test_signals_within_derived_range(sc):
    prof = load_profiles()
    for field, signal in (
        ("price", "price"),
        ("carbon_intensity", "carbon_intensity"),
        ("wue", "water"),
    ):
        arr = getattr(sc, field)
        for i, name in enumerate(NAMES):
            rows = prof[(prof["signal"] == signal) & (prof["site"] == name)]
            assert len(rows) == 24
            lo, hi = rows["min"].iloc[0], rows["max"].iloc[0]
            assert arr[:, i].min() >= lo and arr[:, i].max() <= hi, (field, name)
            assert arr[:, i].std() > 0, (field, name)  # synthesised, not constant
    np.testing.assert_array_equal(sc.ewif, 0.0)
    np.testing.assert_allclose(sc.pue, 1.1)


def test_synthetic_signals_track_the_site_means():
    """Over 8 weeks each synthetic series stays near its site's observed mean.

    The AR(1) residual has unit variance; its 8-week mean has a standard deviation below
    0.6 even for the most persistent series (phi ~ 0.996), so 3 residual standard
    deviations is a wide margin. A site mix-up (e.g. Denmark's 0.14 kg/kWh carbon against
    Singapore's 0.53) would exceed it.
    """
    sc = builtin_scenario(days=56, seed=11)
    prof = load_profiles()
    for field, signal in (
        ("price", "price"),
        ("carbon_intensity", "carbon_intensity"),
        ("wue", "water"),
    ):
        for i, name in enumerate(NAMES):
            rows = prof[(prof["signal"] == signal) & (prof["site"] == name)]
            target = rows["mean"].mean()
            tol = 3 * rows["resid_std"].mean() + 1e-9
            assert abs(getattr(sc, field)[:, i].mean() - target) <= tol, (field, name)


def test_deterministic_for_a_seed():
    a, b = builtin_scenario(days=14, seed=7), builtin_scenario(days=14, seed=7)
    c = builtin_scenario(days=14, seed=8)
    for f in ("demand", "price", "carbon_intensity", "wue"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
        assert not np.array_equal(getattr(a, f), getattr(c, f)), f


@pytest.mark.parametrize(
    "kwargs",
    [
        {"days": 0},
        {"days": 2.5},
        {"days": -1},
        {"seed": -3},
        {"seed": "x"},
        {"start": "not a date"},
        {"start": "2022-09-22 00:30"},
        {"health": "yes"},
    ],
)
def test_bad_arguments_raise_scenario_error(kwargs):
    with pytest.raises(ScenarioError, match="builtin scenario"):
        builtin_scenario(**kwargs)


# ---------------------------------------------------------------- derived table vs shared data
def test_profile_table_regenerates_identically_from_shared_data():
    script = _load_script()
    text = script.render_csv(script.derive_profiles(_egl_dir()))
    shipped = resources.files("eqglb").joinpath("data/builtin_profiles.csv").read_text()
    assert text == shipped


def test_profile_hour_means_match_shared_data():
    egl = _egl_dir()
    prof = load_profiles()
    spec = {
        "price": ("price", "_Price.csv", 1e-3),
        "carbon_intensity": ("carbon", "_carbon.csv", 1.0),
        "water": ("water", "_water.csv", 1.0),
    }
    for signal, (folder, suffix, factor) in spec.items():
        for name in NAMES:
            raw = pd.read_csv(egl / folder / f"{FILE_STEM[name]}{suffix}").iloc[:457]
            hours = pd.to_datetime(raw.iloc[:, 0], format="%Y-%m-%d %H").dt.hour
            expected = (raw.iloc[:, 1] * factor).groupby(hours).mean().sort_index().to_numpy()
            got = (
                prof[(prof["signal"] == signal) & (prof["site"] == name)]
                .sort_values("hour_utc")["mean"]
                .to_numpy()
            )
            np.testing.assert_allclose(got, expected, rtol=1e-5, err_msg=f"{signal} {name}")
    raw = pd.read_csv(egl / "AI_workload.csv").iloc[:457]
    hours = pd.to_datetime(raw.iloc[:, 0], format="%Y-%m-%d %H").dt.hour
    by_hour = raw.iloc[:, 1].groupby(hours).mean().sort_index().to_numpy()
    got = prof[prof["signal"] == "workload"].sort_values("hour_utc")["mean"].to_numpy()
    np.testing.assert_allclose(got, by_hour / by_hour.mean(), rtol=1e-5)
    assert got.mean() == pytest.approx(1.0, abs=1e-5)


def test_profile_table_is_small_and_not_a_copy():
    prof = load_profiles()
    assert len(prof) == 3 * 10 * 24 + 24
    # no hourly series is shipped: far fewer rows than the 457-hour source files
    assert len(prof[prof["site"] == "Texas"]) == 3 * 24


# ---------------------------------------------------------------- public health
US = ["Texas", "Virginia", "Georgia", "Nevada"]


def _health_dir(shared_dir: Path) -> Path:
    folder = shared_dir / "data" / "health-2023"
    assert folder.is_dir(), f"shared health-2023 data not found at {folder.resolve()}"
    return folder


def _checksum(sc: Scenario) -> str:
    h = hashlib.sha256()
    for f in ("price", "carbon_intensity", "wue", "demand"):
        h.update(f.encode())
        h.update(np.ascontiguousarray(np.asarray(getattr(sc, f), dtype="<f8")).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize(
    ("kwargs", "digest"),
    [
        ({}, "4c343331f038f51f0645d92b44a6503c4ee4eccc0fa1152a99124f32bc78c409"),
        (
            {"days": 14, "seed": 7},
            "22e590d0c766a24649d62d4d617ae3391962b34acca997c28b9132b4344ed0b4",
        ),
        (
            {"days": 3, "seed": 123, "start": "2023-03-20 06:00"},
            "ea83aedc664aac70e1f5ea45d0389a7712f512687b022cb158f3f716e4f8f647",
        ),
    ],
)
def test_health_leaves_the_other_signals_unchanged(kwargs, digest):
    """Adding the health stream (a fifth SeedSequence child) changes no other signal.

    Regression guard: the digests were computed on 2026-12-02 from the code before the
    health signal existed (commit 97b3973, spawn(4)), on x86-64 Linux with numpy's
    default PCG64 generator; the same arrays with health disabled are checked too.
    """
    with_health = builtin_scenario(**kwargs)
    without = builtin_scenario(**kwargs, health=False)
    assert _checksum(with_health) == digest
    assert _checksum(without) == digest
    for f in ("price", "carbon_intensity", "wue", "demand"):
        np.testing.assert_array_equal(getattr(with_health, f), getattr(without, f))
    np.testing.assert_array_equal(without.health_cost, 0.0)  # absent: zeros
    assert "health_cost" not in without.attrs["units"]


def test_health_cost_only_at_us_sites_within_the_derived_range(sc):
    prof = load_health_profiles()
    hc = np.asarray(sc.health_cost)
    assert hc.shape == (sc.n_time, 10)
    for i, name in enumerate(NAMES):
        grid = HEALTH_GRID[name]
        if grid is None:
            np.testing.assert_array_equal(hc[:, i], 0.0, err_msg=name)
            continue
        rows = prof[(prof["signal"] == "health_cost") & (prof["grid"] == grid)]
        assert len(rows) == 24
        lo, hi = rows["min"].iloc[0], rows["max"].iloc[0]
        assert lo > 0 and hc[:, i].min() >= lo and hc[:, i].max() <= hi, name
        assert hc[:, i].std() > 0, name  # synthesised, not constant
    assert [n for n in NAMES if HEALTH_GRID[n] is not None] == US
    assert [HEALTH_GRID[n] for n in US] == ["ERCO", "PJM", "TVA", "CISO"]


def test_health_cost_tracks_the_grid_means_and_is_seeded():
    """Over 8 weeks each US site's health cost stays near its grid's annual mean.

    As for the other signals: 3 residual standard deviations bound the 8-week mean of a
    unit-variance AR(1) residual even with phi ~ 0.98. Grid means differ by more than
    that between PJM (0.039 USD/kWh) and CISO or ERCO (0.026), so a mix-up fails.
    """
    sc = builtin_scenario(days=56, seed=11)
    prof = load_health_profiles()
    for i, name in enumerate(NAMES[:4]):
        rows = prof[prof["grid"] == HEALTH_GRID[name]]
        tol = 3 * rows["resid_std"].mean()
        assert abs(sc.health_cost[:, i].mean() - rows["mean"].mean()) <= tol, name
    a, b = builtin_scenario(days=14, seed=7), builtin_scenario(days=14, seed=7)
    np.testing.assert_array_equal(a.health_cost, b.health_cost)
    assert not np.array_equal(a.health_cost, builtin_scenario(days=14, seed=8).health_cost)


def test_health_units_source_and_not_modelled_note(sc):
    assert sc.attrs["units"]["health_cost"].startswith("USD/kWh")
    assert "assumed USD/MWh" in sc.attrs["units"]["health_cost"]
    assert "health-2023" in sc.attrs["health_source"]
    assert "builtin_health.csv" in sc.attrs["health_source"]
    assert {n: g["grid"] for n, g in sc.attrs["health_grids"].items()} == {
        "Texas": "ERCO",
        "Virginia": "PJM",
        "Georgia": "TVA",
        "Nevada": "CISO",
    }
    assert sc.attrs["health_not_modelled"]["sites"] == NAMES[4:]
    assert "not modelled (no data), not zero harm" in sc.attrs["health_not_modelled"]["note"]
    assert "not modelled (no data), not zero harm" in sc.description
    assert "Georgia -> TVA" in sc.description


def test_health_table_derivation_is_deterministic_and_shipped(shared_dir, tmp_path):
    script = _load_script("derive_builtin_health")
    folder = _health_dir(shared_dir)
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    assert script.main(["--data-dir", str(folder), "--out", str(first)]) == 0
    assert script.main(["--data-dir", str(folder), "--out", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()
    shipped = resources.files("eqglb").joinpath("data/builtin_health.csv").read_bytes()
    assert first.read_bytes() == shipped
    assert b"ASSUMED" in shipped and b"MIT licence" in shipped


def test_health_hour_means_match_an_independent_parse(shared_dir):
    """The shipped hour-of-day means are the data's, re-computed with the csv module."""
    folder = _health_dir(shared_dir)
    prof = load_health_profiles()
    assert len(prof) == 4 * 24 and set(prof["grid"]) == {"CISO", "ERCO", "PJM", "TVA"}
    for grid in ("CISO", "ERCO", "PJM", "TVA"):
        with open(folder / f"{grid}_dataset.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        sums, counts = np.zeros(24), np.zeros(24)
        values = []
        for row in rows:
            hour = (int(row["period"][-2:]) - 1) % 24  # hour ending -> slot start (UTC)
            v = (float(row["internal_health_cost"]) + float(row["external_health_cost"])) / 1e3
            sums[hour] += v
            counts[hour] += 1
            values.append(v)
        got = prof[prof["grid"] == grid].sort_values("hour_utc")
        np.testing.assert_allclose(got["mean"], sums / counts, rtol=1e-5, err_msg=grid)
        assert got["min"].iloc[0] == pytest.approx(min(values), rel=1e-5)
        assert got["max"].iloc[0] == pytest.approx(max(values), rel=1e-5)
        assert ((got["ar1"] > 0.5) & (got["ar1"] < 1)).all()  # persistent hourly signal
