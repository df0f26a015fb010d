"""The public-health burden end to end, against an independent computation.

Health is the fourth burden of the registry (eqglb.burdens): ``H_i = sum_{t,j,k}
health_cost[t, i] * pue[t, i] * eps[i, k] * y[t, i, j, k]`` [USD] per data centre, charged
``mu_health ||H||_q_health``. Each solver path that a user reaches (the structured solver
behind ``equitable``, the streaming solver, the plain cvxpy ``reference``, the online
policies) is checked here against a cvxpy model written out from the formula above, with
its own variables over (time, datacenter, region, model), solved by Clarabel.
"""

from __future__ import annotations

import math

import cvxpy as cp
import numpy as np
import pytest

from eqglb.burdens import BURDENS
from eqglb.costs import Objective, coefficients, objective_value, regional_costs
from eqglb.online import simulate_online
from eqglb.policies import make_policy
from eqglb.simulate import evaluate
from eqglb.structured import StreamingOffline
from eqglb.testing import random_scenario

TIGHT = {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9, "max_iter": 500}


def _with_health(seed: int, T: int = 4, N: int = 3, J: int = 3, K: int = 2):
    rng = np.random.default_rng(seed)
    sc = random_scenario(rng, T, N, J, K)
    health = rng.uniform(0.0, 0.05, (T, N))  # USD/kWh of facility energy
    health[:, 0] *= 20.0  # one dirty grid: the health term has something to move
    return sc.replace(health_cost=health)


def _independent_optimum(sc, mu: dict[str, float], q: dict[str, float]) -> float:
    """The equitable optimum from the model's formulas, written out with cvxpy."""
    T, N, J, K = sc.shape
    allowed = np.asarray(sc.allowed, dtype=bool)
    pue, eps = np.asarray(sc.pue), np.asarray(sc.energy_per_request)
    y = [cp.Variable((N * J, K), nonneg=True) for _ in range(T)]
    cons = []
    energy = 0
    tot = {name: 0 for name in ("carbon", "water", "health")}
    quality = 0
    per_site = {
        "carbon": np.asarray(sc.carbon_intensity) * pue,
        "water": np.asarray(sc.wue) + pue * np.asarray(sc.ewif),
        "health": np.asarray(sc.health_cost) * pue,
    }
    served = np.asarray(sc.demand).sum(axis=0)
    s = np.asarray(sc.quality_loss)
    for t in range(T):
        closed = (~allowed.reshape(N * J, K)).astype(float)  # rows i * J + j
        cons.append(cp.multiply(y[t], closed) == 0)
        for j in range(J):
            rows = [i * J + j for i in range(N)]
            cons.append(cp.sum(y[t][rows, :]) == sc.demand[t, j])
        load = cp.hstack([cp.sum(y[t][i * J : (i + 1) * J, :], axis=0) for i in range(N)])  # (N*K,)
        use = np.asarray(sc.capacity_per_request)
        for i in range(N):
            cons.append(load[i * K : (i + 1) * K] @ use <= sc.capacity[t, i])
        price = (np.asarray(sc.price)[t] * pue[t])[:, None] * eps  # (N, K) USD/request
        energy = energy + load @ price.ravel()
        for name, f in per_site.items():
            g = (f[t][:, None] * eps).ravel()  # (N*K,)
            site_tot = cp.hstack(
                [load[i * K : (i + 1) * K] @ g[i * K : (i + 1) * K] for i in range(N)]
            )
            tot[name] = tot[name] + site_tot
        per_region = cp.hstack(
            [cp.sum(y[t][[i * J + j for i in range(N)], :], axis=0) @ s for j in range(J)]
        )
        quality = quality + per_region
    quality = cp.multiply(1.0 / served, quality)

    def norm(v, qq):
        return cp.sum(v) if qq == 1 else cp.max(v) if math.isinf(qq) else cp.pnorm(v, qq)

    obj = energy + mu["social"] * norm(quality, q["social"])
    for name in ("carbon", "water", "health"):
        if mu[name] > 0:
            obj = obj + mu[name] * norm(tot[name], q[name])
    prob = cp.Problem(cp.Minimize(obj), cons)
    prob.solve(solver="CLARABEL", **TIGHT)
    assert prob.status == "optimal", prob.status
    return float(prob.value)


