"""Structured (Dantzig-Wolfe) solver: hand fixture, agreement with the reference cvxpy path,
feasibility, certified gaps, and its two building blocks checked independently."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from eqglb.costs import Objective, coefficients, objective_value, regional_costs
from eqglb.policies import EquitableOffline, make_policy
from eqglb.policies.problem import Routes
from eqglb.simulate import check_feasibility, evaluate
from eqglb.structured import StructuredOffline, coupling_of, slot_lps
from eqglb.structured.master import ColumnPool, solve_master
from eqglb.testing import random_scenario, two_site_scenario

QS = [1.0, 2.0, 3.0, math.inf]
#: Clarabel's default tolerances leave the reference about 1e-6 off at q = 3 on some
#: instances (checked against SCS at 1e-9); tighten them so the reference is a reference.
TIGHT = dict(tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11, tol_ktratio=1e-9)


def _objective(sc, obj, y):
    return objective_value(
        obj, regional_costs(coefficients(sc, social_average=obj.social_average), y)
    )


def _check(sc, obj, tol=1e-7):
    """Structured vs reference: same optimum (1e-6), feasible, certified gap in [0, tol]."""
    d = StructuredOffline(obj, tol=tol).plan(sc)
    ref = EquitableOffline(obj, solver_options={} if obj.is_linear else TIGHT).plan(sc)
    v, v_ref = _objective(sc, obj, d.y), _objective(sc, obj, ref.y)
    assert v == pytest.approx(v_ref, rel=1e-6, abs=1e-7)
    assert check_feasibility(sc, d.y).ok(1e-8)
    info = d.info
    assert info.status == "optimal"
    assert info.objective == pytest.approx(v, rel=1e-12)  # recomputed, same evaluator
    gap = info.extra["gap"]
    assert -1e-12 <= gap <= tol
    assert info.dual_bound <= v + 1e-9 * max(1.0, abs(v))
    # the bound is a bound: no feasible dispatch (here the reference's) beats it
    assert info.dual_bound <= v_ref + 1e-9 * max(1.0, abs(v_ref))
    return d


# --------------------------------------------------------------------------- hand fixture
@pytest.mark.parametrize(
    "q, x_a, cost", [(math.inf, 5 / 3, 8 / 3), (1.0, 0.0, 3.0), (2.0, 10 / 13, 38 / 13)]
)
def test_hand_fixture(q, x_a, cost):
    """Two sites a, b; one region with 10 requests; 1 kWh/request; PUE 1; capacity 10 each.

    Prices 0.1 and 0.2 USD/kWh, carbon 0.5 and 0.1 kg/kWh, mu_c = 1 USD/kg. With x requests
    at a: energy = 2 - 0.1 x, C = (0.5 x, 1 - 0.1 x).

    * q = inf: 2 - 0.1x + max(0.5x, 1 - 0.1x) is least where the max switches, x = 5/3,
      cost 8/3 (the slot LP alone would put everything at one site: the optimum is a
      convex combination of two columns).
    * q = 1: 3 + 0.3x, x = 0, cost 3.
    * q = 2: 2 - 0.1x + sqrt(0.26x^2 - 0.2x + 1); stationarity gives x = 10/13, cost 38/13.
    """
    sc = two_site_scenario()
    obj = Objective(mu_carbon=1.0, q_carbon=q)
    d = StructuredOffline(obj, tol=1e-9).plan(sc)
    assert d.y[0, 0, 0, 0] == pytest.approx(x_a, abs=1e-6 if q != 2 else 1e-3)
    assert d.y[0, :, 0, 0].sum() == pytest.approx(10.0, rel=1e-12)
    assert evaluate(sc, d, obj).objective == pytest.approx(cost, rel=1e-8)
    assert d.info.dual_bound == pytest.approx(cost, rel=1e-8)


# --------------------------------------------------------------------------- vs reference
@pytest.mark.parametrize("q", QS)
@pytest.mark.parametrize("per_model", [False, True])
def test_matches_reference(q, per_model):
    rng = np.random.default_rng(11 + int(per_model) + (7 if math.isinf(q) else int(q)))
    sc = random_scenario(rng, T=12, N=3, J=4, K=3, per_model=per_model)
    obj = Objective.uniform(q, mu_social=4.0, mu_carbon=0.6, mu_water=0.04)
    _check(sc, obj)


def test_matches_reference_mixed_orders_and_switches():
    """Different q per term, combined environmental norm, quality as totals."""
    rng = np.random.default_rng(5)
    sc = random_scenario(rng, T=10, N=4, J=3, K=2)
    for obj in (
        Objective(
            mu_social=3.0,
            mu_carbon=0.5,
            mu_water=0.05,
            q_social=math.inf,
            q_carbon=2.0,
            q_water=3.0,
        ),
        Objective(
            mu_social=2.0,
            mu_carbon=0.5,
            mu_water=0.05,
            q_social=2.0,
            q_carbon=math.inf,
            combined_environment=True,
        ),
        Objective(mu_social=0.02, mu_carbon=0.5, q_social=2.0, q_carbon=1.5, social_average=False),
    ):
        _check(sc, obj)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    q=st.sampled_from(QS),
    T=st.integers(1, 4),
    N=st.integers(1, 3),
    J=st.integers(1, 3),
    K=st.integers(1, 3),
)
def test_matches_reference_random(seed, q, T, N, J, K):
    sc = random_scenario(np.random.default_rng(seed), T, N, J, K, per_model=bool(seed % 2))
    obj = Objective.uniform(q, mu_social=3.0, mu_carbon=0.7, mu_water=0.03)
    _check(sc, obj)


@pytest.mark.parametrize("q", [2.0, math.inf])
def test_long_horizon_with_sampled_warm_start(q):
    """T >= 96 slots: the solve starts from prices of a sampled problem; same optimum."""
    rng = np.random.default_rng(17)
    sc = random_scenario(rng, T=120, N=3, J=3, K=2)
    obj = Objective.uniform(q, mu_social=4.0, mu_carbon=0.6, mu_water=0.04)
    d = _check(sc, obj)
    assert d.info.extra["warm_start_slots"] < 120


def test_registered_policy_and_bound_below_baselines():
    rng = np.random.default_rng(3)
    sc = random_scenario(rng, T=8, N=3, J=3, K=2)
    obj = Objective.uniform(2, mu_social=3.0, mu_carbon=0.6, mu_water=0.04)
    d = make_policy("structured", obj, tol=1e-8).plan(sc)
    assert d.policy == "structured"
    for name in ("energy", "carbon", "water", "weighted", "eglb"):
        other = make_policy(name, obj).plan(sc)
        assert d.info.dual_bound <= _objective(sc, obj, other.y) + 1e-9


def test_linear_objective_is_one_pass():
    """q = 1 everywhere: no coupling block, the slot LPs alone are the problem."""
    rng = np.random.default_rng(8)
    sc = random_scenario(rng, T=6, N=3, J=3, K=2)
    d = _check(sc, Objective.uniform(1, mu_social=2.0, mu_carbon=0.5, mu_water=0.05))
    assert d.info.extra["iterations"] == 0


def test_bad_options():
    with pytest.raises(ValueError, match="tol"):
        StructuredOffline(Objective(), tol=0.0)
    with pytest.raises(ValueError, match="smoothing"):
        StructuredOffline(Objective(), smoothing=1.0)
    with pytest.raises(ValueError, match="max_iter"):
        StructuredOffline(Objective(), max_iter=0)


def test_iteration_limit_reports_certified_gap():
    """Stopped early, the dispatch is still feasible and the gap is honest (>= 0)."""
    rng = np.random.default_rng(21)
    sc = random_scenario(rng, T=24, N=4, J=5, K=3)
    obj = Objective.uniform(math.inf, mu_social=4.0, mu_carbon=0.6, mu_water=0.04)
    d = StructuredOffline(obj, tol=1e-12, max_iter=1).plan(sc)
    assert check_feasibility(sc, d.y).ok(1e-8)
    v = _objective(sc, obj, d.y)
    assert d.info.dual_bound <= v
    best = EquitableOffline(obj).plan(sc)
    assert d.info.dual_bound <= _objective(sc, obj, best.y) + 1e-9
    if d.info.status != "optimal":
        assert d.info.extra["gap"] > 1e-12


# --------------------------------------------------------------------------- building blocks
@pytest.mark.parametrize("per_model", [False, True])
def test_slot_lps_match_linprog(per_model):
    """Batched simplex: optimal value of every slot LP equals scipy's HiGHS, the vertex is
    feasible, the bound is below it, and a warm start after a cost change stays exact."""
    rng = np.random.default_rng(2 + int(per_model))
    sc = random_scenario(rng, T=15, N=4, J=5, K=3, per_model=per_model)
    routes = Routes.of(sc)
    lps = slot_lps(sc, routes)
    T = sc.n_time
    for trial in range(2):
        cost = rng.uniform(0.1, 2.0, (T, routes.size))
        sol = lps.solve(np.arange(T), cost)
        for t in range(T):
            x = np.zeros(routes.size)
            m = sol.routes[t] >= 0
            x[sol.routes[t][m]] = sol.values[t][m]
            a_eq = np.zeros((sc.shape[2], routes.size))
            a_eq[routes.j, np.arange(routes.size)] = 1.0
            if per_model:
                K = sc.shape[3]
                a_ub = np.zeros((sc.shape[1] * K, routes.size))
                a_ub[routes.i * K + routes.k, np.arange(routes.size)] = 1.0
                b_ub = sc.capacity[t].ravel()
            else:
                a_ub = np.zeros((sc.shape[1], routes.size))
                a_ub[routes.i, np.arange(routes.size)] = sc.capacity_per_request[routes.k]
                b_ub = sc.capacity[t]
            ref = linprog(
                cost[t], A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=sc.demand[t], method="highs"
            )
            assert ref.status == 0
            assert sol.value[t] == pytest.approx(ref.fun, rel=1e-9, abs=1e-9), (trial, t)
            assert sol.bound[t] <= sol.value[t] + 1e-12
            assert sol.bound[t] == pytest.approx(ref.fun, rel=1e-9, abs=1e-9)
            assert np.abs(a_eq @ x - sc.demand[t]).max() <= 1e-9 * max(1, sc.demand[t].max())
            assert (a_ub @ x - b_ub).max() <= 1e-9 * max(1.0, b_ub.max())
            assert x.min() >= 0


def _master_setup(rng, q, T, J):
    """A random scenario, its coupling at norm order q, slot LPs, an empty pool, slots."""
    sc = random_scenario(rng, T=T, N=3, J=J, K=3)
    obj = Objective.uniform(q, mu_social=4.0, mu_carbon=0.6, mu_water=0.04)
    routes = Routes.of(sc)
    cp = coupling_of(obj, coefficients(sc), routes.i, routes.j, routes.k, sc.shape[1], sc.shape[2])
    lps = slot_lps(sc, routes)
    return sc, cp, lps, ColumnPool(sc.n_time, lps.m, cp.size), np.arange(sc.n_time)


@pytest.mark.parametrize("q", [2.0, 3.0, math.inf])
def test_structured_master_matches_clarabel(q):
    """The structured interior-point master reaches Clarabel's optimum on the same columns."""
    rng = np.random.default_rng(4)
    sc, cp, lps, pool, slots = _master_setup(rng, q, T=10, J=4)
    for it in range(4):  # columns from a few random price vectors
        gamma = cp.project([b.weight * rng.uniform(0, 1, b.size) for b in cp.blocks])
        pool.add(cp, lps.solve(slots, cp.prices(slots, gamma)), slots, it)
    a = solve_master(pool, cp, method="clarabel")
    b = solve_master(pool, cp, method="ipm")
    assert b.value == pytest.approx(a.value, rel=1e-7)
    # lam are convex weights per slot
    assert np.allclose(np.bincount(pool.slot, b.lam), 1.0)
    assert (b.lam >= 0).all()


