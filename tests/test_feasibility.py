"""The exact per-slot feasibility check of Scenario validation (eqglb._feasibility)
against an independent LP per slot written here with scipy's linprog over the full
(datacenter, region, model) routes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.optimize import linprog

from eqglb._feasibility import first_unservable
from eqglb.testing import random_scenario


def _unserved(sc, t: int) -> float:
    """Least total unserved demand of slot t [requests] over every allowed route."""
    T, N, J, K = sc.shape
    idx = np.argwhere(np.asarray(sc.allowed))  # (P, 3)
    P = len(idx)
    a_eq = np.zeros((J, P + J))
    a_eq[idx[:, 1], np.arange(P)] = 1.0
    a_eq[np.arange(J), P + np.arange(J)] = 1.0
    if sc.capacity_mode == "shared":
        a_ub = np.zeros((N, P + J))
        a_ub[idx[:, 0], np.arange(P)] = np.asarray(sc.capacity_per_request)[idx[:, 2]]
    else:
        a_ub = np.zeros((N * K, P + J))
        a_ub[idx[:, 0] * K + idx[:, 2], np.arange(P)] = 1.0
    d = np.asarray(sc.demand[t], dtype=float)
    s = float(d.max())
    res = linprog(
        np.r_[np.zeros(P), np.ones(J)],
        A_ub=a_ub,
        b_ub=np.asarray(sc.capacity[t], dtype=float).ravel() / s,
        A_eq=a_eq,
        b_eq=d / s,
        method="highs",
    )
    assert res.status == 0
    return float(res.fun) * s


@pytest.mark.parametrize("seed", range(10))
def test_first_unservable_slot_matches_an_independent_lp(seed: int) -> None:
    rng = np.random.default_rng(seed)
    per_model = seed % 2 == 1
    sc = random_scenario(rng, 6, 3, 4, 2, per_model=per_model)
    cap = np.asarray(sc.capacity, dtype=float).copy()
    # squeeze some slots below what their demand needs (at magnitudes far from 1)
    mag = 10.0 ** rng.uniform(-3, 6)
    squeeze = rng.random(sc.n_time) < 0.4
    cap[squeeze] *= rng.uniform(0.2, 0.9)
    bad = dataclasses.replace(
        sc,
        demand=np.asarray(sc.demand) * mag,
        capacity=cap * mag,
        validate_feasibility=False,
    )
    lost = np.array([_unserved(bad, t) for t in range(bad.n_time)])
    tol = 1e-7 * mag
    got = first_unservable(bad)
    if not (lost > tol).any():
        assert got is None
        return
    t0 = int(np.argmax(lost > tol))
    assert got is not None
    t, j, amount = got
    assert t == t0
    assert 0 < amount <= lost[t0] * (1 + 1e-6) + tol
    assert 0 <= j < len(bad.regions)
    ok = dataclasses.replace(sc, validate_feasibility=False)
    assert first_unservable(ok) is None
