"""Every registered online policy can be served, and the service decides what the offline
simulator decides on the same slots: both step the same eqglb.online.stepper.Stepper.

Each policy of the registry with ``decide`` (``eqglb policies``: ``online``, ``receding``,
...) is served through the real app for some slots, once without interruption and once
with a restart in the middle (a new app on the same database); the routing of every
response must equal :func:`eqglb.online.simulate_online` on the scenario's first slots.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from eqglb.online import simulate_online
from eqglb.policies import make_policy, policy_names
from eqglb.scenario import Scenario
from eqglb.service import create_app
from eqglb.testing import random_scenario
from tests.service.test_service import TOKEN, _capacity_map, post, routing_array, running

SLOTS = 6


def _online_names() -> list[str]:
    return [n for n in policy_names() if callable(getattr(make_policy(n), "decide", None))]


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    sc = random_scenario(np.random.default_rng(11), T=8, N=3, J=3, K=2)
    rng = np.random.default_rng(5)
    # a real health signal, so that the health burden is accounted and compared too
    return dataclasses.replace(
        sc, health_cost=rng.uniform(0.0, 0.2, (sc.n_time, len(sc.datacenters)))
    )


def _body(sc: Scenario, t: int) -> dict[str, Any]:
    """Every signal of slot t as the service takes it (sticky ones too: they vary)."""
    body: dict[str, Any] = {
        "demand": dict(zip(sc.regions, np.asarray(sc.demand[t]).tolist(), strict=True)),
        "capacity": _capacity_map(sc, t),
    }
    for name in ("price", "carbon_intensity", "wue", "ewif", "pue", "health_cost"):
        row = np.asarray(getattr(sc, name)[t]).tolist()
        body[name] = dict(zip(sc.datacenters, row, strict=True))
    if t == 0:
        body["time"] = sc.time[0].isoformat()
    return body


def _serve(sc: Scenario, db: Path, policy: str, parts: list[range]) -> tuple[list[Any], Any]:
    """Responses of the slots of ``parts``, a new app (a restart) for each part."""
    out: list[Any] = []
    state = None
    for part in parts:
        app = create_app(sc, db, TOKEN, policy=policy)
        with running(app) as c:
            for t in part:
                r = post(c, _body(sc, t), f"{policy}-{t}")
                assert r.status_code == 200, r.text
                out.append(r.json())
            state = c.get("/v1/state").json()
    return out, state


@pytest.mark.parametrize("policy", _online_names())
def test_served_policy_decides_as_the_offline_simulator(tmp_path, scenario, policy):
    sc = scenario
    whole, state = _serve(sc, tmp_path / "a.db", policy, [range(SLOTS)])
    resumed, state2 = _serve(sc, tmp_path / "b.db", policy, [range(3), range(3, SLOTS)])
    app = create_app(sc, tmp_path / "c.db", TOKEN, policy=policy)
    objective = app.state.service.config.objective
    app.state.service.close()
    offline = simulate_online(sc, make_policy(policy, objective), stop=SLOTS)
    for t in range(SLOTS):
        y = offline.y[t]
        for got in (whole[t], resumed[t]):
            served = routing_array(sc, got)
            listed = served > 0
            # the responses list every route with a share >= 1e-12, with the exact value
            np.testing.assert_array_equal(served[listed], y[listed], err_msg=f"slot {t}")
            d = np.broadcast_to(np.asarray(sc.demand[t])[None, :, None], y.shape)
            assert np.all(y[~listed] < 1e-12 * np.maximum(d[~listed], 1.0)), (policy, t)
    # the accounts of both runs agree, and with the offline routing's own costs
    assert state == state2
    eps = np.asarray(sc.energy_per_request)
    load = offline.y.sum(axis=2)  # (t, N, K)
    health = np.einsum("tn,tn,nk,tnk->n", sc.health_cost[:SLOTS], sc.pue[:SLOTS], eps, load)
    got = np.array(list(state["cumulative"]["health"].values()))
    np.testing.assert_allclose(got, health, rtol=1e-9)
    assert health.sum() > 0


def test_every_online_policy_of_the_registry_is_served():
    """The parametrisation covers the registry's online policies, receding included."""
    names = _online_names()
    assert {"online", "receding"} <= set(names)
