"""Sweeps: every point solved and stored once, resume after interruption or a dying
worker, the same results on local processes and on a real local Ray instance.

Workers run in other processes, so the tests observe them through files: a scenario's
``attrs["trace_dir"]`` (free metadata, not part of its fingerprint) names a folder where
:func:`tracing_solve` leaves one file per call. ``tracing_solve`` is importable by name,
so a worker that unpickles the monkeypatched ``eqglb.sweep._solve_point`` finds it.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eqglb import sweep
from eqglb.costs import Objective
from eqglb.io.scenario_format import write_scenario
from eqglb.metrics import jain, peak_to_average
from eqglb.policies import make_policy
from eqglb.simulate import run_policy
from eqglb.sweep import (
    FRONTIER_COLUMNS,
    RESULT_COLUMNS,
    ScenarioSpec,
    SweepSpec,
    SweepSpecError,
    frontier_table,
    plot_frontier,
    run_sweep,
    scenario_fingerprint,
    sweep_points,
)
from eqglb.testing import random_scenario

_REAL_SOLVE = sweep._solve_point


def tracing_solve(payload: dict) -> dict:
    """Record the call; die once (os._exit) on ``attrs["crash_key"]``; then solve."""
    attrs = payload["scenario"].attrs
    trace = Path(attrs["trace_dir"])
    (trace / f"{payload['key']}.{uuid.uuid4().hex}").touch()
    if attrs.get("crash_key") == payload["key"]:
        marker = trace / "crashed"
        if not marker.exists():
            marker.touch()
            os._exit(3)  # the worker process dies without a word
    return _REAL_SOLVE(payload)


def calls(trace: Path) -> dict[str, int]:
    """Number of solve calls per point key recorded in ``trace``."""
    out: dict[str, int] = {}
    for f in trace.iterdir():
        if f.name != "crashed":
            key = f.name.split(".")[0]
            out[key] = out.get(key, 0) + 1
    return out


def tiny(seed: int, tmp_path: Path) -> tuple[str, object]:
    sc = random_scenario(np.random.default_rng(seed), 3, 3, 3, 2)
    trace = tmp_path / f"trace-{seed}"
    trace.mkdir()
    sc.attrs["trace_dir"] = str(trace)
    return f"tiny{seed}", sc


SPEC = SweepSpec.from_dict(
    {
        "q": [1, 2, "inf"],
        "weight_grid": {"mu_social": [50.0], "mu_carbon": [0.5, 5.0], "mu_water": [0.05]},
        "baseline_options": {"model_rule": "free"},
    }
)


@pytest.fixture()
def traced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweep, "_solve_point", tracing_solve)


def _numeric(df: pd.DataFrame) -> pd.DataFrame:
    cols = [
        c for c in RESULT_COLUMNS if pd.api.types.is_float_dtype(df[c]) and not c.endswith("time_s")
    ]
    return df[cols]


def test_local_sweep_solves_every_point_with_independent_numbers(tmp_path, traced):
    label, sc = tiny(1, tmp_path)
    store = tmp_path / "store"
    df = run_sweep(SPEC, store, workers=2, progress=False, scenarios=[(label, sc)])

    assert list(df.columns) == list(RESULT_COLUMNS)
    assert len(df) == 1 + 2 * 3  # the baseline once, then 2 weight settings x 3 q
    assert df["ok"].all() and (df["status"] == "optimal").all(), df[["status", "error"]]
    assert list(df["role"]) == ["baseline"] + ["point"] * 6
    assert sorted(p.name for p in store.iterdir()) == sorted(f"{k}.json" for k in df["key"])
    assert calls(Path(sc.attrs["trace_dir"])) == dict.fromkeys(df["key"], 1)

    # the minimum-energy baseline (model rule "free") is the cheapest point of all
    base = df.loc[df["role"] == "baseline", "energy_cost"].item()
    assert (df["energy_overhead_pct"] >= -1e-6).all()
    assert np.allclose(df["energy_overhead_pct"], 100 * (df["energy_cost"] - base) / abs(base))

    # every row agrees with the point solved again here, and metrics recomputed here
    for row in df[df["role"] == "point"].itertuples():
        # the sweep's weights are per unit, applied to normalised norms (eqglb.defaults)
        obj = Objective.normalized(
            len(sc.regions),
            len(sc.datacenters),
            mu_social=row.mu_social,
            mu_carbon=row.mu_carbon,
            mu_water=row.mu_water,
            q_social=row.q,
            q_carbon=row.q,
            q_water=row.q,
        )
        _, ev = run_policy(sc, make_policy("reference", obj), obj)
        assert row.objective == pytest.approx(ev.objective, rel=1e-6)
        carbon = np.array(list(ev.carbon.values()))
        quality = np.array(list(ev.social.values()))
        assert row.carbon_max == pytest.approx(carbon.max(), rel=1e-5, abs=1e-9)
        assert row.carbon_max_over_mean == pytest.approx(peak_to_average(carbon), rel=1e-5)
        assert row.quality_jain == pytest.approx(jain(quality), rel=1e-5, abs=1e-9)

    front = frontier_table(df)
    assert list(front.columns) == list(FRONTIER_COLUMNS)
    assert front["q"].iloc[0] != front["q"].iloc[0]  # the baseline (q = NaN) first
    for _, g in front.iloc[1:].groupby("weights"):
        assert list(g["q"]) == [1.0, 2.0, math.inf]
    png = plot_frontier(df, tmp_path / "out" / "frontier.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_resume_recomputes_only_missing_and_failed_points(tmp_path, traced):
    label, sc = tiny(2, tmp_path)
    trace = Path(sc.attrs["trace_dir"])
    store = tmp_path / "store"
    first = run_sweep(SPEC, store, workers=2, progress=False, scenarios=[(label, sc)])
    assert first["ok"].all()
    keys = list(first["key"])
    stamps = {k: (store / f"{k}.json").stat().st_mtime_ns for k in keys}

    # one result lost (interrupted before it was written), one recorded as failed
    lost, failed = keys[3], keys[5]
    (store / f"{lost}.json").unlink()
    rec = json.loads((store / f"{failed}.json").read_text())
    rec.update(ok=False, status="error", error="RuntimeError: simulated failure")
    (store / f"{failed}.json").write_text(json.dumps(rec))
    for f in trace.iterdir():
        f.unlink()

    again = run_sweep(SPEC, store, workers=2, progress=False, scenarios=[(label, sc)])
    assert calls(trace) == {lost: 1, failed: 1}
    for k in keys:
        if k not in (lost, failed):
            assert (store / f"{k}.json").stat().st_mtime_ns == stamps[k]
    assert again["ok"].all()
    pd.testing.assert_frame_equal(_numeric(again), _numeric(first), rtol=1e-7)

    # nothing left to do: no call at all
    for f in trace.iterdir():
        f.unlink()
    run_sweep(SPEC, store, workers=2, progress=False, scenarios=[(label, sc)])
    assert calls(trace) == {}


def test_dying_worker_loses_no_finished_point(tmp_path, traced):
    label, sc = tiny(3, tmp_path)
    trace = Path(sc.attrs["trace_dir"])
    points = sweep_points(SPEC, [(label, sc)])
    victim = points[3].key
    sc.attrs["crash_key"] = victim
    store = tmp_path / "store"

    # no retries within the run: the victim and the points queued behind it fail ...
    df = run_sweep(SPEC, store, workers=1, progress=False, max_retries=0, scenarios=[(label, sc)])
    assert (trace / "crashed").exists()
    keys = [p.key for p in points]
    assert list(df["key"]) == keys
    assert df["ok"].iloc[:3].all()  # finished before the crash: kept
    assert not df.loc[df["key"] == victim, "ok"].item()
    assert "worker died" in df.loc[df["key"] == victim, "error"].item()
    done_first = set(df.loc[df["ok"], "key"])

    # ... and the next run solves exactly the points without a result
    for f in trace.iterdir():
        if f.name != "crashed":
            f.unlink()
    df2 = run_sweep(SPEC, store, workers=1, progress=False, scenarios=[(label, sc)])
    assert df2["ok"].all()
    assert calls(trace) == dict.fromkeys(set(keys) - done_first, 1)


def test_dying_worker_is_replaced_within_the_run(tmp_path, traced):
    label, sc = tiny(4, tmp_path)
    trace = Path(sc.attrs["trace_dir"])
    points = sweep_points(SPEC, [(label, sc)])
    victim = points[2].key
    sc.attrs["crash_key"] = victim

    df = run_sweep(
        SPEC, tmp_path / "store", workers=1, progress=False, max_retries=2, scenarios=[(label, sc)]
    )
    assert (trace / "crashed").exists()
    assert df["ok"].all()
    # sequential worker: points before the victim ran once, the victim twice
    n = calls(trace)
    assert n[victim] == 2
    assert all(n[p.key] == 1 for p in points[:2])
    assert all(n.get(p.key, 0) == 1 for p in points[3:])


def test_ray_backend_matches_local(tmp_path):
    import ray  # a declared test dependency: missing is a failure, not a skip

    label, sc = tiny(5, tmp_path)
    spec = SweepSpec.from_dict({"q": [1, "inf"], "baseline_options": {"model_rule": "free"}})
    local = run_sweep(spec, tmp_path / "local", workers=2, progress=False, scenarios=[(label, sc)])
    assert not ray.is_initialized()
    on_ray = run_sweep(
        spec, tmp_path / "ray", backend="ray", workers=1, progress=False, scenarios=[(label, sc)]
    )
    assert not ray.is_initialized()  # the instance started on demand was shut down
    assert on_ray["ok"].all()
    assert list(on_ray["key"]) == list(local["key"])
    pd.testing.assert_frame_equal(_numeric(on_ray), _numeric(local), rtol=1e-7)
    pids = {json.loads(p.read_text())["pid"] for p in (tmp_path / "ray").iterdir()}
    assert os.getpid() not in pids


def test_spec_from_toml_and_keys(tmp_path):
    folder = tmp_path / "scen"
    sc = random_scenario(np.random.default_rng(6), 2, 2, 2, 2)
    write_scenario(sc, folder)
    (tmp_path / "sweep.toml").write_text(
        'q = [1, 4, "inf"]\npolicies = ["equitable", "weighted"]\n'
        "[[weights]]\nmu_social = 10.0\nmu_carbon = 1.0\nmu_water = 0.0\n"
        "[weight_grid]\nmu_carbon = [0.1, 0.2]\n"
        '[[scenarios]]\npath = "scen"\n'
        "[[scenarios]]\ndays = 1\nseeds = [0, 1]\n"
    )
    spec = SweepSpec.from_toml(tmp_path / "sweep.toml")
    assert spec.q == [1.0, 4.0, math.inf]
    ws = spec.weight_settings()
    assert [(w.mu_social, w.mu_carbon, w.mu_water) for w in ws] == [
        (10.0, 1.0, 0.0),
        (None, 0.1, 0.01),
        (None, 0.2, 0.01),
    ]
    assert spec.scenarios[0].path == tmp_path / "scen"
    labels = [label for e in spec.scenarios for label, _ in e.expand()]
    assert labels == ["scen", "builtin-1d-seed0", "builtin-1d-seed1"]

    scen = [("scen", spec.scenarios[0].expand()[0][1]())]
    pts = sweep_points(spec, scen)
    assert len(pts) == 1 + 2 * 3 * 3
    assert len({p.key for p in pts}) == len(pts)
    # keys are deterministic, ignore the label, and follow the scenario's numbers
    assert [p.key for p in sweep_points(spec, [("other", sc)])] == [p.key for p in pts]
    changed = sc.replace(price=np.asarray(sc.price) + 0.01)
    assert scenario_fingerprint(changed) != scenario_fingerprint(sc)
    assert not {p.key for p in sweep_points(spec, [("scen", changed)])} & {p.key for p in pts}


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"q": [0.5]}, "q"),
        ({"weights": [{"mu_carbon": -1}]}, "weights.0.mu_carbon"),
        ({"scenarios": [{"days": 0}]}, "scenarios.0.days"),
        ({"polices": ["equitable"]}, "polices"),
        ({"baseline_options": {"model_rule": "weighted"}}, "baseline_options"),
    ],
)
def test_bad_spec_names_the_field(doc, field):
    with pytest.raises(SweepSpecError, match=f"field '{field}'"):
        SweepSpec.from_dict(doc, source="my.toml")


def test_unknown_policy_and_backend_are_refused(tmp_path):
    with pytest.raises(SweepSpecError, match="unknown policy 'nope'"):
        run_sweep(SweepSpec(policies=["nope"]), tmp_path, progress=False)
    with pytest.raises(SweepSpecError, match="backend"):
        run_sweep(SweepSpec(), tmp_path, backend="dask", progress=False)  # type: ignore[arg-type]


def test_command_writes_table_files_and_figure(tmp_path, capsys):
    from eqglb.cli import main

    folder = tmp_path / "scen"
    write_scenario(random_scenario(np.random.default_rng(7), 2, 2, 2, 2), folder)
    out = tmp_path / "out"
    args = [
        "sweep",
        "--scenario",
        str(folder),
        "--q",
        "1",
        "--q",
        "inf",
        "--mu-social",
        "20",
        "--mu-carbon",
        "0.5",
        "--mu-carbon",
        "2",
        "--workers",
        "2",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "trade-off frontier, 5 points" in text
    assert "overhead [%]" in text and "mu_s/mu_c/mu_w" in text
    assert len(list((out / "points").glob("*.json"))) == 5
    front = pd.read_csv(out / "frontier.csv")
    assert list(front.columns) == list(FRONTIER_COLUMNS) and len(front) == 5
    assert (out / "frontier.png").stat().st_size > 10_000
    results = pd.read_csv(out / "results.csv")
    assert sorted(results["mu_carbon"].dropna().unique()) == [0.5, 2.0]
    assert set(results["q"].dropna()) == {1.0, math.inf}
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "points").glob("*.json")}

    # a second run reuses every stored point (no point file rewritten)
    assert main(args) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "points").glob("*.json")} == stamps


def test_command_prices_a_registry_burden_and_fixes_a_term_q(tmp_path, capsys):
    """--mu-health (generated from the burden registry) enters the grid, the label and
    each point's objective; --q-carbon fixes one term's q at every point; the serial
    backend solves in this process."""
    from eqglb.cli import main

    folder = tmp_path / "scen"
    rng = np.random.default_rng(8)
    sc = random_scenario(rng, 2, 2, 2, 2)
    sc = sc.replace(health_cost=rng.uniform(0.01, 0.1, np.shape(sc.price)))  # [USD/kWh]
    write_scenario(sc, folder)
    out = tmp_path / "out"
    args = ["sweep", "--scenario", str(folder), "--q", "2", "--baseline", "none"]
    args += ["--mu-health", "0", "--mu-health", "3", "--q-carbon", "inf"]
    args += ["--backend", "serial", "--out", str(out), "--no-progress", "--no-plot"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "mu_s/mu_c/mu_w/mu_h" in text
    results = pd.read_csv(out / "results.csv")
    assert sorted(results["mu_health"]) == [0.0, 3.0]
    assert {int(json.loads(p.read_text())["pid"]) for p in (out / "points").iterdir()} == {
        os.getpid()
    }
    from eqglb.io.scenario_format import read_scenario

    back = read_scenario(folder)
    objectives = {}
    for p in (out / "points").iterdir():
        rec = json.loads(p.read_text())
        assert rec["point"]["q_terms"] == {"carbon": "inf"}
        mu_h = rec["point"]["weights"].get("mu_health", 0.0)
        # independent: the same objective built by hand, solved and evaluated here
        obj = Objective.normalized(
            len(sc.regions),
            len(sc.datacenters),
            mu_social=rec["point"]["weights"]["mu_social"],
            mu_carbon=0.19,
            mu_water=0.01,
            mu_health=mu_h,
            q_social=2,
            q_carbon="inf",
            q_water=2,
            q_health=2,
        )
        _, ev = run_policy(back, make_policy("equitable", obj), obj)
        assert rec["ok"] and rec["objective"] == pytest.approx(ev.objective, rel=1e-6)
        objectives[mu_h] = rec["objective"]
    assert objectives[3.0] > objectives[0.0]  # health is priced at mu_health 3


def test_backend_names_are_one_set(tmp_path, capsys):
    from eqglb.cli import main

    base = ["sweep", "--days", "1", "--q", "1", "--out", str(tmp_path / "o"), "--no-progress"]
    assert main([*base, "--backend", "dask"]) == 2
    assert "--backend 'dask'; use 'serial', 'process', 'ray'" in capsys.readouterr().err
    from eqglb._workers import check_backend

    with pytest.warns(DeprecationWarning, match="'local' is deprecated; use 'process'"):
        assert check_backend("local") == "process"
    with pytest.raises(ValueError, match="use one of 'serial', 'process', 'ray'"):
        check_backend("dask")


def test_spec_default_weights_and_scenario():
    spec = SweepSpec()
    (w,) = spec.weight_settings()
    # the one set of defaults (eqglb.defaults); mu_social is resolved per scenario
    assert (w.mu_social, w.mu_carbon, w.mu_water) == (None, 0.19, 0.01)
    assert spec.policies == ["equitable"] and spec.baseline == "cost-only"
    assert spec.q == [1.0, 2.0, 4.0, 8.0, math.inf]
    assert isinstance(spec.scenarios[0], ScenarioSpec) and spec.scenarios[0].path is None


def test_documented_example_spec_is_valid(tmp_path):
    """The TOML example of docs/sweep.md loads and means what the page says."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "sweep.md").read_text()
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "sweep.toml").write_text(block)
    spec = SweepSpec.from_toml(tmp_path / "docs" / "sweep.toml")
    assert spec.q == [1.0, 2.0, 4.0, 8.0, math.inf]
    assert [(w.mu_social, w.mu_carbon, w.mu_water) for w in spec.weight_settings()] == [
        (1e6, 1.5, 0.06),
        (None, 0.1, 0.01),
        (None, 0.5, 0.01),
        (None, 2.0, 0.01),
    ]
    assert spec.baseline_options == {"model_rule": "free"}
    assert spec.scenarios[0].seeds == [0, 1] and spec.scenarios[0].days == 7
    assert spec.scenarios[1].path == tmp_path / "docs" / ".." / "examples" / "scenario_small"


def test_sweep_without_baseline_plots_energy_cost(tmp_path, traced):
    label, sc = tiny(8, tmp_path)
    spec = SweepSpec.from_dict({"q": [1, "inf"], "baseline": None})
    df = run_sweep(spec, tmp_path / "store", workers=1, progress=False, scenarios=[(label, sc)])
    assert len(df) == 2 and (df["role"] == "point").all() and df["ok"].all()
    assert df["energy_overhead_pct"].isna().all()
    png = plot_frontier(df, tmp_path / "f.png")
    assert png.stat().st_size > 10_000
