"""A year of hourly slots through the service without a horizon (issue 13): 8,760 slots
posted to the real app with 30-day fairness windows (twelve boundaries), restarted four
times (one restart exactly on a window boundary, one just after a boundary); every slot
is answered, the database holds all of them, and the routing equals the offline
simulator's with the same windows, slot by slot."""

from __future__ import annotations

import numpy as np

from eqglb.online import OnlineDMD, simulate_online
from eqglb.testing import random_scenario
from tests.service.test_service import TOKEN, post, routing_array, running
from tests.service.test_service_policies import _body

HOURS = 8760
W = 720  # a 30-day fairness window [slots]
RESTARTS = (1000, 5040, 5041, 8000)  # 5040 = 7 W: on a boundary; 5041 just after


def test_a_year_of_slots_across_window_boundaries_and_restarts(tmp_path):
    from eqglb.service import create_app

    sc = random_scenario(np.random.default_rng(8), T=HOURS, N=3, J=3, K=2)
    config = sc.slice_time(0, 24)  # the service's scenario: one day of static data
    db = tmp_path / "year.db"
    bounds = (0, *RESTARTS, HOURS)
    got = np.zeros((HOURS, *sc.allowed.shape))
    objective = None
    for a, b in zip(bounds, bounds[1:], strict=False):
        app = create_app(config, db, TOKEN, window=W)
        with running(app) as c:
            assert c.get("/v1/state").json()["slots"] == a  # resumed where it stopped
            for t in range(a, b):
                r = post(c, _body(sc, t), f"y{t}")
                assert r.status_code == 200, (t, r.text)
                got[t] = routing_array(sc, r.json())
            state = c.get("/v1/state").json()
        objective = app.state.service.config.objective
    assert state["slots"] == HOURS
    offline = simulate_online(sc, OnlineDMD(objective=objective, window=W))
    listed = got > 0
    np.testing.assert_array_equal(got[listed], offline.y[listed])
    d = np.broadcast_to(np.asarray(sc.demand)[:, None, :, None], got.shape)
    assert np.all(offline.y[~listed] < 1e-12 * np.maximum(d[~listed], 1.0))
