"""Switching cost (docs/switching.md): the movement metric, the exact offline model, its
certificate, the evaluator and the structured solvers' refusal.

The independent reference is an LP written out here with scipy's linprog on the dense
dispatch (its own cost coefficients from the scenario fields, its own epigraph rows),
for q in {1, inf}; it shares nothing with eqglb's cvxpy model but the scenario.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from eqglb.certify import lagrangian_bound, switching_prices
from eqglb.costs import Objective
from eqglb.policies import EquitableOffline, make_policy
from eqglb.policies.problem import Routes
from eqglb.scenario import Dispatch, Scenario
from eqglb.simulate import evaluate, movement, routing_fractions
from eqglb.structured import StreamingOffline, StructuredOffline
from eqglb.testing import random_scenario


def _line(demand: list[list[float]], price: list[list[float]], **over: object) -> Scenario:
    """T slots, 2 data centres (a, b), len(demand[0]) regions, 1 model, ample capacity."""
    T, J = len(demand), len(demand[0])
    kw: dict[str, object] = dict(
        datacenters=["a", "b"],
        regions=[f"r{j}" for j in range(J)],
        models=["m"],
        time=pd.date_range("2022-01-01", periods=T, freq="h"),
        demand=demand,
        price=price,
        carbon_intensity=[[0.5, 0.1]] * T,
        wue=[[0.0, 0.0]] * T,
        ewif=[[0.0, 0.0]] * T,
        pue=[1.0, 1.0],
        energy_per_request=[[1.0], [1.0]],
        capacity_per_request=[1.0],
        capacity=[[1000.0, 1000.0]] * T,
        quality_loss=[0.0],
        home=["a"] * J,
        name="line",
    )
    kw.update(over)
    return Scenario(**kw)  # type: ignore[arg-type]


def _y(rows: list[list[float]]) -> np.ndarray:
    """(T, 2) loads at (a, b) of one region and one model -> y (T, 2, 1, 1)."""
    return np.asarray(rows, dtype=float)[:, :, None, None]


# ----------------------------------------------------------------------------- movement
def test_movement_constant_demand_by_hand() -> None:
    # demand 10 in both slots; slot 0 sends (10, 0), slot 1 sends (4, 6):
    # f0 = (1, 0), f1 = (0.4, 0.6); M_1 = 10 * 0.5 * (0.6 + 0.6) = 6 requests moved
    sc = _line([[10.0], [10.0]], [[0.1, 0.2], [0.1, 0.2]])
    m = movement(sc, _y([[10, 0], [4, 6]]))
    np.testing.assert_allclose(m, [0.0, 6.0], rtol=0, atol=1e-12)
    # with constant demand it is 0.5 * sum |y_t - y_{t-1}| = 0.5 * (6 + 6) = 6
    assert m.sum() == pytest.approx(0.5 * np.abs(np.diff(_y([[10, 0], [4, 6]]), axis=0)).sum())


def test_movement_follows_fractions_not_loads() -> None:
    # demand 10 -> 20 with the same split (5, 5) -> (10, 10): fractions equal, nothing moved
    m = movement(np.array([[10.0], [20.0]]), _y([[5, 5], [10, 10]]))
    np.testing.assert_allclose(m, [0.0, 0.0], atol=1e-12)
    # demand 10 -> 20, (10, 0) -> (10, 10): f0 = (1, 0), f1 = (0.5, 0.5);
    # M_1 = 20 * 0.5 * (0.5 + 0.5) = 10 (the 10 requests of slot 1 sent to b moved)
    m = movement(np.array([[10.0], [20.0]]), _y([[10, 0], [10, 10]]))
    np.testing.assert_allclose(m, [0.0, 10.0], atol=1e-12)


def test_movement_zero_demand_slot() -> None:
    # demand 10, 0, 10; (10, 0), (0, 0), (0, 10): f = (1, 0), (0, 0), (0, 1)
    # M_1 = 0 (no requests in slot 1); M_2 = 10 * 0.5 * (|0 - 0| + |1 - 0|) = 5
    d = np.array([[10.0], [0.0], [10.0]])
    y = _y([[10, 0], [0, 0], [0, 10]])
    np.testing.assert_allclose(movement(d, y), [0.0, 0.0, 5.0], atol=1e-12)
    f = routing_fractions(d, y)
    np.testing.assert_allclose(f[:, :, 0, 0], [[1, 0], [0, 0], [0, 1]])


def test_movement_two_regions_two_models() -> None:
    # 2 slots, 2 DCs, 2 regions, 2 models; demand r0: 8 -> 8, r1: 4 -> 2
    y = np.zeros((2, 2, 2, 2))
    y[0, 0, 0, 0] = 8  # r0: all at (a, m0)
    y[1, 0, 0, 0], y[1, 1, 0, 1] = 6, 2  # then 6 at (a, m0), 2 at (b, m1)
    y[0, 1, 1, 0] = 4  # r1: all at (b, m0)
    y[1, 0, 1, 1] = 2  # then all at (a, m1)
    d = np.array([[8.0, 4.0], [8.0, 2.0]])
    # r0: f (a,m0) 1 -> 0.75, (b,m1) 0 -> 0.25: 8 * 0.5 * (0.25 + 0.25) = 2
    # r1: f (b,m0) 1 -> 0, (a,m1) 0 -> 1: 2 * 0.5 * (1 + 1) = 2;  M_1 = 4
    np.testing.assert_allclose(movement(d, y), [0.0, 4.0], atol=1e-12)


def test_movement_single_slot_is_zero() -> None:
    np.testing.assert_array_equal(movement(np.array([[3.0]]), _y([[1, 2]])), [0.0])


# ----------------------------------------------------------------------------- objective
def test_objective_switching_cost_field() -> None:
    base = Objective(mu_carbon=0.1)
    sw = base.replace(switching_cost=0.5)
    assert sw.switching_cost == 0.5 and base.switching_cost == 0.0
    assert sw != base and hash(sw) != hash(base)
    assert "switching_cost" not in base.to_config()  # old configurations stay equal
    assert sw.to_config()["switching_cost"] == 0.5
    assert Objective.from_config(sw.to_config()) == sw
    assert Objective.from_config(base.to_config()) == base
    assert "0.5 USD/request x movement" in sw.describe()
    assert "movement" not in base.describe()
    assert sw.is_linear is False  # q = 2 terms: the switching cost does not change that
    assert Objective.uniform(1, switching_cost=1.0).is_linear
    n = Objective.normalized(3, 2, mu_carbon=0.2, switching_cost=0.3)
    assert n.with_q(math.inf).switching_cost == 0.3
    assert n.with_terms(mu_carbon=1.0).switching_cost == 0.3
    with pytest.raises(ValueError, match="switching_cost"):
        Objective(switching_cost=-1.0)
    with pytest.raises(ValueError, match="switching_cost"):
        Objective(switching_cost=math.inf)


# ----------------------------------------------------------------------------- evaluator
def test_evaluate_reports_movement_and_its_cost() -> None:
    sc = _line([[10.0], [10.0], [10.0]], [[0.1, 0.2], [0.3, 0.2], [0.1, 0.2]])
    # moves: slot 1: (10,0) -> (0,10): 10; slot 2: (0,10) -> (5,5): 5; total 15 requests
    d = Dispatch(_y([[10, 0], [0, 10], [5, 5]]), policy="hand")
    plain = evaluate(sc, d, Objective())
    priced = evaluate(sc, d, Objective(switching_cost=0.02))
    assert plain.summary["movement"]["requests"] == pytest.approx(15.0)
    assert plain.summary["movement"]["max_slot"] == pytest.approx(10.0)
    assert plain.summary["movement"]["cost_usd"] == 0.0
    np.testing.assert_allclose(priced.extra["movement_per_slot"], [0, 10, 5])
    assert priced.summary["movement"]["cost_usd"] == pytest.approx(0.3)  # 0.02 x 15
    # energy: 10 x 0.1 + 10 x 0.2 + (5 x 0.1 + 5 x 0.2) = 4.5 USD
    assert plain.objective == pytest.approx(4.5)
    assert priced.objective == pytest.approx(4.5 + 0.3)
    assert priced.to_dict()["summary"]["movement"]["requests"] == pytest.approx(15.0)


def test_every_policy_scored_with_the_switching_cost() -> None:
    rng = np.random.default_rng(3)
    sc = random_scenario(rng, 4, 3, 2, 2)
    obj = Objective.uniform(1, mu_carbon=0.05, switching_cost=0.01)
    d = make_policy("energy", obj, model_rule="free").plan(sc)
    ev = evaluate(sc, d, obj)
    ev0 = evaluate(sc, d, obj.replace(switching_cost=0.0))
    moved = movement(sc, np.asarray(d.y)).sum()
    assert moved > 0
    assert ev.objective == pytest.approx(ev0.objective + 0.01 * moved, rel=1e-12)


# ----------------------------------------------------------------------------- reference
def _reference_lp(sc: Scenario, obj: Objective) -> tuple[float, np.ndarray]:
    """Independent LP of energy + sum_b mu_b ||v_b||_q (q in {1, inf}) + sigma * movement,
    on the dense y; returns (optimum [USD], y)."""
    T, N, J, K = sc.shape
    d = np.asarray(sc.demand, float)
    pue = np.broadcast_to(np.asarray(sc.pue, float), (T, N))
    eps = np.asarray(sc.energy_per_request, float)
    energy = (pue * np.asarray(sc.price))[:, :, None] * eps[None]  # (T, N, K) USD/request
    carbon = (np.asarray(sc.carbon_intensity) * pue)[:, :, None] * eps[None]
    water = (np.asarray(sc.wue) + pue * np.asarray(sc.ewif))[:, :, None] * eps[None]
    s = np.asarray(sc.quality_loss, float)
    tot = d.sum(axis=0)
    quality = s[None, :] / tot[:, None]  # (J, K), average loss per request
    allowed = np.asarray(sc.allowed, bool)

    ny = T * N * J * K
    idx = np.arange(ny).reshape(T, N, J, K)
    cols: list[float] = []  # objective coefficients, grown as variables are added
    cost = np.broadcast_to(energy[:, :, None, :], (T, N, J, K)).ravel().copy()
    cols.extend(cost)
    a_ub: list[dict[int, float]] = []
    b_ub: list[float] = []
    a_eq: list[dict[int, float]] = []
    b_eq: list[float] = []

    def new_var(c: float) -> int:
        cols.append(c)
        return len(cols) - 1

    for t in range(T):
        for j in range(J):  # demand served
            a_eq.append({int(idx[t, i, j, k]): 1.0 for i in range(N) for k in range(K)})
            b_eq.append(d[t, j])
        cap = np.asarray(sc.capacity)[t]
        for i in range(N):
            if sc.capacity_mode == "shared":
                r = np.asarray(sc.capacity_per_request)
                a_ub.append({int(idx[t, i, j, k]): r[k] for j in range(J) for k in range(K)})
                b_ub.append(float(cap[i]))
            else:
                for k in range(K):
                    a_ub.append({int(idx[t, i, j, k]): 1.0 for j in range(J)})
                    b_ub.append(float(cap[i, k]))
    # regional totals: sum -> linear; max -> epigraph variable
    vectors = {
        "carbon": [
            {
                int(idx[t, i, j, k]): carbon[t, i, k]
                for t in range(T)
                for j in range(J)
                for k in range(K)
            }
            for i in range(N)
        ],
        "water": [
            {
                int(idx[t, i, j, k]): water[t, i, k]
                for t in range(T)
                for j in range(J)
                for k in range(K)
            }
            for i in range(N)
        ],
        "social": [
            {
                int(idx[t, i, j, k]): quality[j, k]
                for t in range(T)
                for i in range(N)
                for k in range(K)
            }
            for j in range(J)
        ],
    }
    for name, rows in vectors.items():
        term = obj.terms[name]
        if term.mu == 0:
            continue
        if term.q == 1.0:
            for row in rows:
                for v, c in row.items():
                    cols[v] += term.mu * c
        else:
            assert math.isinf(term.q)
            z = new_var(term.mu)
            for row in rows:
                a_ub.append({**row, z: -1.0})
                b_ub.append(0.0)
    # switching: s >= |f_t - f_{t-1}|, cost sigma * 0.5 * d[t, j] * s
    sigma = obj.switching_cost
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d > 0)
    if sigma > 0:
        for t in range(1, T):
            for i in range(N):
                for j in range(J):
                    for k in range(K):
                        sv = new_var(sigma * 0.5 * d[t, j])
                        now, before = int(idx[t, i, j, k]), int(idx[t - 1, i, j, k])
                        for sign in (1.0, -1.0):
                            a_ub.append(
                                {now: sign * inv[t, j], before: -sign * inv[t - 1, j], sv: -1.0}
                            )
                            b_ub.append(0.0)
    nv = len(cols)

    def mat(rows: list[dict[int, float]]) -> sp.csr_matrix:
        r, c, v = [], [], []
        for n, row in enumerate(rows):
            for col, val in row.items():
                r.append(n)
                c.append(col)
                v.append(val)
        return sp.csr_matrix((v, (r, c)), shape=(len(rows), nv))

    bounds = [(0.0, None if allowed[i, j, k] else 0.0) for t, i, j, k in np.ndindex(T, N, J, K)]
    bounds += [(None, None)] * (nv - ny)
    res = linprog(
        np.asarray(cols),
        A_ub=mat(a_ub),
        b_ub=b_ub,
        A_eq=mat(a_eq),
        b_eq=b_eq,
        bounds=bounds,
        method="highs",
        options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10},
    )
    assert res.status == 0, res.message
    return float(res.fun), res.x[:ny].reshape(T, N, J, K)


CASES = [
    (11, 5, 3, 2, 2, False, 1.0, 0.02),
    (12, 4, 2, 3, 2, True, 1.0, 0.5),
    (15, 6, 3, 2, 2, False, math.inf, 0.05),
    (14, 5, 2, 2, 2, True, math.inf, 2.0),
]


@pytest.mark.parametrize(("seed", "T", "N", "J", "K", "per_model", "q", "sigma"), CASES)
def test_optimum_matches_independent_lp(
    seed: int, T: int, N: int, J: int, K: int, per_model: bool, q: float, sigma: float
) -> None:
    sc = random_scenario(np.random.default_rng(seed), T, N, J, K, per_model=per_model)
    obj = Objective.uniform(q, mu_carbon=0.05, mu_water=0.002, mu_social=0.5, switching_cost=sigma)
    ref, y_ref = _reference_lp(sc, obj)
    pol = make_policy("equitable", obj)
    assert isinstance(pol, EquitableOffline)  # routed to the cvxpy model
    d = pol.plan(sc)
    ev = evaluate(sc, d, obj)
    assert d.info.status == "optimal"
    assert ev.objective == pytest.approx(ref, rel=1e-6)
    assert d.info.objective == pytest.approx(ev.objective, rel=1e-12)
    # the certificate never exceeds the independent optimum
    assert d.info.dual_bound <= ref + 1e-9 * abs(ref)
    assert d.info.gap <= 1e-6
    # the independent LP's y scores the same under the evaluator (same objective)
    assert evaluate(sc, Dispatch(y_ref, policy="lp"), obj).objective == pytest.approx(ref, rel=1e-7)
    # the switching cost binds in every case: the optimum costs more than without it
    ref0, _ = _reference_lp(sc, obj.replace(switching_cost=0.0))
    assert ref > ref0 + 1e-6 * abs(ref0)
    # and without it the optimum moves at least as many requests
    d0 = EquitableOffline(objective=obj.replace(switching_cost=0.0)).plan(sc)
    assert movement(sc, np.asarray(d0.y)).sum() >= movement(sc, np.asarray(d.y)).sum() - 1e-6


def test_finite_q_is_certified() -> None:
    # q = 2 (Clarabel): not checked against linprog, but the certified gap closes and the
    # optimum is at most the objective of the q = 2 optimum without switching cost
    sc = random_scenario(np.random.default_rng(21), 5, 3, 2, 2)
    obj = Objective.uniform(2, mu_carbon=0.05, mu_water=0.002, mu_social=0.5, switching_cost=0.1)
    d = make_policy("equitable", obj).plan(sc)
    assert d.info.status == "optimal" and d.info.gap <= 1e-6
    d0 = make_policy("equitable", obj.replace(switching_cost=0.0)).plan(sc)
    assert evaluate(sc, d, obj).objective <= evaluate(sc, d0, obj).objective + 1e-6


@pytest.mark.parametrize("seed", [31, 32, 33])
def test_bound_valid_at_any_switching_prices(seed: int) -> None:
    # the relaxation is valid for every price: random (even huge, clipped) prices never
    # give a bound above the independent optimum
    rng = np.random.default_rng(seed)
    sc = random_scenario(rng, 4, 2, 2, 2)
    obj = Objective.uniform(1, mu_carbon=0.05, mu_social=0.5, switching_cost=0.3)
    ref, _ = _reference_lp(sc, obj)
    routes = Routes.of(sc)
    for scale in (0.01, 1.0, 1e6):
        lam = rng.normal(0.0, scale, (sc.n_time - 1, routes.size))
        extra = switching_prices(sc.demand, routes.j, lam, obj.switching_cost)
        assert lagrangian_bound(sc, obj, extra=extra) <= ref + 1e-9 * abs(ref)


def test_switching_prices_underestimate_movement() -> None:
    # sum_p c[t,p] y[t,p] <= sigma * movement(y) for every dispatch and every price
    rng = np.random.default_rng(5)
    sc = random_scenario(rng, 5, 3, 2, 2)
    routes = Routes.of(sc)
    sigma = 0.7
    d = np.asarray(sc.demand)
    for _ in range(20):
        x = rng.random((sc.n_time, routes.size))
        served = np.zeros((sc.n_time, len(sc.regions)))
        np.add.at(served.T, routes.j, x.T)
        x *= (d / served)[:, routes.j]  # every region's demand met
        y = routes.scatter(x, sc)
        lam = rng.normal(0.0, 5.0, (sc.n_time - 1, routes.size))
        c = switching_prices(d, routes.j, lam, sigma)
        assert float((c * x).sum()) <= sigma * movement(sc, y).sum() + 1e-9


# ----------------------------------------------------------------------------- behaviour
def test_large_switching_cost_freezes_a_feasible_constant_routing() -> None:
    # one region, constant demand, ample capacity; the cheaper site alternates:
    # energy alone follows the price (moves every slot), a large switching cost keeps one
    # split: the site cheapest over the horizon (a: 0.1+0.3+0.1+0.3 = 0.8 < b: 0.8 + 0.04)
    price = [[0.1, 0.21], [0.3, 0.21], [0.1, 0.21], [0.3, 0.21]]
    sc = _line([[10.0]] * 4, price)
    free = make_policy("equitable", Objective()).plan(sc)
    assert movement(sc, np.asarray(free.y)).sum() == pytest.approx(30.0, rel=1e-6)  # 3 x 10
    obj = Objective(switching_cost=100.0)
    d = make_policy("equitable", obj).plan(sc)
    assert d.info.status == "optimal"
    assert movement(sc, np.asarray(d.y)).sum() <= 1e-6
    ev = evaluate(sc, d, obj)
    assert ev.energy_cost == pytest.approx(10 * 0.8, rel=1e-7)  # all at a throughout
    # a small price keeps the moves: each move saves 0.09 USD/request > 0.01
    small = make_policy("equitable", Objective(switching_cost=0.01)).plan(sc)
    assert movement(sc, np.asarray(small.y)).sum() == pytest.approx(30.0, rel=1e-6)


def test_single_slot_with_switching_cost() -> None:
    sc = _line([[10.0]], [[0.1, 0.2]])
    d = make_policy("equitable", Objective(switching_cost=1.0)).plan(sc)
    assert d.info.status == "optimal"
    assert d.info.objective == pytest.approx(1.0)  # all 10 at a, 0.1 USD each


# ----------------------------------------------------------------------------- refusal
def test_structured_solvers_refuse_a_switching_cost() -> None:
    obj = Objective(mu_carbon=0.1, switching_cost=0.05)
    for factory, name in ((StructuredOffline, "structured"), (StreamingOffline, "streaming")):
        with pytest.raises(
            ValueError, match=f'switching_cost = 0.05.*the {name} solver.*"reference"'
        ):
            factory(objective=obj)
    # also when the objective is set after construction
    s = StructuredOffline()
    s.objective = obj
    sc = _line([[10.0], [10.0]], [[0.1, 0.2], [0.2, 0.1]])
    with pytest.raises(ValueError, match="couples consecutive slots"):
        s.plan(sc)
    st = StreamingOffline(backend="serial")
    st.objective = obj
    with pytest.raises(ValueError, match="couples consecutive slots"):
        st.solve(sc)
    # without a switching cost they still solve
    assert StructuredOffline(objective=obj.replace(switching_cost=0.0)).plan(sc).info.ok


def test_routing_and_best_model_rule_with_switching_cost() -> None:
    sc = random_scenario(np.random.default_rng(41), 4, 2, 2, 2)
    obj = Objective.uniform(math.inf, mu_carbon=0.05, mu_social=0.5, switching_cost=0.2)
    for name in ("equitable", "weighted", "eglb", "reference"):
        pol = make_policy(name, obj)
        assert isinstance(pol, EquitableOffline), name
        assert pol.objective.switching_cost == 0.2, name  # kept by with_q / with_terms
    assert not isinstance(
        make_policy("equitable", obj.replace(switching_cost=0.0)), EquitableOffline
    )
    # the "best" rule (per-slot quality floors) with a switching cost: certified, and never
    # worse on the priced objective than the same rule without the switching cost
    best = make_policy("equitable", obj, model_rule="best").plan(sc)
    assert best.info.status == "optimal"
    plain = make_policy("equitable", obj.replace(switching_cost=0.0), model_rule="best").plan(sc)
    assert evaluate(sc, best, obj).objective <= evaluate(sc, plain, obj).objective + 1e-9
