"""Online policies with a switching cost and a hard per-slot change limit
(eqglb.online.switching, OnlineDMD(max_change=...), docs/switching.md).

The independent reference for one slot is an LP written here with scipy's linprog on the
dense routes (own movement and excess variables); the policy-level checks recompute the
movement and every region's change from the dispatch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from eqglb.builtin import builtin_scenario
from eqglb.costs import Objective
from eqglb.online import OnlineDMD, SlotSolver, simulate_online
from eqglb.online.switching import SwitchingSlotLP, check_change_limit
from eqglb.scenario import Scenario
from eqglb.simulate import evaluate, routing_fractions


def _reference(allowed, r, cost_dense, demand, cap, f_prev_dense, has_prev, sw, L):
    """(optimal cost incl. switching, least total excess) by linprog over dense routes.

    Solved in units where the largest cost and the largest demand are 1 (HiGHS's
    tolerances are absolute), then scaled back."""
    cs = max(float(np.abs(cost_dense).max()), sw)
    qs = float(demand.max())
    cost_dense, sw, demand, cap = cost_dense / cs, sw / cs, demand / qs, cap / qs
    N, J, K = allowed.shape
    idx = np.argwhere(allowed)  # (P, 3): i, j, k
    P = len(idx)
    c = cost_dense[idx[:, 0], idx[:, 1], idx[:, 2]]
    tgt = demand[idx[:, 1]] * f_prev_dense[idx[:, 0], idx[:, 1], idx[:, 2]]
    # variables: x (P), u (P) >= |x - tgt|, e (J) excess
    n = 2 * P + J
    A_eq = np.zeros((J, n))
    for p, (_, j, _) in enumerate(idx):
        A_eq[j, p] = 1.0
    A_ub, b_ub = [], []
    for i in range(N):  # shared capacity
        row = np.zeros(n)
        for p, (ii, _, k) in enumerate(idx):
            if ii == i:
                row[p] = r[k]
        A_ub.append(row)
        b_ub.append(cap[i])
    for p in range(P):
        row = np.zeros(n)
        row[p], row[P + p] = 1.0, -1.0
        A_ub.append(row)
        b_ub.append(tgt[p])  # x - u <= tgt
        row = np.zeros(n)
        row[p], row[P + p] = -1.0, -1.0
        A_ub.append(row)
        b_ub.append(-tgt[p])  # -x - u <= -tgt
    for j in range(J):
        if L is None or not has_prev[j]:
            continue
        row = np.zeros(n)
        for p, (_, jj, _) in enumerate(idx):
            if jj == j:
                row[P + p] = 0.5
        row[2 * P + j] = -1.0
        A_ub.append(row)
        b_ub.append(L * demand[j])
    A_ub, b_ub = np.array(A_ub), np.array(b_ub)
    e_ub = None if L is not None else 0.0
    bounds = [(0, None)] * (2 * P) + [(0, e_ub)] * J
    ph1 = linprog(
        np.r_[np.zeros(2 * P), np.ones(J)], A_ub, b_ub, A_eq, demand, bounds, method="highs"
    )
    assert ph1.status == 0
    e_star = ph1.fun
    A2 = np.vstack([A_ub, np.r_[np.zeros(2 * P), np.ones(J)]])
    b2 = np.r_[b_ub, e_star * (1 + 1e-9) + 1e-9]
    ph2 = linprog(
        np.r_[c, np.full(P, sw / 2), np.zeros(J)], A2, b2, A_eq, demand, bounds, method="highs"
    )
    assert ph2.status == 0
    x = ph2.x[:P]
    return float(c @ x + sw / 2 * np.abs(x - tgt).sum()) * cs * qs, e_star * qs


@pytest.mark.parametrize("seed", range(12))
def test_slot_lp_equals_an_independent_lp(seed: int) -> None:
    rng = np.random.default_rng(seed)
    N, J, K = int(rng.integers(2, 4)), int(rng.integers(2, 5)), int(rng.integers(1, 3))
    allowed = rng.random((N, J, K)) < 0.7
    allowed[0, :, 0] = True  # every region has a route
    mag_d = 10.0 ** rng.uniform(-2, 6)
    mag_c = 10.0 ** rng.uniform(-8, 2)
    demand = rng.uniform(0.1, 1.0, J) * mag_d
    r = rng.uniform(0.5, 2.0, K)
    tight = seed % 3 == 0  # capacity that forces change beyond the limit
    cap = rng.uniform(0.3, 1.0, N) * demand.sum() * r.max() * (0.6 if tight else 3.0)
    cap[0] = max(cap[0], demand.sum() * r.max() * 1.01)  # always feasible
    f = rng.random((N, J, K)) * allowed
    f /= f.sum(axis=(0, 2), keepdims=True)
    has_prev = rng.random(J) < 0.8
    f[:, ~has_prev, :] = 0.0
    cost = rng.uniform(0.1, 1.0, (N, J, K)) * mag_c
    sw = [0.0, 0.3, 3.0][seed % 3] * mag_c
    L = [None, 0.0, 0.1, 0.5][seed % 4]
    rt = SlotSolver(allowed, r, "shared")
    lp = SwitchingSlotLP(rt, sw, L)
    sol = lp.solve(rt.gather(cost), demand, cap, rt.gather(f), has_prev)
    want, e_star = _reference(allowed, r, cost, demand, cap, f, has_prev, sw, L)
    x = sol.x
    tgt = demand[rt.j] * rt.gather(f)
    got = float(rt.gather(cost) @ x + sw / 2 * np.abs(x - tgt).sum())
    assert got == pytest.approx(want, rel=1e-7, abs=1e-9 * mag_c * mag_d)
    assert sol.moved == pytest.approx(0.5 * np.abs(x - tgt).sum(), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(np.bincount(rt.j, x, minlength=J), demand, rtol=1e-9)
    assert (rt.used(x) <= cap * (1 + 1e-7)).all()
    assert (x >= 0).all()
    assert sol.excess.sum() == pytest.approx(e_star, rel=1e-6, abs=1e-7 * mag_d)
    if L is not None:  # each region's change within the limit plus its reported excess
        per = 0.5 * np.bincount(rt.j, np.abs(x - tgt), minlength=J)
        ok = per <= L * demand + sol.excess + 1e-7 * mag_d
        assert ok[has_prev].all()


def test_change_limit_values() -> None:
    assert check_change_limit(None) is None
    assert check_change_limit(0) == 0.0
    assert check_change_limit(0.25) == 0.25
    for bad in (-0.1, 1.5, float("nan"), "0.2", True):
        with pytest.raises(ValueError, match="max_change"):
            check_change_limit(bad)
    with pytest.raises(ValueError, match="max_change"):
        OnlineDMD(max_change=2.0)


def _region_change(sc: Scenario, y: np.ndarray) -> np.ndarray:
    """(T-1, J) total-variation distance of each region's split between slots [-]."""
    f = routing_fractions(sc.demand, y)  # (T, N, J, K)
    return 0.5 * np.abs(np.diff(f, axis=0)).sum(axis=(1, 3))