def test_health_is_registered_and_its_coefficient_is_the_formula():
    assert list(BURDENS) == ["social", "carbon", "water", "health"]
    sc = _with_health(1)
    coef = coefficients(sc)
    want = (np.asarray(sc.health_cost) * np.asarray(sc.pue))[:, :, None] * np.asarray(
        sc.energy_per_request
    )[None]
    np.testing.assert_allclose(coef.health, want, rtol=1e-15)
    rng = np.random.default_rng(2)
    y = rng.uniform(0, 1, sc.shape) * np.asarray(sc.allowed)[None]
    H = np.einsum("tn,tn,nk,tnjk->n", sc.health_cost, sc.pue, sc.energy_per_request, y)
    np.testing.assert_allclose(regional_costs(coef, y).health, H, rtol=1e-12)


@pytest.mark.parametrize(
    ("seed", "q_health", "q_rest"),
    [(3, 2.0, 2.0), (4, math.inf, 1.0), (5, 1.0, math.inf), (6, 3.0, 2.0), (9, 1.5, 1.0)],
)
def test_every_offline_path_prices_health_like_the_independent_model(seed, q_health, q_rest):
    sc = _with_health(seed)
    mu = {"social": 5.0, "carbon": 0.05, "water": 0.002, "health": 3.0}
    q = {"social": q_rest, "carbon": q_rest, "water": q_rest, "health": q_health}
    obj = Objective(**{f"mu_{k}": v for k, v in mu.items()}, **{f"q_{k}": v for k, v in q.items()})
    ref = _independent_optimum(sc, mu, q)
    for name, pol in (
        ("equitable", make_policy("equitable", obj)),
        ("reference", make_policy("reference", obj)),
        ("streaming", StreamingOffline(objective=obj, workers=1, backend="serial")),
    ):
        d = pol.plan(sc)
        ev = evaluate(sc, d, obj)
        assert ev.feasibility.ok(1e-6), name
        # the scored objective (with health) is the independent optimum, to the gap
        assert ev.objective == pytest.approx(ref, rel=2e-5, abs=1e-9), name
        if d.info is not None and d.info.dual_bound is not None and name != "reference":
            assert d.info.dual_bound <= ref * (1 + 1e-7) + 1e-9, name


def test_pricing_health_moves_load_off_the_dirty_grid():
    sc = _with_health(7, T=6)
    base = Objective(mu_social=1.0, mu_carbon=0.0, mu_water=0.0, q_social=1.0)
    priced = base.replace(mu_health=50.0, q_health=math.inf)
    h0 = evaluate(sc, make_policy("equitable", base).plan(sc), priced)
    h1 = evaluate(sc, make_policy("equitable", priced).plan(sc), priced)
    worst0, worst1 = max(h0.health.values()), max(h1.health.values())
    assert worst1 < worst0 * 0.999
    assert h1.objective <= h0.objective * (1 + 1e-7)  # it is the optimum of that objective
    assert h1.summary["health"]["max"] == pytest.approx(worst1)
    assert h1.summary["totals"]["health"] == pytest.approx(sum(h1.health.values()))


@pytest.mark.parametrize("policy", ["online", "receding"])
def test_online_policies_account_health(policy):
    sc = _with_health(8, T=6)
    obj = Objective(mu_social=1.0, mu_carbon=0.02, mu_health=5.0, q_health=2.0)
    d = simulate_online(sc, make_policy(policy, obj))
    ev = evaluate(sc, d, obj)
    assert ev.feasibility.ok(1e-6)
    y = np.asarray(d.y)
    want = np.einsum("tn,tn,nk,tnjk->n", sc.health_cost, sc.pue, sc.energy_per_request, y)
    np.testing.assert_allclose(list(ev.health.values()), want, rtol=1e-10)
    expect = objective_value(obj, regional_costs(coefficients(sc), y))
    assert ev.objective == pytest.approx(expect, rel=1e-12)


def test_objective_config_round_trip_keeps_health_and_old_configs_equal():
    obj = Objective.normalized(3, 4, mu_social=2.0, mu_health=1.5, q_health="inf")
    cfg = obj.to_config()
    assert cfg["mu_health"] == obj.mu_health and cfg["q_health"] == "inf"
    assert Objective.from_config(cfg) == obj
    old = Objective(mu_social=1.0, mu_carbon=0.1)
    assert "mu_health" not in old.to_config()  # configs saved before health stay equal
    with pytest.raises(TypeError, match="mu_<burden>"):
        Objective(mu_noise=1.0)
    with pytest.raises(ValueError, match="mu_health"):
        Objective(mu_health=-1.0)
