"""Latency SLOs (issue 12 item 2): hard max RTT per region (``rtt_slo_ms``, applied to
``allowed`` at validation) and mean-RTT budget per region and slot (``rtt_budget_ms``,
cvxpy reference only); the evaluator's RTT summary; the folder format."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import linprog

from eqglb.costs import Objective, coefficients, objective_value, regional_costs
from eqglb.io.scenario_format import read_scenario, write_scenario
from eqglb.online import simulate_online
from eqglb.policies import EquitableOffline, make_policy
from eqglb.scenario import Dispatch, ScenarioError
from eqglb.simulate import check_feasibility, evaluate
from eqglb.structured import StructuredOffline
from eqglb.structured.stream import StreamingOffline
from eqglb.testing import random_scenario

QS = [1.0, 2.0, 3.0, math.inf]
#: as in tests/test_structured.py: Clarabel tightened so that the reference is a reference
TIGHT = dict(tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11, tol_ktratio=1e-9)


def _slo_scenario(seed: int, T: int = 3, N: int = 4, J: int = 4, K: int = 2):
    """A random scenario and the same with an SLO that removes routes but stays feasible:
    each region keeps (at least) its two nearest allowed data centres."""
    for s in range(seed, seed + 50):
        rng = np.random.default_rng(s)
        sc = random_scenario(rng, T, N, J, K, slack=3.0)
        lat = np.asarray(sc.latency)
        reach = np.where(np.asarray(sc.allowed).any(axis=2), lat, np.inf)
        ordered = np.sort(reach, axis=0)
        slo = ordered[min(1, N - 1)]
        if not np.isfinite(slo).all():
            continue
        try:
            sc_slo = sc.replace(rtt_slo_ms=slo)
        except ScenarioError:
            continue  # the SLO leaves demand unservable at this seed
        removed = np.asarray(sc.allowed) & ~np.asarray(sc_slo.allowed)
        if removed.any():
            return sc, sc_slo
    raise AssertionError("no feasible SLO instance found")  # pragma: no cover


def _value(sc, obj, y):
    return objective_value(
        obj, regional_costs(coefficients(sc, social_average=obj.social_average), np.asarray(y))
    )


def _above(sc_slo) -> np.ndarray:
    """Bool (datacenter, region): routes whose RTT exceeds the region's SLO."""
    return np.asarray(sc_slo.latency) > np.asarray(sc_slo.rtt_slo_ms)[None, :]


# --------------------------------------------------------------------------- the hard SLO
def test_slo_removes_routes_and_keeps_the_declared_mask():
    sc, sc_slo = _slo_scenario(0)
    eff = np.asarray(sc.allowed) & ~_above(sc_slo)[:, :, None]
    assert np.array_equal(sc_slo.allowed, eff)
    assert np.array_equal(sc_slo.allowed_declared, sc.allowed)
    assert not np.array_equal(sc_slo.allowed, sc.allowed)
    # replace starts from the declared mask: dropping the SLO gives the routes back
    back = sc_slo.replace(rtt_slo_ms=None)
    assert np.array_equal(back.allowed, sc.allowed)
    assert back.rtt_slo_ms is None
    # a scalar SLO is one limit for every region; inf is no limit
    big = sc.replace(rtt_slo_ms=math.inf)
    assert np.array_equal(big.allowed, sc.allowed)
    assert np.all(big.rtt_slo_ms == math.inf)


@pytest.mark.parametrize("q", QS)
def test_slo_optimum_equals_reference(q):
    """Structured (the production solver) vs the cvxpy reference, both with the SLO, at
    1e-6 on three random instances; both carry zero flow above the SLO; and the SLO
    scenario solves exactly like the same scenario with the effective mask given as
    ``allowed`` (the SLO is nothing but that mask)."""
    obj = Objective(
        mu_social=2.0,
        mu_carbon=0.3,
        mu_water=0.02,
        q_social=q,
        q_carbon=q,
        q_water=q,
        combined_environment=False,
    )
    for seed in (1, 100, 200):
        sc, sc_slo = _slo_scenario(seed)
        d = StructuredOffline(obj, tol=1e-8).plan(sc_slo)
        ref = EquitableOffline(obj, solver_options={} if obj.is_linear else TIGHT, tol=1e-6).plan(
            sc_slo
        )
        v, v_ref = _value(sc_slo, obj, d.y), _value(sc_slo, obj, ref.y)
        assert v == pytest.approx(v_ref, rel=1e-6, abs=1e-7)
        assert d.info.status == "optimal"
        above = _above(sc_slo)
        for y in (d.y, ref.y):
            assert np.abs(np.asarray(y)[:, above, :]).max(initial=0.0) == 0.0
            assert check_feasibility(sc_slo, np.asarray(y)).ok(1e-7)
        masked = sc.replace(allowed=np.asarray(sc_slo.allowed))
        v_mask = _value(masked, obj, StructuredOffline(obj, tol=1e-8).plan(masked).y)
        assert v == pytest.approx(v_mask, rel=1e-6, abs=1e-7)
        # the unconstrained optimum can only be better (fewer constraints)
        v_free = _value(sc, obj, StructuredOffline(obj, tol=1e-8).plan(sc).y)
        assert v_free <= v + 1e-6 * max(1.0, abs(v))


