"""Horizon-free online routing: OnlineDMD with calendar fairness windows (``window``).

Within a window the policy behaves as if the window were the horizon; across a boundary
its prices carry over and the incurred burdens restart. The figures over a year of slots
are measured by benchmarks/bench_windows.py (docs/online.md).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from eqglb.builtin import builtin_scenario
from eqglb.costs import coefficients, regional_costs
from eqglb.defaults import build_objective
from eqglb.online import OnlineDMD, restore_policy, simulate_online
from eqglb.policies import make_policy

W = 24  # one day of hourly slots


@pytest.fixture(scope="module")
def three_days():
    sc = builtin_scenario(days=3, seed=4)
    return sc, build_objective(sc.slice_time(0, W))


def test_one_window_over_the_horizon_is_the_plain_policy(three_days):
    sc, obj = three_days
    a = simulate_online(sc, OnlineDMD(objective=obj))
    b = simulate_online(sc, OnlineDMD(objective=obj, window=sc.n_time))
    np.testing.assert_array_equal(np.asarray(a.y), np.asarray(b.y))


def test_windows_do_not_read_the_horizon(three_days):
    sc, obj = three_days
    long = simulate_online(sc, OnlineDMD(objective=obj, window=W))
    short = simulate_online(sc.slice_time(0, 2 * W), OnlineDMD(objective=obj, window=W))
    # the same decisions whatever the scenario's length: n_time is not used
    np.testing.assert_array_equal(np.asarray(long.y)[: 2 * W], np.asarray(short.y))
    plain = simulate_online(sc, OnlineDMD(objective=obj))
    assert not np.array_equal(np.asarray(plain.y), np.asarray(long.y))


def test_burdens_restart_at_each_boundary_and_prices_carry_over(three_days):
    sc, obj = three_days
    pol = OnlineDMD(objective=obj, window=W)
    d = simulate_online(sc, pol, stop=2 * W + 1)  # one slot into the third window
    y = np.asarray(d.y)
    coef = coefficients(sc)

    def only(a: int, b: int) -> np.ndarray:
        z = np.zeros(sc.shape)
        z[a:b] = y[a:b]
        return z

    second = regional_costs(coef, only(W, 2 * W))
    np.testing.assert_allclose(pol.last_window["carbon"], second.carbon, rtol=1e-10)
    np.testing.assert_allclose(pol.last_window["water"], second.water, rtol=1e-10)
    third = regional_costs(coef, only(2 * W, 2 * W + 1))
    np.testing.assert_allclose(pol.cumulative["carbon"], third.carbon, rtol=1e-10)
    # prices are not reset: a fresh policy started at the boundary would decide otherwise
    assert any(np.any(g > 0) for g in pol.gamma.values())


def test_resume_across_a_boundary_repeats_the_uninterrupted_run(three_days, tmp_path):
    sc, obj = three_days
    full = simulate_online(sc, OnlineDMD(objective=obj, window=W))
    pol = OnlineDMD(objective=obj, window=W)
    simulate_online(sc, pol, stop=W + 5)
    path = tmp_path / "state.json"
    path.write_text(json.dumps(pol.state()))
    again = restore_policy(json.loads(path.read_text()))
    assert again.window == W
    rest = simulate_online(sc, again)
    got = np.asarray(rest.y)
    np.testing.assert_array_equal(got[-(sc.n_time - W - 5) :], np.asarray(full.y)[W + 5 :])


def test_window_is_validated_and_registered():
    with pytest.raises(ValueError, match="window"):
        OnlineDMD(window=0)
    with pytest.raises(ValueError, match="window"):
        OnlineDMD(window=2.5)
    assert make_policy("online", window=48).window == 48