def test_warm_highs_master_matches_cold_through_adds_and_deletes():
    """The persistent simplex master (columns appended, forgotten ones deleted, re-solved
    from its basis) reaches the optimum a fresh HiGHS solve reaches on the same pool."""
    from eqglb.structured.master import HighsMaster, solve_master_highs

    rng = np.random.default_rng(11)
    sc, cp, lps, pool, slots = _master_setup(rng, math.inf, T=12, J=5)
    warm = HighsMaster(cp)
    for it in range(6):
        gamma = cp.project([b.weight * rng.uniform(0, 1, b.size) for b in cp.blocks])
        pool.add(cp, lps.solve(slots, cp.prices(slots, gamma)), slots, it)
        a, b = warm.solve(pool), solve_master_highs(pool, cp)
        assert a.value == pytest.approx(b.value, rel=1e-9)
        assert np.allclose(np.bincount(pool.slot, a.lam, minlength=sc.n_time), 1.0)
        # the value is the pool's combination, recomputed
        u = np.asarray(pool.a.T @ a.lam).ravel()
        assert a.value == pytest.approx(float(pool.f @ a.lam) + cp.regularizer(u), rel=1e-12)
        if it % 2:  # forget a random third of the columns that carry no weight
            keep = (a.lam > 1e-9) | (rng.uniform(size=len(pool)) > 0.33)
            pool.keep(keep)
            warm.keep(keep)
    with pytest.raises(ValueError, match="q = inf"):
        HighsMaster(_master_setup(rng, 2.0, T=2, J=2)[1])


@pytest.mark.parametrize("seed", [0, 1])
def test_simplex_master_option_matches_reference(seed):
    rng = np.random.default_rng(40 + seed)
    sc = random_scenario(rng, T=16, N=3, J=4, K=2)
    obj = Objective.uniform(math.inf, mu_social=3.0, mu_carbon=0.5, mu_water=0.05)
    d = StructuredOffline(obj, tol=1e-7, master="highs").plan(sc)
    ref = EquitableOffline(obj).plan(sc)
    assert d.info.status == "optimal"
    assert _objective(sc, obj, d.y) == pytest.approx(_objective(sc, obj, ref.y), rel=1e-6)
    assert d.info.dual_bound <= _objective(sc, obj, ref.y) * (1 + 1e-9)