OFFLINE = [
    "cost-only",
    "nearest",
    "energy",
    "carbon",
    "water",
    "weighted",
    "eglb",
    "equitable",
    "reference",
    "structured",
]


def test_no_flow_above_slo_in_every_policy():
    sc, sc_slo = _slo_scenario(7)
    above = _above(sc_slo)
    assert (np.asarray(sc.allowed) & above[:, :, None]).any()  # the SLO does cut routes
    obj = Objective(mu_social=1.0, mu_carbon=0.5, q_social=2.0, q_carbon=2.0)
    ys = {p: make_policy(p, obj).plan(sc_slo).y for p in OFFLINE}
    ys["streaming"] = StreamingOffline(obj, tol=1e-6, backend="serial").plan(sc_slo).y
    ys["online"] = simulate_online(sc_slo, make_policy("online", obj)).y
    ys["receding"] = simulate_online(sc_slo, make_policy("receding", obj, window=2)).y
    for name, y in ys.items():
        y = np.asarray(y)
        assert np.abs(y[:, above, :]).max(initial=0.0) == 0.0, name
        assert check_feasibility(sc_slo, y).ok(1e-6), name
        ev = evaluate(sc_slo, Dispatch(y, policy=name))
        assert ev.summary["latency"]["slo_violation_total"] == 0.0, name


# --------------------------------------------------------------------------- mean budget
def _linear_costs(sc, obj) -> np.ndarray:
    """Per-request cost (time, datacenter, region, model) [USD] of a q = 1 objective,
    read off the evaluator one unit dispatch at a time (independent of the solvers)."""
    c = np.zeros(sc.shape)
    for idx in np.ndindex(*sc.shape):
        y = np.zeros(sc.shape)
        y[idx] = 1.0
        c[idx] = _value(sc, obj, y)
    return c


def _budget_lp(sc, obj) -> float | None:
    """The budgeted q = 1 optimum by scipy's HiGHS on the dense y, written from MODEL.md
    (None when the budgets and capacity leave no feasible dispatch)."""
    T, N, J, K = sc.shape
    c = _linear_costs(sc, obj).ravel()
    n = c.size
    ix = np.arange(n).reshape(T, N, J, K)
    lat = np.asarray(sc.latency)
    a_eq, b_eq, a_ub, b_ub = [], [], [], []
    for t in range(T):
        for j in range(J):
            row = np.zeros(n)
            row[ix[t, :, j, :].ravel()] = 1.0
            a_eq.append(row)
            b_eq.append(sc.demand[t, j])
            row = np.zeros(n)
            row[ix[t, :, j, :].ravel()] = np.repeat(lat[:, j], K)
            if np.isfinite(sc.rtt_budget_ms[j]):
                a_ub.append(row)
                b_ub.append(sc.rtt_budget_ms[j] * sc.demand[t, j])
        for i in range(N):
            row = np.zeros(n)
            row[ix[t, i].ravel()] = np.tile(sc.capacity_per_request, J)
            a_ub.append(row)
            b_ub.append(sc.capacity[t, i])
    bounds = [
        (0, None if a else 0)
        for a in np.broadcast_to(np.asarray(sc.allowed)[None], sc.shape).ravel()
    ]
    res = linprog(
        c,
        A_ub=np.array(a_ub),
        b_ub=b_ub,
        A_eq=np.array(a_eq),
        b_eq=b_eq,
        bounds=bounds,
        method="highs",
    )
    if res.status == 2:
        return None
    assert res.status == 0, res.message
    return float(res.fun)


