"""The fast paths of the online per-slot decision give the bits of the paths they replace,
and the decisions stay deterministic and resumable (benchmarks/bench_online_slot.py).

* q = inf projection: the Python-float path against the array path, bit for bit;
* the slot solver's greedy check, solution read-back and scatter against the code they
  replaced (kept here as references);
* HiGHS's ``threads`` option: a wrong guess falls back to HiGHS's default and solves the
  same slot to the same bits;
* OnlineDMD on the built-in scenario at 10 x 10 x 4: the decisions equal those with the
  projection's array path, two fresh runs agree bit for bit, and a run resumed from JSON
  state repeats the uninterrupted one.
"""

from __future__ import annotations

import math

import highspy
import numpy as np
import pytest

from eqglb.builtin import builtin_scenario
from eqglb.cli import default_mu_social
from eqglb.costs import Objective
from eqglb.online import (
    OnlineDMD,
    SlotSolver,
    load_state,
    restore_policy,
    save_state,
    simulate_online,
)
from eqglb.online import projection as pr
from eqglb.online import slot_solver as ss


# --------------------------------------------------------------------------- projection
def _inf_cases(seed: int, count: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n = int(rng.integers(1, 140))  # past the Python path's 128 as well
        v = rng.normal(size=n) * 10.0 ** rng.uniform(-8, 8)
        if rng.random() < 0.3:
            v[rng.random(n) < 0.3] = 0.0
        if rng.random() < 0.15:
            v[:] = abs(v[0])  # ties everywhere: the sort's stability decides the order
        eta = 10.0 ** rng.uniform(-6, 6, n)
        if rng.random() < 0.3:
            eta[:] = eta[0]
        yield v, eta, 10.0 ** rng.uniform(-12, 5)


def test_inf_projection_python_path_is_the_array_path_bit_for_bit():
    assert pr._pairwise_sum_is_numpys()
    used = 0
    for v, eta, mu in _inf_cases(7, 4000):
        u = np.maximum(v, 0.0)
        ref = pr._project_inf(u, eta, mu)
        got = pr.project_dual(v, eta, mu, math.inf)
        used += pr._project_inf_py(u, eta, mu) is not None
        assert got.shape == ref.shape and got.dtype == ref.dtype
        assert got.tobytes() == ref.tobytes()
    assert used > 3000  # the Python path did the work


def test_inf_projection_edge_cases_fall_back_to_the_array_path():
    u = np.array([1e300, 1.0, 0.0])
    eta = np.ones(3)
    # mu below the round-off of the top price: the array path's branch
    assert pr._project_inf_py(u, eta, 1e-300) is None
    np.testing.assert_array_equal(pr.project_dual(u, eta, 1e-300, math.inf), [1e-300, 0, 0])
    nan = np.array([np.nan, 1.0])
    assert pr._project_inf_py(nan, np.ones(2), 1.0) is None
    inside = np.array([0.1, 0.2])
    assert pr._project_inf_py(inside, np.ones(2), 1.0) is inside  # no projection needed


# --------------------------------------------------------------------------- slot solver
def _old_greedy(s: SlotSolver, c, d, cap):
    """The greedy path as first written (the reference of the fast one)."""
    pad = np.full(s._pad_shape, np.inf)
    pad[s.j, s._pos] = c
    best = np.argmin(pad, axis=1)
    x = np.zeros(s.n_routes)
    sel = np.flatnonzero(s._pos == best[s.j])
    x[sel] = d[s.j[sel]]
    return x if np.all(s.used(x) <= cap * (1.0 + 1e-12)) else None


def _instance(rng, N, J, K, per_model, dense):
    allowed = np.ones((N, J, K), bool) if dense else rng.random((N, J, K)) < 0.5
    for j in range(J):
        allowed[rng.integers(N), j, rng.integers(K)] = True
    r = rng.uniform(0.5, 2.0, K)
    d = rng.uniform(1.0, 100.0, J)
    if rng.random() < 0.3:
        d[rng.integers(J)] = 0.0
    c = rng.normal(size=(N, J, K))
    if rng.random() < 0.3:
        c = np.round(c, 1)  # ties
    scale = rng.choice([0.3, 1.0, 5.0])  # binding or slack capacity
    cap = (np.full((N, K), d.sum() / (N * K)) if per_model else np.full(N, d.sum() / N)) * scale
    return allowed, r, d, c, cap


@pytest.mark.parametrize("per_model", [False, True])
@pytest.mark.parametrize("dense", [False, True])
def test_greedy_and_highs_read_back_match_the_replaced_code(per_model, dense):
    rng = np.random.default_rng(11 + 2 * per_model + dense)
    mode = "per_model" if per_model else "shared"
    greedy_seen = highs_seen = 0
    for _ in range(60):
        N, J, K = (int(x) for x in rng.integers(1, 6, 3))
        allowed, r, d, c, cap = _instance(rng, N, J, K, per_model, dense)
        s = SlotSolver(allowed, r, mode)
        cr = s.gather(c)
        old = _old_greedy(s, cr, d, cap.reshape(-1))
        try:
            x, method = s.solve_routes(cr, d, cap)
        except ss.SolveError:
            assert old is None
            continue
        if old is not None:
            assert method == "greedy" and x.tobytes() == old.tobytes()
            greedy_seen += 1
            continue
        assert method == "highs"
        highs_seen += 1
        # the read-back as first written, from the same (just solved) HiGHS instance
        qscale = max(float(d.max(initial=0.0)), float(cap.max(initial=0.0)), 1e-300)
        xr = np.clip(np.asarray(s._h.getSolution().col_value, dtype=float), 0.0, None) * qscale
        served = np.bincount(s.j, weights=xr, minlength=J)
        fac = np.divide(d, served, out=np.zeros_like(d), where=served > 0)
        assert x.tobytes() == (xr * fac[s.j]).tobytes()
        y = np.zeros((N, J, K))
        y[s.i, s.j, s.k] = x
        assert s.scatter(x).tobytes() == y.tobytes()
    assert greedy_seen and highs_seen


def _threads_option(h) -> int:
    v = h.getOptionValue("threads")  # (status, value) in some highspy versions
    return int(v[-1] if isinstance(v, tuple) else v)


def test_wrong_thread_guess_falls_back_to_the_default(monkeypatch):
    rng = np.random.default_rng(3)
    allowed, r, d, c, cap = _instance(rng, 4, 5, 3, False, True)
    cap = cap * 0.3  # capacity binds: the simplex path
    a = SlotSolver(allowed, r, greedy=False)
    xa, _ = a.solve_routes(a.gather(c), d, cap)  # the scheduler is up from here on
    # a guess the running scheduler does not have: HiGHS refuses the run before solving
    monkeypatch.setattr(ss, "_THREADS", [ss._threads() + 7])
    b = SlotSolver(allowed, r, greedy=False)
    b2 = SlotSolver(allowed, r, greedy=False)  # built with the guess too
    assert _threads_option(b._h) == _threads_option(b2._h) == ss._THREADS[0] > 0
    xb, _ = b.solve_routes(b.gather(c), d, cap)
    assert ss._THREADS == [0] and _threads_option(b._h) == 0
    assert xb.tobytes() == xa.tobytes()
    assert b._h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    xb2, _ = b2.solve_routes(b2.gather(c), d, cap)  # falls back as well
    assert xb2.tobytes() == xa.tobytes() and _threads_option(b2._h) == 0
    assert _threads_option(SlotSolver(allowed, r)._h) == 0  # new ones start at 0


# --------------------------------------------------------------------------- policy
@pytest.fixture(scope="module")
def week():
    return builtin_scenario(days=7, seed=0).replace(allowed=None)  # 10 x 10 x 4, 400 routes


def _objective(sc, q):
    return Objective(
        mu_social=default_mu_social(sc),
        mu_carbon=1.5,
        mu_water=0.06,
        q_social=q,
        q_carbon=q,
        q_water=q,
    )


def test_decisions_equal_those_of_the_array_projection(week, monkeypatch):
    sc = week.slice_time(0, 48)
    obj = _objective(sc, math.inf)
    fast = simulate_online(sc, OnlineDMD(obj)).y
    monkeypatch.setattr(pr, "_PW_CHECKED", [False])  # every projection on the array path
    slow = simulate_online(sc, OnlineDMD(obj)).y
    assert fast.tobytes() == slow.tobytes()


@pytest.mark.parametrize("q", [1.0, 2.0, math.inf])
def test_runs_are_deterministic_and_resume_exactly(week, tmp_path, q):
    sc = week.slice_time(0, 60)
    obj = _objective(sc, q)
    full = simulate_online(sc, OnlineDMD(obj))
    assert full.y.tobytes() == simulate_online(sc, OnlineDMD(obj)).y.tobytes()
    first = OnlineDMD(obj)
    a = simulate_online(sc, first, stop=23)
    state = load_state(save_state(first, tmp_path / "state.json"))
    b = simulate_online(sc, restore_policy(state), state=state)
    assert np.concatenate([a.y, b.y]).tobytes() == full.y.tobytes()


def test_a_slot_is_decided_alike_with_or_without_the_solver_history(week):
    """The root of resume-equality: the persistent HiGHS model decides each slot as a
    fresh one does (with HiGHS's scaling on, scaling state survived clearSolver and a
    fresh instance decided 47 of these 60 slots otherwise)."""
    sc = week.slice_time(0, 60)
    seen = []
    orig = ss.SlotSolver.solve_routes

    def spy(self, c, d, cap):
        seen.append((np.array(c), np.array(d), np.array(cap)))
        return orig(self, c, d, cap)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ss.SlotSolver, "solve_routes", spy)
        simulate_online(sc, OnlineDMD(_objective(sc, math.inf)))

    def fresh() -> SlotSolver:
        return SlotSolver(np.asarray(sc.allowed), sc.capacity_per_request, sc.capacity_mode)

    kept = fresh()
    for c, d, cap in seen:
        a, _ = kept.solve_routes(c, d, cap)
        b, _ = fresh().solve_routes(c, d, cap)
        assert a.tobytes() == b.tobytes()
