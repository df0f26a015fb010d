"""Per-slot routing solver, dual projection and explicit auxiliary step of the online policies.

Each piece is checked against an independent formulation: scipy's ``linprog`` for the
per-slot LP, cvxpy (Clarabel / HiGHS) for the projection and the auxiliary problem.
"""

from __future__ import annotations

import math
import warnings

import cvxpy as cp
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from eqglb.online import SlotSolver, aux_explicit, project_dual
from eqglb.policies import SolveError

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _instance(seed: int, N: int, J: int, K: int, per_model: bool, tight: float):
    """Random feasible slot: capacity = what a random allowed flow uses x tight (>= 1)."""
    rng = np.random.default_rng(seed)
    allowed = rng.random((N, J, K)) < 0.6
    for j in range(J):
        if not allowed[:, j, :].any():
            allowed[rng.integers(N), j, rng.integers(K)] = True
    r = rng.uniform(0.3, 3.0, K)
    flow = rng.uniform(0.0, 5.0, (N, J, K)) * allowed
    flow[:, :, :][rng.random(flow.shape) < 0.3] = 0.0
    demand = flow.sum(axis=(0, 2))
    if per_model:
        cap = flow.sum(axis=1) * tight
    else:
        cap = np.einsum("njk,k->n", flow, r) * tight
    cost = rng.normal(size=(N, J, K)) * rng.choice([1e-4, 1.0, 50.0])
    return allowed, r, demand, cap, cost


def _linprog(allowed, r, demand, cap, cost, per_model):
    N, J, K = allowed.shape
    i, j, k = np.nonzero(allowed)
    P = i.size
    a_eq = sp.csr_matrix((np.ones(P), (j, np.arange(P))), shape=(J, P))
    if per_model:
        a_ub = sp.csr_matrix((np.ones(P), (i * K + k, np.arange(P))), shape=(N * K, P))
        b_ub = cap.ravel()
    else:
        a_ub = sp.csr_matrix((r[k], (i, np.arange(P))), shape=(N, P))
        b_ub = cap
    res = linprog(
        cost[i, j, k],
        A_ub=a_ub,
        b_ub=b_ub,
        A_eq=a_eq,
        b_eq=demand,
        bounds=(0, None),
        method="highs",
    )
    assert res.status == 0
    return res.fun


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    N=st.integers(1, 6),
    J=st.integers(1, 6),
    K=st.integers(1, 4),
    per_model=st.booleans(),
    tight=st.sampled_from([1.0, 1.05, 1.5, 100.0]),
)
def test_slot_solver_matches_linprog(seed, N, J, K, per_model, tight):
    """Both paths (greedy first, and simplex only) reach linprog's optimum, feasibly."""
    allowed, r, demand, cap, cost = _instance(seed, N, J, K, per_model, tight)
    ref = _linprog(allowed, r, demand, cap, cost, per_model)
    mode = "per_model" if per_model else "shared"
    scale = max(1.0, float(np.abs(cost).max()) * float(demand.sum()))
    for greedy in (True, False):
        sol = SlotSolver(allowed, r, mode, greedy=greedy).solve(cost, demand, cap)
        y = sol.y
        assert sol.objective == pytest.approx(ref, abs=1e-7 * scale)
        assert float(np.sum(cost * y)) == pytest.approx(sol.objective, abs=1e-9 * scale)
        assert np.allclose(y.sum(axis=(0, 2)), demand, rtol=1e-12, atol=1e-12)
        assert (y >= 0).all() and (y[~allowed] == 0).all()
        used = y.sum(axis=1) if per_model else np.einsum("njk,k->n", y, r)
        assert (used <= cap * (1 + 1e-7) + 1e-9).all()


def test_slot_solver_greedy_when_capacity_slack():
    """Two sites, one region, costs 1 and 2 per request: with room, all goes to the cheap
    site by the greedy path; with capacity 3 at the cheap site, 3 there and 7 at the other
    (objective 3 * 1 + 7 * 2 = 17) by the simplex path."""
    allowed = np.ones((2, 1, 1), dtype=bool)
    cost = np.array([1.0, 2.0]).reshape(2, 1, 1)
    s = SlotSolver(allowed, np.ones(1))
    sol = s.solve(cost, np.array([10.0]), np.array([20.0, 20.0]))
    assert sol.method == "greedy"
    assert sol.y[:, 0, 0] == pytest.approx([10.0, 0.0])
    sol = s.solve(cost, np.array([10.0]), np.array([3.0, 20.0]))
    assert sol.method == "highs"
    assert sol.y[:, 0, 0] == pytest.approx([3.0, 7.0])
    assert sol.objective == pytest.approx(17.0)


def test_slot_solver_infeasible_slot_raises():
    s = SlotSolver(np.ones((2, 1, 1), dtype=bool), np.ones(1))
    with pytest.raises(SolveError, match="cannot be served"):
        s.solve(np.ones((2, 1, 1)), np.array([10.0]), np.array([3.0, 3.0]))