def _budget_scenario(seed: int):
    """The SLO scenario with a binding budget: halfway between the least reachable RTT and
    the unconstrained optimum's mean RTT, for every region (the first seed from ``seed``
    where capacity lets every region meet it at once)."""
    obj = Objective(mu_social=1.0, mu_carbon=0.5, q_social=1.0, q_carbon=1.0)
    for s in range(seed, seed + 50):
        _, sc_slo = _slo_scenario(s, T=2, N=3, J=3, K=2)
        y = np.asarray(StructuredOffline(obj, tol=1e-9).plan(sc_slo).y)
        mean = np.array(
            list(evaluate(sc_slo, Dispatch(y)).summary["latency"]["mean_rtt_ms"].values())
        )
        lat = np.where(np.asarray(sc_slo.allowed).any(axis=2), np.asarray(sc_slo.latency), np.inf)
        budget = np.maximum(0.5 * (lat.min(axis=0) + mean), lat.min(axis=0))
        budget[0] = math.inf  # one region without a budget
        sc = sc_slo.replace(rtt_budget_ms=budget)
        if _budget_lp(sc, obj) is not None:
            return sc, obj, y
    raise AssertionError("no feasible budget instance found")  # pragma: no cover


def test_budget_reference_certified_and_equal_to_an_independent_lp():
    sc, obj, y_free = _budget_scenario(3)
    ev_free = evaluate(sc, Dispatch(y_free))
    assert ev_free.summary["latency"]["budget_excess_total"] > 0  # the budget binds
    ref = make_policy("reference", obj).plan(sc)
    assert ref.info.status == "optimal"
    assert ref.info.extra["gap"] <= 1e-6
    v = _value(sc, obj, ref.y)
    assert v == pytest.approx(_budget_lp(sc, obj), rel=1e-6, abs=1e-7)
    # the bound is valid: the LP optimum is not below it
    assert ref.info.dual_bound <= v + 1e-9 * max(1.0, abs(v))
    y = np.asarray(ref.y)
    per_slot = np.einsum("tijk,ij->tj", y, np.asarray(sc.latency))
    fin = np.isfinite(sc.rtt_budget_ms)
    assert np.all(
        per_slot[:, fin] <= (sc.rtt_budget_ms[fin] * sc.demand[:, fin]) * (1 + 1e-7) + 1e-7
    )
    assert evaluate(sc, ref).summary["latency"]["budget_excess_total"] <= 1e-5


@pytest.mark.parametrize("q", [2.0, math.inf])
def test_budget_reference_certified_nonlinear(q):
    sc, _, _ = _budget_scenario(5)
    obj = Objective(mu_social=1.0, mu_carbon=0.5, q_social=q, q_carbon=q)
    ref = EquitableOffline(obj, solver_options={} if obj.is_linear else TIGHT, tol=1e-6).plan(sc)
    assert ref.info.status == "optimal", ref.info.extra["gap"]
    assert evaluate(sc, ref).summary["latency"]["budget_excess_total"] <= 1e-5
    # lexicographic quality floor (a first LP stage) + the budget in both stages
    best = EquitableOffline(obj, model_rule="best", tol=1e-6).plan(sc)
    assert best.info.extra["gap"] <= 1e-5
    assert evaluate(sc, best).summary["latency"]["budget_excess_total"] <= 1e-5


def test_budget_refused_by_the_other_paths():
    sc, obj, _ = _budget_scenario(3)
    runs = [
        ("structured", lambda: StructuredOffline(obj).plan(sc)),
        ("structured", lambda: make_policy("equitable", obj).plan(sc)),
        ("streaming", lambda: StreamingOffline(obj, backend="serial").plan(sc)),
        ("online", lambda: simulate_online(sc, make_policy("online", obj))),
    ]
    for path, run in runs:
        with pytest.raises(
            ScenarioError,
            match=rf"rtt_budget_ms .* which the {path} path "
            r"does not model; use policy \"reference\"",
        ):
            run()


