"""The service with a switching cost and a hard per-slot change limit (--switching-cost,
--max-change; docs/switching.md): served through the real app, straight through and with
a restart, it decides what the offline simulator decides, and every region's split
changes by at most the limit between consecutive responses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from eqglb.online import OnlineDMD, simulate_online
from eqglb.policies import make_policy
from eqglb.service import ServiceConfig, create_app
from eqglb.service.engine import ServiceConfigError
from eqglb.testing import random_scenario
from tests.service.test_service import TOKEN, post, routing_array, running
from tests.service.test_service_policies import _body

SLOTS = 8


@pytest.fixture(scope="module")
def scenario():
    return random_scenario(np.random.default_rng(21), T=SLOTS, N=3, J=4, K=2)


def _serve(cfg: ServiceConfig, db: Path, parts: list[range]) -> list[Any]:
    out: list[Any] = []
    for part in parts:
        app = create_app(cfg, db, TOKEN)
        with running(app) as c:
            for t in part:
                r = post(c, _body(cfg.scenario, t), f"s-{t}")
                assert r.status_code == 200, r.text
                out.append(r.json())
    return out


@pytest.mark.parametrize(
    ("policy", "switching_cost", "max_change"),
    [
        ("online", 0.0, 0.15),
        ("online", 5e-3, None),
        ("online", 5e-3, 0.3),
        ("receding", 5e-3, None),
    ],
)
def test_served_switching_and_limit_decide_as_offline(
    tmp_path, scenario, policy, switching_cost, max_change
):
    sc = scenario
    cfg = ServiceConfig.from_scenario(
        sc, policy=policy, switching_cost=switching_cost, max_change=max_change
    )
    assert cfg.objective.switching_cost == switching_cost
    whole = _serve(cfg, tmp_path / "a.db", [range(SLOTS)])
    resumed = _serve(cfg, tmp_path / "b.db", [range(4), range(4, SLOTS)])
    unpriced = cfg.objective.replace(switching_cost=0.0)
    if policy == "online":
        pol = OnlineDMD(objective=cfg.objective, max_change=max_change)
        ref = OnlineDMD(objective=unpriced)
    else:
        pol, ref = make_policy(policy, cfg.objective), make_policy(policy, unpriced)
    offline = simulate_online(sc, pol)
    plain = simulate_online(sc, ref)
    assert not np.allclose(offline.y, plain.y)  # the switching cost or limit acts here
    served = np.array([routing_array(sc, r) for r in whole])
    again = np.array([routing_array(sc, r) for r in resumed])
    d = np.asarray(sc.demand, dtype=float)[:, None, :, None]
    np.testing.assert_allclose(served, offline.y, rtol=0, atol=1e-12 * d.max())
    np.testing.assert_array_equal(served, again)
    if max_change is not None:
        f = served / d
        change = 0.5 * np.abs(np.diff(f, axis=0)).sum(axis=(1, 3))  # (T-1, J)
        # beyond the limit only where capacity forced it, as much as the policy reported
        over = np.clip(change - max_change, 0.0, None) * np.asarray(sc.demand)[1:]
        stats = pol.run_stats()["change_limit"]
        assert over.sum() == pytest.approx(stats["excess_requests"], rel=1e-6, abs=1e-6)
        assert (over > 1e-9).any(axis=1).sum() == stats["slots_over"]
        assert (change <= max_change + 1e-9).mean() > 0.8


def test_change_limit_is_checked_and_bound_to_the_database(tmp_path, scenario):
    with pytest.raises(ServiceConfigError, match="max_change"):
        ServiceConfig.from_scenario(scenario, max_change=1.5)
    with pytest.raises(ServiceConfigError, match="--max-change"):
        create_app(
            ServiceConfig.from_scenario(scenario, max_change=0.1, policy="receding"),
            tmp_path / "r.db",
            TOKEN,
        )
    db = tmp_path / "c.db"
    _serve(ServiceConfig.from_scenario(scenario, max_change=0.1), db, [range(2)])
    with pytest.raises(Exception, match="policy_config|configuration|differs"):
        create_app(ServiceConfig.from_scenario(scenario, max_change=0.2), db, TOKEN)