def test_change_limit_holds_on_the_builtin_scenario() -> None:
    sc = builtin_scenario(days=3)
    free = simulate_online(sc, OnlineDMD())
    assert _region_change(sc, free.y).max() > 0.5  # the unlimited policy jumps
    for L in (0.0, 0.05, 0.3):
        pol = OnlineDMD(max_change=L)
        d = simulate_online(sc, pol)
        stats = pol.run_stats()["change_limit"]
        assert stats["slots_over"] == 0
        assert _region_change(sc, d.y).max() <= L + 1e-9
        ev = evaluate(sc, d)
        assert stats["moved_requests"] == pytest.approx(
            ev.summary["movement"]["requests"], rel=1e-9, abs=1e-12 * sc.demand.sum()
        )
    zero = simulate_online(sc, OnlineDMD(max_change=0.0))
    f = routing_fractions(sc.demand, zero.y)
    np.testing.assert_allclose(f, np.broadcast_to(f[:1], f.shape), atol=1e-9)


def _drop(T: int = 6) -> Scenario:
    """2 data centres, 1 region: 'a' is cheap but its capacity falls to 10% at slot 3."""
    cap_a = [100.0, 100.0, 100.0, 10.0, 10.0, 10.0][:T]
    return Scenario(
        datacenters=["a", "b"],
        regions=["r"],
        models=["m"],
        time=pd.date_range("2022-01-01", periods=T, freq="h"),
        demand=[[50.0]] * T,
        price=[[0.1, 0.2]] * T,
        carbon_intensity=[[0.3, 0.3]] * T,
        wue=[[0.0, 0.0]] * T,
        ewif=[[0.0, 0.0]] * T,
        pue=[1.0, 1.0],
        energy_per_request=[[1.0], [1.0]],
        capacity_per_request=[1.0],
        capacity=[[c, 100.0] for c in cap_a],
        quality_loss=[0.0],
        home=["a"],
        name="drop",
    )


def test_capacity_forced_change_is_the_least_and_reported() -> None:
    sc = _drop()
    obj = Objective(mu_carbon=0.0, mu_water=0.0, mu_social=0.0)
    pol = OnlineDMD(objective=obj, max_change=0.2)
    d = simulate_online(sc, pol)
    y = d.y[:, :, 0, 0]  # (T, 2)
    np.testing.assert_allclose(y[:3], [[50, 0]] * 3, atol=1e-9)
    # slot 3: a holds 10 at most, so 40 of 50 requests (80%) must move; the limit 20%
    np.testing.assert_allclose(y[3], [10, 40], atol=1e-7)
    stats = pol.run_stats()["change_limit"]
    assert stats["slots_over"] == 1
    assert stats["excess_requests"] == pytest.approx(40 - 0.2 * 50, rel=1e-9)