# --------------------------------------------------------------------------- evaluator
def test_evaluator_latency_summary_checked_independently():
    sc, sc_slo = _slo_scenario(11)
    budget = np.full(len(sc.regions), 30.0)
    budget[1] = math.inf
    sc_b = sc_slo.replace(rtt_budget_ms=budget, validate_feasibility=False)
    rng = np.random.default_rng(4)
    # any dispatch, also one on routes above the SLO (the evaluator scores what it gets)
    y = rng.uniform(0, 5, sc.shape) * (rng.random(sc.shape) < 0.5)
    y[:, :, 2, :] = 0.0  # a region with no requests served
    got = evaluate(sc_b, Dispatch(y)).summary["latency"]
    T, N, J, K = sc.shape
    lat, slo = np.asarray(sc.latency), np.asarray(sc_b.rtt_slo_ms)
    for j, r in enumerate(sc.regions):
        req = ms = viol = 0.0
        worst = None
        excess = 0.0
        for t in range(T):
            slot_ms = 0.0
            for i in range(N):
                flow = sum(y[t, i, j, k] for k in range(K))
                req += flow
                ms += flow * lat[i, j]
                slot_ms += flow * lat[i, j]
                if lat[i, j] > slo[j]:
                    viol += flow
            if math.isfinite(budget[j]):
                excess += max(0.0, slot_ms - budget[j] * sc.demand[t, j])
        for i in range(N):
            if y[:, i, j, :].sum() > 0:
                worst = lat[i, j] if worst is None else max(worst, lat[i, j])
        if req == 0:
            assert got["mean_rtt_ms"][r] is None and got["worst_rtt_ms"][r] is None
        else:
            assert got["mean_rtt_ms"][r] == pytest.approx(ms / req, rel=1e-12)
            assert got["worst_rtt_ms"][r] == worst
        assert got["slo_violation_requests"][r] == pytest.approx(viol, rel=1e-12, abs=0)
        assert got["budget_excess_ms_requests"][r] == pytest.approx(excess, rel=1e-12, abs=1e-12)
    assert got["slo_violation_total"] > 0  # this dispatch does violate the SLO
    assert got["budget_excess_total"] > 0
    assert got["rtt_budget_ms"][sc.regions[1]] is None  # no budget for that region


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("field", ["rtt_slo_ms", "rtt_budget_ms"])
@pytest.mark.parametrize(
    "value, match",
    [
        ("neg", r"{f} is -5 for region 'reg1'; give an RTT limit >= 0 \[ms\]"),
        ("nan", r"{f} is nan for region 'reg0'; give an RTT limit >= 0 \[ms\]"),
        ("short", r"{f} has shape \(3,\); expected \(region=4,\)"),
        ("unknown", r"{f} names unknown region\(s\) \['nowhere'\]"),
        ("text", r"{f} for region 'reg0' is 'fast'; give a number \[ms\]"),
    ],
)
def test_bad_limits_are_located(field, value, match):
    sc, _ = _slo_scenario(0)
    v = {
        "neg": [100.0, -5.0, 100.0, 100.0],
        "nan": [math.nan, 1e3, 1e3, 1e3],
        "short": [1e3, 1e3, 1e3],
        "unknown": {"reg0": 1e3, "nowhere": 5.0},
        "text": {"reg0": "fast"},
    }[value]
    with pytest.raises(ScenarioError, match=match.format(f=field)):
        sc.replace(**{field: v})


def test_slo_without_latency_and_too_tight_slo_are_located():
    sc, _ = _slo_scenario(0)
    with pytest.raises(ScenarioError, match=r"rtt_slo_ms / rtt_budget_ms need `latency`"):
        sc.replace(latency=None, rtt_slo_ms=50.0)
    lat = np.where(np.asarray(sc.allowed).any(axis=2), np.asarray(sc.latency), np.inf)
    i = int(np.argmin(lat[:, 2]))
    slo = np.full(4, 1e3)
    slo[2] = 0.5 * lat[i, 2]
    with pytest.raises(
        ScenarioError,
        match=(
            rf"region 'reg2' has no allowed datacenter within its rtt_slo_ms of "
            rf"{slo[2]:g} ms: the nearest allowed one, 'dc{i}', is at {lat[i, 2]:g} ms"
        ),
    ):
        sc.replace(rtt_slo_ms=slo)
    budget = np.full(4, 1e3)
    budget[3] = 0.5 * lat[:, 3].min()
    with pytest.raises(ScenarioError, match=r"rtt_budget_ms of region 'reg3' is .* below"):
        sc.replace(rtt_budget_ms=budget)


