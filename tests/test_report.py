"""Tables, files and figures of eqglb.report, checked against independent computations."""

from __future__ import annotations

import dataclasses
import json
import math
import sys

import numpy as np
import pandas as pd
import pytest

from eqglb import Dispatch, SolveInfo
from eqglb.costs import Objective
from eqglb.policies import make_policy
from eqglb.report import _fmt as fmt
from eqglb.report import (
    comparison_table,
    metrics_dict,
    plot_regional_bars,
    region_frame,
    render_table,
    summary_frame,
    write_dispatch_parquet,
    write_markdown_report,
    write_metrics_json,
    write_region_csv,
)
from eqglb.simulate import evaluate, run_policy
from eqglb.testing import random_scenario, two_site_scenario

POLICIES = ("energy", "carbon", "water", "equitable")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs():
    """A random 3-slot scenario, four policies scored with one objective."""
    sc = random_scenario(np.random.default_rng(11), T=3, N=3, J=2, K=2)
    obj = Objective.uniform(2, mu_social=5.0, mu_carbon=0.2, mu_water=0.01)
    dispatches, evals = {}, {}
    for name in POLICIES:
        dispatches[name], evals[name] = run_policy(sc, make_policy(name, obj), obj)
    return sc, obj, dispatches, evals


def _independent_regional(sc, y):
    """Carbon [kg] and water [L] per datacenter, quality loss per region, from the MODEL.md
    formulas written out directly (not through eqglb.costs)."""
    ci, pue, price = np.asarray(sc.carbon_intensity), np.asarray(sc.pue), np.asarray(sc.price)
    eps = np.asarray(sc.energy_per_request)
    it_energy = np.einsum("nk,tnjk->tn", eps, y)  # kWh of IT energy
    carbon = np.sum(ci * pue * it_energy, axis=0)
    water = np.sum((np.asarray(sc.wue) + pue * np.asarray(sc.ewif)) * it_energy, axis=0)
    quality = np.einsum("k,tnjk->j", np.asarray(sc.quality_loss), y) / np.asarray(sc.demand).sum(
        axis=0
    )
    energy_cost = float(np.sum(pue * price * it_energy))
    return carbon, water, quality, energy_cost


def test_table_renders_every_policy_with_units_and_overhead(runs):
    _, _, _, evals = runs
    text = render_table(evals, baseline="energy")
    lines = text.splitlines()
    for name in POLICIES:
        assert sum(line.lstrip("│ ").startswith(name) for line in lines) == 1, name
    for head in ("[USD]", "vs energy", "max/", "Jain"):
        assert head in text
    energy_row = next(line for line in lines if line.lstrip("│ ").startswith("energy"))
    assert "+0.0%" in energy_row
    assert "flag" not in text  # nothing flagged: no flag column
    assert comparison_table(evals).row_count == len(POLICIES)


def test_table_flags_inaccurate_and_infeasible(runs):
    sc, obj, dispatches, evals = runs
    inexact = dataclasses.replace(evals["carbon"], info=SolveInfo("optimal_inaccurate", "X"))
    half = evaluate(sc, Dispatch(np.asarray(dispatches["energy"].y) * 0.5, policy="half"), obj)
    bad = {"energy": evals["energy"], "carbon": inexact, "half": half}
    assert not evals["energy"].flagged and inexact.flagged and half.flagged
    text = render_table(bad, baseline="energy", width=220)
    assert "flag" in text
    row = {line.lstrip("│ ").split()[0]: line for line in text.splitlines() if "│" in line}
    assert "inaccurate" in row["carbon"]
    assert "infeasible (demand" in row["half"]
    assert "infeasible" not in row["energy"] and "inaccurate" not in row["energy"]
    frame = summary_frame(bad)
    assert frame["flagged"].tolist() == [False, True, True]


def test_summary_matches_independent_costs_and_optimum_is_lowest(runs):
    sc, _, dispatches, evals = runs
    df = summary_frame(evals, baseline="energy")
    assert list(df.index) == list(POLICIES)
    for name in POLICIES:
        carbon, water, quality, energy_cost = _independent_regional(sc, dispatches[name].y)
        r = df.loc[name]
        assert r["energy_cost_usd"] == pytest.approx(energy_cost, rel=1e-9)
        assert r["carbon_max_kg"] == pytest.approx(carbon.max(), rel=1e-9)
        assert r["water_total_l"] == pytest.approx(water.sum(), rel=1e-9)
        assert r["quality_loss_max"] == pytest.approx(quality.max(), rel=1e-9, abs=1e-12)
        assert r["carbon_max_over_mean"] == pytest.approx(carbon.max() / carbon.mean())
        base = df.loc["energy", "energy_cost_usd"]
        assert r["energy_cost_overhead_pct"] == pytest.approx(
            100 * (r["energy_cost_usd"] - base) / abs(base)
        )
    # every policy is scored with the objective the equitable policy minimises
    assert df["objective_usd"].min() == pytest.approx(
        df.loc["equitable", "objective_usd"], rel=1e-6
    )