def test_switching_cost_online_trades_movement_for_cost() -> None:
    sc = builtin_scenario(days=3)
    base = Objective()
    moved, totals = [], []
    for sw in (0.0, 1e-7, 1e-6, 1e-5):
        obj = base.replace(switching_cost=sw)
        d = simulate_online(sc, OnlineDMD(objective=obj))
        ev = evaluate(sc, d, obj)
        moved.append(ev.summary["movement"]["requests"])
        totals.append(evaluate(sc, d, base.replace(switching_cost=1e-6)).objective)
    assert all(a > b for a, b in zip(moved, moved[1:], strict=False))  # strictly fewer moves
    assert moved[-1] < 0.05 * moved[0]
    # scored at 1e-6 USD/request moved, pricing it (index 2) beats ignoring it (index 0)
    assert totals[2] < totals[0]


@pytest.mark.parametrize("kind", ["switching", "limit"])
def test_resumed_policy_decides_alike(kind: str) -> None:
    sc = builtin_scenario(days=2)
    kw = (
        {"objective": Objective().replace(switching_cost=1e-6)}
        if kind == "switching"
        else {"max_change": 0.1}
    )
    whole = simulate_online(sc, OnlineDMD(**kw))
    first = OnlineDMD(**kw)
    part = simulate_online(sc, first, stop=20)
    state = first.state()
    assert "previous_fractions" in state
    rest = simulate_online(sc, OnlineDMD(**kw), state=state)  # resumes at slot 20
    assert part.y.shape[0] == 20 and rest.y.shape[0] == sc.n_time - 20
    np.testing.assert_array_equal(part.y, whole.y[:20])
    np.testing.assert_array_equal(rest.y, whole.y[20:])
    assert np.abs(whole.y[20:]).sum() > 0


def test_state_without_fractions_is_refused() -> None:
    sc = builtin_scenario(days=1)
    plain = OnlineDMD()
    simulate_online(sc.slice_time(0, 5), plain)
    smooth = OnlineDMD(max_change=0.1)
    with pytest.raises(Exception, match="previous routing fractions"):
        smooth.load_state(plain.state())


# ----------------------------------------------------------------------------- receding
def _priced(sc: Scenario, obj: Objective) -> Objective:
    """``obj`` with a switching cost of the order of the mean cost per request."""
    from eqglb.policies import EquitableOffline

    ev = evaluate(sc, EquitableOffline(obj).plan(sc), obj)
    return obj.replace(switching_cost=2.0 * ev.objective / float(np.sum(sc.demand)))


@pytest.mark.parametrize("seed", [0, 3])
def test_receding_with_perfect_forecasts_reaches_the_switching_optimum(seed: int) -> None:
    """window >= T and true future values: the window model's movement is the offline
    movement, so the committed decisions attain the certified offline optimum with the
    switching cost."""
    from eqglb.online import RecedingHorizon
    from eqglb.policies import EquitableOffline
    from eqglb.testing import random_scenario
    from tests.online.test_online_receding import OBJ_INF

    sc = random_scenario(np.random.default_rng(seed), 8, 3, 3, 2)
    base = OBJ_INF  # every term at q = inf: the window and offline models are LPs
    obj = _priced(sc, base)
    plan = EquitableOffline(obj).plan(sc)
    assert plan.info.status == "optimal"
    opt = evaluate(sc, plan, obj)
    free = evaluate(sc, EquitableOffline(base).plan(sc), obj)
    assert opt.summary["movement"]["requests"] < 0.9 * free.summary["movement"]["requests"]
    d = simulate_online(sc, RecedingHorizon(obj, window=sc.n_time, forecaster="perfect"))
    ev = evaluate(sc, d, obj)
    assert ev.feasibility.ok(1e-6)
    assert ev.objective == pytest.approx(opt.objective, rel=1e-6)


def test_receding_with_switching_resumes_alike() -> None:
    from eqglb.online import RecedingHorizon

    sc = builtin_scenario(days=1)
    obj = Objective().replace(switching_cost=1e-6)
    whole = simulate_online(sc, RecedingHorizon(obj, window=4))
    first = RecedingHorizon(obj, window=4)
    simulate_online(sc, first, stop=10)
    state = first.state()
    assert len(state["previous_fractions"]) == int(np.sum(sc.allowed))
    rest = simulate_online(sc, RecedingHorizon(obj, window=4), state=state)
    np.testing.assert_array_equal(rest.y, whole.y[10:])
    plain = simulate_online(sc, RecedingHorizon(Objective(), window=4))
    moved = [evaluate(sc, x).summary["movement"]["requests"] for x in (whole, plain)]
    assert moved[0] < moved[1]
