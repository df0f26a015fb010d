"""Forecast-aware receding-horizon policy and the forecasters."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eqglb.costs import Objective
from eqglb.online import (
    PerfectForecast,
    RecedingHorizon,
    SeasonalNaive,
    load_state,
    restore_policy,
    save_state,
    simulate_online,
    with_error,
)
from eqglb.policies import EquitableOffline
from eqglb.simulate import evaluate
from eqglb.testing import random_scenario

OBJ_INF = Objective(
    mu_social=2.0,
    mu_carbon=0.5,
    mu_water=0.05,
    q_social=math.inf,
    q_carbon=math.inf,
    q_water=math.inf,
)
OBJ_MIXED = Objective(
    mu_social=1.0, mu_carbon=0.3, mu_water=0.02, q_social=3.0, q_carbon=2.0, q_water=math.inf
)


@pytest.mark.parametrize(
    "seed,obj,rel", [(0, OBJ_INF, 1e-6), (1, OBJ_INF, 1e-6), (2, OBJ_MIXED, 1e-4)]
)
def test_perfect_forecasts_over_the_whole_horizon_reach_the_hindsight_optimum(seed, obj, rel):
    """window >= T and true future values: each slot solves the exact remaining problem,
    so the committed decisions attain the offline optimum's value."""
    sc = random_scenario(np.random.default_rng(seed), 8, 3, 3, 2, per_model=seed == 1)
    pol = RecedingHorizon(obj, window=sc.n_time, forecaster="perfect")
    d = simulate_online(sc, pol)
    assert d.info.extra["oracle"] is True
    ev = evaluate(sc, d, obj)
    opt = evaluate(sc, EquitableOffline(obj).plan(sc), obj).objective
    assert ev.feasibility.ok(1e-6)
    assert ev.objective == pytest.approx(opt, rel=rel)


def test_short_window_and_noisy_forecasts_stay_feasible_and_above_the_optimum():
    sc = random_scenario(np.random.default_rng(7), 10, 3, 3, 2, slack=1.05)
    opt = evaluate(sc, EquitableOffline(OBJ_INF).plan(sc), OBJ_INF).objective
    for kw in (
        dict(window=3),
        dict(window=4, error=0.5, seed=1),
        dict(window=4, forecaster=SeasonalNaive(2)),
    ):
        d = simulate_online(sc, RecedingHorizon(OBJ_INF, **kw))
        ev = evaluate(sc, d, OBJ_INF)
        assert d.info.extra["oracle"] is False
        assert ev.feasibility.ok(1e-6), kw
        assert opt <= ev.objective * (1 + 1e-7)


def test_receding_resume_from_json_state_is_identical(tmp_path):
    sc = random_scenario(np.random.default_rng(3), 9, 3, 3, 2)
    for obj in (OBJ_INF, OBJ_MIXED):
        kw = dict(window=4, error=0.2, seed=5)
        full = simulate_online(sc, RecedingHorizon(obj, **kw))
        first = RecedingHorizon(obj, **kw)
        a = simulate_online(sc, first, stop=4)
        state = load_state(save_state(first, tmp_path / "r.json"))
        b = simulate_online(sc, restore_policy(state), state=state)
        np.testing.assert_array_equal(np.concatenate([a.y, b.y]), full.y)


class _View:
    def __init__(self, t, demand):
        self.t = t
        self.demand = demand[: t + 1]
        for name in ("price", "carbon_intensity", "wue", "ewif", "pue", "capacity"):
            setattr(self, name, demand[: t + 1])


def test_seasonal_naive_by_hand():
    """Period 3, history 0..7 known at t = 7 (values 10 * slot): slots 8, 9, 10 repeat
    slots 5, 6, 7 -> 50, 60, 70; slot 11 -> 50 again. Before one season: persistence."""
    hist = (10.0 * np.arange(12))[:, None]
    fc = SeasonalNaive(3).forecast(_View(7, hist), 5)["demand"][:, 0]
    assert fc.tolist() == [70.0, 50.0, 60.0, 70.0, 50.0]
    fc = SeasonalNaive(24).forecast(_View(2, hist), 3)["demand"][:, 0]
    assert fc.tolist() == [20.0, 20.0, 20.0]


def test_forecast_error_is_mean_one_lognormal_and_spares_the_present():
    fc = {
        n: np.ones((4000, 3))
        for n in ("demand", "price", "carbon_intensity", "wue", "ewif", "pue", "capacity")
    }
    noisy = with_error(fc, 0.3, seed=1, t=5)
    for n in ("demand", "price"):
        assert np.all(noisy[n][0] == 1.0)
        logs = np.log(noisy[n][1:])
        assert logs.std() == pytest.approx(0.3, rel=0.05)
        assert noisy[n][1:].mean() == pytest.approx(1.0, abs=0.02)
    assert np.all(noisy["capacity"] == 1.0) and np.all(noisy["pue"] == 1.0)
    again = with_error(fc, 0.3, seed=1, t=5)
    np.testing.assert_array_equal(again["demand"], noisy["demand"])


def test_perfect_forecast_needs_its_scenario():
    with pytest.raises(RuntimeError, match="oracle"):
        PerfectForecast().forecast(_View(0, np.zeros((3, 1))), 2)
    with pytest.raises(ValueError, match="forecaster"):
        RecedingHorizon(OBJ_INF, forecaster="crystal-ball")