def test_slot_solver_deterministic_under_ties():
    """All costs equal: repeated solves of the same data give the same dispatch."""
    allowed = np.ones((4, 3, 2), dtype=bool)
    s = SlotSolver(allowed, np.array([1.0, 2.0]))
    d, cap = np.array([3.0, 4.0, 5.0]), np.array([6.0, 6.0, 6.0, 6.0])
    a = s.solve(np.ones((4, 3, 2)), d, cap).y
    s.solve(np.random.default_rng(0).random((4, 3, 2)), d, cap)  # something in between
    b = s.solve(np.ones((4, 3, 2)), d, cap).y
    assert np.array_equal(a, b)


# --------------------------------------------------------------------------- projection
def _dual_exponent(q: float) -> float:
    if q == 1.0:
        return math.inf
    if math.isinf(q):
        return 1.0
    return q / (q - 1.0)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 8),
    q=st.sampled_from([1.0, 1.25, 1.5, 2.0, 3.0, 8.0, math.inf]),
    uniform=st.booleans(),
)
def test_project_dual_is_the_weighted_projection(seed, n, q, uniform):
    """project_dual minimises sum (g - v)^2 / eta over {g >= 0, ||g||_q* <= mu}: feasible
    and no worse than Clarabel's solution of the same problem."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=n) * rng.choice([0.1, 1.0, 10.0])
    eta = np.full(n, 0.7) if uniform else rng.uniform(0.05, 5.0, n)
    mu = float(rng.uniform(0.2, 3.0))
    g = project_dual(v, eta, mu, q)
    p = _dual_exponent(q)
    assert (g >= 0).all()
    norm = float(np.max(g)) if math.isinf(p) else float(np.sum(g**p)) ** (1 / p)
    assert norm <= mu * (1 + 1e-9) + 1e-12
    x = cp.Variable(n, nonneg=True)
    prob = cp.Problem(
        cp.Minimize(cp.sum(cp.multiply(1 / eta, cp.square(x - v)))), [cp.norm(x, p) <= mu]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # an inaccurate reference is handled below
        prob.solve(solver="CLARABEL")
    tol = 1e-6
    if prob.status != cp.OPTIMAL:  # the reference struggled: a tighter, longer second try
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            prob.solve(solver="CLARABEL", max_iter=2000, tol_gap_abs=1e-10, tol_gap_rel=1e-10)
        tol = 1e-6 if prob.status == cp.OPTIMAL else 1e-4
    assert prob.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE), prob.status
    f = lambda z: float(np.sum((z - v) ** 2 / eta))  # noqa: E731
    assert f(g) <= prob.value + tol * max(1.0, abs(prob.value))


def test_project_dual_closed_forms_by_hand():
    """q = 1: clip to [0, mu]. q = inf, uniform metric: Euclidean projection onto the capped
    simplex, (3, 1, -1) with mu = 2 -> shift by theta = 1 -> (2, 0, 0); (0.5, 0.5) is inside.
    q = 2, uniform metric: radial scaling (3, 4) with mu = 1 -> (0.6, 0.8)."""
    eta = np.ones(3)
    assert project_dual(np.array([3.0, 0.5, -1.0]), eta, 1.0, 1.0) == pytest.approx([1, 0.5, 0])
    assert project_dual(np.array([3.0, 1.0, -1.0]), eta, 2.0, math.inf) == pytest.approx(
        [2.0, 0.0, 0.0]
    )
    assert project_dual(np.array([0.5, 0.5]), np.ones(2), 2.0, math.inf) == pytest.approx(
        [0.5, 0.5]
    )
    assert project_dual(np.array([3.0, 4.0]), np.ones(2), 1.0, 2.0) == pytest.approx([0.6, 0.8])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 6), q=st.sampled_from([1.0, math.inf]))
def test_aux_explicit_solves_the_auxiliary_problem(seed, n, q):
    """z = argmin_{0 <= z <= zmax} mu ||z||_q - gamma . z, checked against an LP."""
    rng = np.random.default_rng(seed)
    gamma = rng.uniform(0, 2, n) * (rng.random(n) < 0.8)
    zmax = rng.uniform(0.1, 5.0, n)
    mu = float(rng.uniform(0.3, 3.0))
    z = aux_explicit(gamma, mu, q, zmax)
    assert ((z >= 0) & (z <= zmax + 1e-12)).all()
    val = lambda v: mu * (np.max(v) if math.isinf(q) else np.sum(v)) - gamma @ v  # noqa: E731
    x = cp.Variable(n)
    prob = cp.Problem(cp.Minimize(mu * cp.norm(x, q) - gamma @ x), [x >= 0, x <= zmax])
    prob.solve(solver="HIGHS")
    assert val(z) <= prob.value + 1e-7 * max(1.0, abs(prob.value))


def test_aux_explicit_rejects_general_q():
    with pytest.raises(ValueError, match="proximal"):
        aux_explicit(np.ones(2), 1.0, 2.0, np.ones(2))