def test_region_csv_long_table_sums_match_evaluations(runs, tmp_path):
    sc, _, dispatches, evals = runs
    path = tmp_path / "regions.csv"
    write_region_csv(evals, path)
    df = pd.read_csv(path)
    assert list(df.columns) == ["policy", "cost", "region_or_datacenter", "value", "unit"]
    N, J = len(sc.datacenters), len(sc.regions)
    assert len(df) == len(POLICIES) * (2 * N + J)
    units = df.groupby("cost")["unit"].unique().to_dict()
    assert {k: list(v) for k, v in units.items()} == {
        "carbon": ["kg CO2"],
        "water": ["L"],
        "quality_loss": ["-"],
    }
    for name in POLICIES:
        sub = df[df["policy"] == name]
        carbon, water, quality, _ = _independent_regional(sc, dispatches[name].y)
        c = sub[sub["cost"] == "carbon"].set_index("region_or_datacenter")["value"]
        w = sub[sub["cost"] == "water"].set_index("region_or_datacenter")["value"]
        s = sub[sub["cost"] == "quality_loss"].set_index("region_or_datacenter")["value"]
        assert list(c.index) == list(sc.datacenters) and list(s.index) == list(sc.regions)
        np.testing.assert_allclose(c.to_numpy(), carbon, rtol=1e-9)
        np.testing.assert_allclose(w.to_numpy(), water, rtol=1e-9)
        np.testing.assert_allclose(s.to_numpy(), quality, rtol=1e-9, atol=1e-15)
        assert c.sum() == pytest.approx(evals[name].summary["totals"]["carbon"], rel=1e-9)
        assert w.sum() == pytest.approx(evals[name].summary["totals"]["water"], rel=1e-9)


def test_total_quality_unit_is_requests(runs):
    sc, _, dispatches, _ = runs
    obj = Objective(mu_social=1.0, social_average=False)
    ev = evaluate(sc, dispatches["energy"], obj)
    df = region_frame({"energy": ev})
    q = df[df["cost"] == "quality_loss"]
    assert set(q["unit"]) == {"requests"}
    expected = np.einsum("k,tnjk->j", np.asarray(sc.quality_loss), dispatches["energy"].y)
    np.testing.assert_allclose(q["value"].to_numpy(), expected, rtol=1e-9, atol=1e-12)
    assert metrics_dict({"energy": ev})["energy"]["units"]["quality_loss"] == "requests"


def test_metrics_dict_schema(runs, tmp_path):
    sc, _, _, evals = runs
    path = write_metrics_json(evals, tmp_path / "metrics.json", baseline="energy")

    def no_nan(const):
        raise AssertionError(f"non-JSON constant {const} in metrics.json")

    data = json.loads(path.read_text(), parse_constant=no_nan)["policies"]
    assert list(data) == list(POLICIES)
    for name, m in data.items():
        assert m["policy"] == name
        assert m["energy_cost"] == pytest.approx(evals[name].energy_cost)
        assert m["objective"] == pytest.approx(evals[name].objective)
        assert list(m["carbon_kg"]) == list(sc.datacenters)
        assert list(m["water_l"]) == list(sc.datacenters)
        assert list(m["quality_loss"]) == list(sc.regions)
        assert m["totals"]["carbon_kg"] == pytest.approx(sum(m["carbon_kg"].values()))
        assert set(m["summary"]) >= {"carbon", "water", "social"}
        assert set(m["summary"]["carbon"]) >= {
            "total",
            "max",
            "mean",
            "max_over_mean",
            "lq_norm",
            "jain",
            "gini",
        }
        assert m["solve"]["status"] == "optimal" and m["flagged"] is False
        assert m["baseline"] == "energy"
        assert m["units"]["carbon_kg"] == "kg CO2" and m["units"]["water_l"] == "L"
    # versus itself: 0 %, or null where the ratio is undefined (e.g. max/mean of zeros)
    own = data["energy"]["overheads_pct"]
    assert own["energy_cost"] == 0.0 and own["carbon_max"] == 0.0
    assert all(v is None or abs(v) < 1e-12 for v in own.values())
    eq, en = data["equitable"], data["energy"]
    assert eq["overheads_pct"]["carbon_max"] == pytest.approx(
        100
        * (eq["summary"]["carbon"]["max"] - en["summary"]["carbon"]["max"])
        / en["summary"]["carbon"]["max"]
    )
    # without the baseline among the evaluations: no overheads, still valid
    only = metrics_dict({"equitable": evals["equitable"]}, baseline="energy")
    assert only["equitable"]["overheads_pct"] is None and only["equitable"]["baseline"] is None