def test_slo_that_makes_demand_unservable_names_the_slot():
    """Two data centres, one region: the SLO keeps only the near one, too small alone."""
    from eqglb.testing import two_site_scenario

    sc = two_site_scenario(latency=[[10.0], [80.0]], capacity=[6.0, 10.0])
    assert sc.replace(rtt_slo_ms=100.0).allowed.all()
    with pytest.raises(
        ScenarioError,
        match=(
            r"demand cannot be served in slot 0 \(2022-01-01 00:00\): region 'r' .*"
            r"its rtt_slo_ms of 50 ms removes 1 of its routes"
        ),
    ):
        sc.replace(rtt_slo_ms=50.0)


# --------------------------------------------------------------------------- folder format
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_folder_round_trip(tmp_path, fmt):
    sc, obj, _ = _budget_scenario(3)
    slo = np.array(sc.rtt_slo_ms)
    slo[1] = math.inf  # a region without an SLO is written without the key
    sc = sc.replace(rtt_slo_ms=slo)
    write_scenario(sc, tmp_path / "s", fmt=fmt)
    text = (tmp_path / "s" / "scenario.toml").read_text()
    assert text.count("rtt_slo_ms = ") == len(sc.regions) - 1
    assert text.count("rtt_budget_ms = ") == len(sc.regions) - 1
    back = read_scenario(tmp_path / "s")
    for key in ("rtt_slo_ms", "rtt_budget_ms", "allowed", "allowed_declared", "latency"):
        assert np.array_equal(np.asarray(getattr(back, key)), np.asarray(getattr(sc, key))), key
    ref = make_policy("reference", obj).plan(sc)
    assert evaluate(back, ref).summary["latency"] == evaluate(sc, ref).summary["latency"]


def test_folder_bad_slo_is_located_at_its_line(tmp_path):
    sc, _ = _slo_scenario(0)
    write_scenario(sc.replace(rtt_slo_ms=[1e3, 1e3, 1e3, 1e3]), tmp_path / "s")
    toml = tmp_path / "s" / "scenario.toml"
    text = toml.read_text()
    toml.write_text(text.replace("rtt_slo_ms = 1000.0", "rtt_slo_ms = -3.0", 1))
    line = 1 + toml.read_text().splitlines().index("rtt_slo_ms = -3.0  # [ms]")
    with pytest.raises(
        ScenarioError,
        match=rf"scenario.toml, line {line}: rtt_slo_ms is -3 "
        r"for region 'reg0'",
    ):
        read_scenario(tmp_path / "s")


# --------------------------------------------------------------------------- report
def test_markdown_report_rtt_line(tmp_path):
    from eqglb.report import write_markdown_report

    sc, sc_slo = _slo_scenario(0)
    obj = Objective(mu_social=1.0, mu_carbon=0.5)
    evs = {
        p: evaluate(sc_slo, make_policy(p, obj).plan(sc_slo), obj) for p in ("energy", "structured")
    }
    text = write_markdown_report(evs, tmp_path / "r.md", scenario=sc_slo).read_text()
    for name, ev in evs.items():
        la = ev.summary["latency"]
        mean = max(v for v in la["mean_rtt_ms"].values() if v is not None)
        worst = max(v for v in la["worst_rtt_ms"].values() if v is not None)
        assert worst <= max(sc_slo.rtt_slo_ms)
        line = next(ln for ln in text.splitlines() if ln.startswith(f"- {name}: "))
        assert line.startswith(f"- {name}: {mean:.4g} / {worst:.4g}; SLO violations 0")
    # without an SLO the report is as before (no RTT lines)
    plain = {"energy": evaluate(sc, make_policy("energy", obj).plan(sc), obj)}
    assert "RTT mean/worst" not in write_markdown_report(plain, tmp_path / "p.md").read_text()


def test_service_honours_the_slo_and_refuses_a_budget():
    from eqglb.service.engine import ServiceConfig, ServiceConfigError

    sc, obj, _ = _budget_scenario(3)
    with pytest.raises(ServiceConfigError, match=r"rtt_budget_ms .* service's online"):
        ServiceConfig(scenario=sc, objective=obj)
    cfg = ServiceConfig(scenario=sc.replace(rtt_budget_ms=None), objective=obj)
    assert np.array_equal(cfg.scenario.allowed, sc.allowed)  # the SLO's mask is served
