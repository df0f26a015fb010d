"""A service without a horizon: fairness windows (``window``) let it accept slots past
its scenario's length, across window boundaries and restarts, deciding exactly what the
offline simulator decides with the same windows (docs/horizon-free.md)."""

from __future__ import annotations

import numpy as np
import pytest

from eqglb.online import OnlineDMD, simulate_online
from eqglb.service import ServiceConfig, create_app
from eqglb.testing import random_scenario
from tests.service.test_service import TOKEN, post, routing_array, running
from tests.service.test_service_policies import _body

W = 4  # slots per fairness window
T = 3 * W + 3  # slots served: three boundaries


@pytest.fixture(scope="module")
def signals():
    return random_scenario(np.random.default_rng(21), T=T, N=3, J=3, K=2)


def test_without_a_window_the_horizon_ends_the_service(tmp_path, signals):
    app = create_app(signals.slice_time(0, W), tmp_path / "h.db", TOKEN)
    with running(app) as c:
        for t in range(W):
            assert post(c, _body(signals, t), f"h{t}").status_code == 200
        r = post(c, _body(signals, W), "h-late")
        assert r.status_code == 409 and "horizon" in r.text


def test_windows_serve_past_the_scenario_across_boundaries_and_restarts(tmp_path, signals):
    config = signals.slice_time(0, W)  # the service's scenario holds one window only
    db = tmp_path / "w.db"
    got = []
    for part in (range(0, W + 2), range(W + 2, T)):  # a restart inside the second window
        app = create_app(config, db, TOKEN, window=W)
        with running(app) as c:
            for t in part:
                r = post(c, _body(signals, t), f"w{t}")
                assert r.status_code == 200, r.text
                got.append(routing_array(signals, r.json()))
            state = c.get("/v1/state").json()
        objective = app.state.service.config.objective
    assert state["slots"] == T
    offline = simulate_online(signals, OnlineDMD(objective=objective, window=W))
    for t in range(T):
        y = np.asarray(offline.y[t])
        listed = got[t] > 0
        np.testing.assert_array_equal(got[t][listed], y[listed], err_msg=f"slot {t}")


def test_window_is_validated_and_bound_to_the_database(tmp_path, signals):
    from eqglb.service.engine import ServiceConfigError
    from eqglb.service.store import StoreError

    with pytest.raises(ServiceConfigError, match="window"):
        ServiceConfig.from_scenario(signals, window=0)
    with pytest.raises(ServiceConfigError, match="fairness window"):
        create_app(signals, tmp_path / "r.db", TOKEN, policy="receding", window=W)
    db = tmp_path / "b.db"
    app = create_app(signals, db, TOKEN, window=W)
    app.state.service.close()
    with pytest.raises(StoreError):
        create_app(signals, db, TOKEN, window=2 * W)  # other settings on the same database