def test_metrics_json_writes_null_for_undefined_ratios(tmp_path):
    sc = two_site_scenario(carbon_intensity=[[0.0, 0.0]])  # no carbon anywhere
    obj = Objective()
    _, ev = run_policy(sc, make_policy("energy", obj), obj)
    assert math.isnan(ev.summary["carbon"]["max_over_mean"])
    data = json.loads(write_metrics_json({"energy": ev}, tmp_path / "m.json").read_text())[
        "policies"
    ]
    assert data["energy"]["summary"]["carbon"]["max_over_mean"] is None
    assert data["energy"]["summary"]["carbon"]["max"] == 0.0
    assert "-" in render_table({"energy": ev})


def test_dispatch_parquet_round_trip(runs, tmp_path):
    sc, _, dispatches, _ = runs
    path = tmp_path / "dispatch.parquet"
    write_dispatch_parquet(dispatches, sc, path)
    df = pd.read_parquet(path)
    assert list(df.columns) == ["policy", "time", "datacenter", "region", "model", "requests"]
    assert list(df["policy"].astype(str).unique()) == list(POLICIES)
    assert (df["requests"] > 0).all()
    for name in POLICIES:
        sub = df[df["policy"] == name].drop(columns="policy")
        back = Dispatch.from_frame(sc, sub, policy=name)
        np.testing.assert_allclose(back.y, dispatches[name].y, rtol=1e-12, atol=0)
        # demand served per region, read from the file
        per_region = sub.groupby("region", observed=False)["requests"].sum()
        np.testing.assert_allclose(
            per_region[list(sc.regions)].to_numpy(), np.asarray(sc.demand).sum(axis=0), rtol=1e-9
        )


def test_regional_bar_pngs_are_written(runs, tmp_path):
    _, _, _, evals = runs
    paths = plot_regional_bars(evals, tmp_path / "figs")
    assert sorted(p.name for p in paths) == [
        "regional_carbon.png",
        "regional_quality_loss.png",
        "regional_water.png",
    ]
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000


def test_plot_names_the_missing_dependency(runs, tmp_path, monkeypatch):
    _, _, _, evals = runs
    for mod in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(ImportError, match=r"eqglb\[plot\]"):
        plot_regional_bars(evals, tmp_path)
    assert not any(tmp_path.iterdir())


def test_markdown_report(runs, tmp_path):
    sc, obj, _, evals = runs
    figs = plot_regional_bars(evals, tmp_path / "fig")
    path = write_markdown_report(
        evals,
        tmp_path / "report.md",
        baseline="energy",
        scenario=sc,
        objective=obj,
        figures=figs,
        notes=["A note."],
    )
    text = path.read_text()
    assert text.startswith("# ")
    assert obj.describe() in text
    head = text[text.index("## Headline") : text.index("## Objective split")]
    rows = [line for line in head.splitlines() if line.startswith("| ")]
    assert [r.split("|")[1].strip() for r in rows[2:]] == list(POLICIES)
    for dc in sc.datacenters:
        assert f"| {dc} |" in text
    assert "](fig/regional_carbon.png)" in text
    assert "A note." in text[text.index("## Headline") : text.index("## Carbon")]


def test_duplicate_and_empty_inputs_raise(runs):
    _, _, _, evals = runs
    with pytest.raises(ValueError, match="two evaluations"):
        summary_frame([evals["energy"], evals["energy"]])
    with pytest.raises(ValueError, match="no evaluations"):
        summary_frame({})


@pytest.mark.parametrize(
    ("x", "digits", "text"),
    [
        (12345.6, 4, "12,346"),
        (1807.14, 4, "1,807"),
        (0.0172, 3, "0.0172"),
        (51.37, 4, "51.37"),
        (-23.31, 4, "-23.31"),
        (0.0, 4, "0"),
        (float("nan"), 4, "-"),
        (2.5e-5, 3, "2.50e-05"),
    ],
)
def test_number_format(x, digits, text):
    assert fmt(x, digits) == text
