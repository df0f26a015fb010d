"""The dispatch service in-process: endpoints of the real FastAPI app (TestClient).

Crash recovery with a real server process is in test_service_crash.py, the fuzz test in
test_service_fuzz.py, the proxy configurations (nginx -t, a real NGINX) in
test_service_proxy.py. Helpers here are imported by those modules.
"""

from __future__ import annotations

import json
import math
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from eqglb.builtin import builtin_scenario
from eqglb.costs import Objective, coefficients
from eqglb.metrics import summarize
from eqglb.scenario import Scenario
from eqglb.service import ServiceConfig, StoreError, create_app, largest_remainder
from eqglb.testing import random_scenario

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


# --------------------------------------------------------------------------- helpers
def test_client_class() -> Any:
    """fastapi.testclient.TestClient (starlette warns at import that httpx is deprecated
    for it; the warning says nothing about our code)."""
    import starlette.exceptions

    category = getattr(starlette.exceptions, "StarletteDeprecationWarning", DeprecationWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category)
        from fastapi.testclient import TestClient
    return TestClient


test_client_class.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@contextmanager
def running(app: Any) -> Any:
    """TestClient with the app's lifespan (the decision thread) running."""
    with test_client_class()(app) as client:
        yield client


def slot_body(sc: Scenario, t: int, *, with_time: bool = True, **extra: Any) -> dict[str, Any]:
    """Request body of scenario slot ``t`` (signals keyed by name)."""
    b: dict[str, Any] = {
        "demand": dict(zip(sc.regions, np.asarray(sc.demand[t]).tolist(), strict=True)),
        "price": dict(zip(sc.datacenters, np.asarray(sc.price[t]).tolist(), strict=True)),
        "carbon_intensity": dict(
            zip(sc.datacenters, np.asarray(sc.carbon_intensity[t]).tolist(), strict=True)
        ),
        "wue": dict(zip(sc.datacenters, np.asarray(sc.wue[t]).tolist(), strict=True)),
        "ewif": dict(zip(sc.datacenters, np.asarray(sc.ewif[t]).tolist(), strict=True)),
        "pue": dict(zip(sc.datacenters, np.asarray(sc.pue[t]).tolist(), strict=True)),
    }
    if with_time:
        b["time"] = sc.time[t].isoformat()
    b.update(extra)
    return b


def post(
    client: Any,
    body: Any,
    key: str | None,
    *,
    raw: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    h = dict(AUTH)
    if key is not None:
        h["Idempotency-Key"] = key
    h.update(headers or {})
    if raw is not None:
        return client.post(
            "/v1/slots", content=raw, headers={**h, "Content-Type": "application/json"}
        )
    return client.post("/v1/slots", json=body, headers=h)


def routing_array(sc: Scenario, resp: dict[str, Any]) -> np.ndarray:
    """Dense y (datacenter, region, model) [requests] from a response's routing."""
    y = np.zeros((len(sc.datacenters), len(sc.regions), len(sc.models)))
    for region, r in resp["routing"].items():
        j = sc.regions.index(region)
        for route in r["routes"]:
            y[sc.datacenters.index(route["datacenter"]), j, sc.models.index(route["model"])] = (
                route["requests"]
            )
    return y


def two_by_one(capacity_a: float = 70.0, demand: float = 100.0) -> Scenario:
    """Hand fixture: data centres a (0.1 USD/kWh) and b (0.2 USD/kWh), one region r, one
    model m of 1 kWh/request, PUE 1, capacity a = ``capacity_a``, b = 1000 requests/slot."""
    return Scenario(
        datacenters=["a", "b"],
        regions=["r"],
        models=["m"],
        time=pd.date_range("2022-01-01", periods=4, freq="h"),
        demand=np.full((4, 1), demand),
        price=np.tile([0.1, 0.2], (4, 1)),
        carbon_intensity=np.tile([0.5, 0.1], (4, 1)),
        wue=np.zeros((4, 2)),
        ewif=np.zeros((4, 2)),
        pue=[1.0, 1.0],
        energy_per_request=[[1.0], [1.0]],
        capacity_per_request=[1.0],
        capacity=[capacity_a, 1000.0],
        quality_loss=[0.0],
        name="two-by-one",
    )


@pytest.fixture(scope="module")
def builtin() -> Scenario:
    return builtin_scenario(days=2)


@pytest.fixture()
def app_factory(tmp_path: Path):
    made = []

    def make(source: Any = None, db: str = "svc.db", **kw: Any) -> Any:
        app = create_app(
            source if source is not None else builtin_scenario(days=2), tmp_path / db, TOKEN, **kw
        )
        made.append(app)
        return app

    yield make
    for app in made:  # apps never started still hold their database lock
        app.state.service.close()


# --------------------------------------------------------------------------- routing
def test_slot_routing_serves_demand_and_weights_sum_exactly(app_factory, builtin):
    """Each region's routes carry its demand on allowed routes within capacity; each
    region's integer weights sum to the total and are within 1 of fraction x total."""
    sc = builtin
    app = app_factory(sc, weight_total=1000)
    with running(app) as c:
        for t in range(3):
            r = post(c, slot_body(sc, t), f"k{t}")
            assert r.status_code == 200, r.text
            out = r.json()
            assert out["slot"] == t
            assert out["time"] == sc.time[t].isoformat().replace("+00:00", "Z")
            y = routing_array(sc, out)
            np.testing.assert_allclose(y.sum(axis=(0, 2)), sc.demand[t], rtol=1e-9)
            assert not (y[~np.asarray(sc.allowed)] > 0).any()
            used = np.einsum("njk,k->n", y, sc.capacity_per_request)
            assert (used <= np.asarray(sc.capacity[t]) * (1 + 1e-6)).all()
            for region, w in out["weights"]["regions"].items():
                routes = out["routing"][region]["routes"]
                assert math.isclose(sum(x["fraction"] for x in routes), 1.0, rel_tol=1e-9)
                assert sum(w["datacenters"].values()) == 1000
                assert sum(x["weight"] for x in w["routes"]) == 1000
                share: dict[str, float] = {}
                for x in routes:
                    share[x["datacenter"]] = share.get(x["datacenter"], 0.0) + x["fraction"]
                for dc in set(share) | set(w["datacenters"]):
                    assert abs(w["datacenters"].get(dc, 0) - 1000 * share.get(dc, 0.0)) < 1
            assert out["costs"]["energy_cost"] > 0 and out["costs"]["carbon"] > 0


def test_hand_fixture_split_and_cost():
    """2 DCs, 1 region, 1 model, no equity terms: demand 100, a is cheaper but holds 70,
    so a takes 70 and b 30 (weights 70/30 of 100, 700/300 of 1000). Energy cost =
    70 x 0.1 + 30 x 0.2 = 13 USD; carbon = 70 x 0.5 + 30 x 0.1 = 38 kg."""
    sc = two_by_one()
    for total, expect in ((100, {"a": 70, "b": 30}), (1000, {"a": 700, "b": 300})):
        cfg = ServiceConfig(scenario=sc, objective=Objective(), weight_total=total)
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            app = create_app(cfg, Path(tmp) / "db.sqlite", TOKEN)
            with running(app) as c:
                out = post(c, slot_body(sc, 0), "k").json()
                st = c.get("/v1/state").json()
        routes = {x["datacenter"]: x["requests"] for x in out["routing"]["r"]["routes"]}
        assert routes == pytest.approx({"a": 70.0, "b": 30.0})
        assert out["weights"]["regions"]["r"]["datacenters"] == expect
        assert out["costs"]["energy_cost"] == pytest.approx(13.0)
        assert out["costs"]["carbon"] == pytest.approx(38.0)
        assert st["cumulative"]["carbon"] == pytest.approx({"a": 35.0, "b": 3.0})


def test_slot_coefficients_equal_eqglb_costs(app_factory, builtin):
    """The coefficients a served policy sees are eqglb.costs.coefficients at that slot, the
    health burden's included (health_cost x PUE x energy per request, given or 0)."""
    sc = random_scenario(np.random.default_rng(3), T=3, N=3, J=2, K=2)
    app = app_factory(sc)
    eng = app.state.service.engine
    coef = coefficients(sc)
    health = np.array([[0.02, 0.0, 0.3], [0.0, 0.0, 0.0], [0.5, 0.1, 0.0]])  # USD/kWh
    with running(app) as c:
        for t in range(3):
            extra = {}
            if t != 1:  # slot 1 omits it: 0
                extra["health_cost"] = dict(zip(sc.datacenters, health[t].tolist(), strict=True))
            body = slot_body(sc, t, capacity=_capacity_map(sc, t), **extra)
            assert post(c, body, f"k{t}").status_code == 200
        st = c.get("/v1/state").json()
    h = eng.stepper.history.bufs
    for name in ("energy_cost", "carbon", "water"):
        np.testing.assert_allclose(h[name][:3], getattr(coef, name), rtol=1e-12)
    eps = np.asarray(sc.energy_per_request)
    want = health[:, :, None] * np.asarray(sc.pue)[:, :, None] * eps[None]
    np.testing.assert_allclose(h["health"][:3], want, rtol=1e-12)
    assert (h["health"][1] == 0).all() and (h["health"][0] > 0).any()
    assert set(st["cumulative"]) >= {"energy_cost", "carbon", "water", "health", "social"}
    assert st["units"]["health"] == "USD"


def _capacity_map(sc: Scenario, t: int) -> dict[str, Any]:
    cap = np.asarray(sc.capacity[t])
    if cap.ndim == 1:
        return dict(zip(sc.datacenters, cap.tolist(), strict=True))
    return {
        dc: dict(zip(sc.models, row, strict=True))
        for dc, row in zip(sc.datacenters, cap.tolist(), strict=True)
    }


def test_state_reports_cumulative_costs_and_fairness(app_factory, builtin):
    """/v1/state equals costs recomputed from the responses' routings with
    eqglb.costs.coefficients, and its fairness block is eqglb.metrics.summarize of them."""
    sc = builtin
    app = app_factory(sc)
    T = 4
    with running(app) as c:
        ys = [routing_array(sc, post(c, slot_body(sc, t), f"k{t}").json()) for t in range(T)]
        st = c.get("/v1/state").json()
    y = np.stack(ys)
    coef = coefficients(sc)
    load = y.sum(axis=2)
    carbon = np.einsum("tnk,tnk->n", coef.carbon[:T], load)
    water = np.einsum("tnk,tnk->n", coef.water[:T], load)
    energy = float(np.einsum("tnk,tnk->", coef.energy_cost[:T], load))
    social = y.sum(axis=(0, 1)) @ np.asarray(sc.quality_loss) / sc.demand[:T].sum(axis=0)
    assert st["slots"] == T
    assert st["cumulative"]["energy_cost"] == pytest.approx(energy, rel=1e-9)
    assert list(st["cumulative"]["carbon"].values()) == pytest.approx(carbon.tolist(), rel=1e-9)
    assert list(st["cumulative"]["water"].values()) == pytest.approx(water.tolist(), rel=1e-9)
    assert list(st["cumulative"]["social"].values()) == pytest.approx(social.tolist(), rel=1e-9)
    obj = app.state.service.config.objective
    for name, v, q in (
        ("carbon", carbon, obj.q_carbon),
        ("water", water, obj.q_water),
        ("social", social, obj.q_social),
    ):
        want = summarize(v, q)
        got = st["fairness"][name]
        for key in ("max", "mean", "max_over_mean", "jain", "gini", "lq_norm"):
            assert got[key] == pytest.approx(want[key], rel=1e-9), (name, key)
    assert set(st["duals"]) >= {"carbon", "water"}
    assert list(st["duals"]["carbon"]) == list(sc.datacenters)
    assert all(v >= 0 for g in st["duals"].values() for v in g.values())


# --------------------------------------------------------------------------- idempotency, order
def test_retry_with_same_key_is_replayed_not_reapplied(app_factory, builtin):
    sc = builtin
    app = app_factory(sc)
    with running(app) as c:
        first = post(c, slot_body(sc, 0), "same")
        again = post(c, slot_body(sc, 0), "same")
        assert first.status_code == again.status_code == 200
        assert again.content == first.content
        assert again.headers.get("idempotency-replayed") == "true"
        assert "idempotency-replayed" not in first.headers
        # the key in the body works the same way
        b = slot_body(sc, 1, idempotency_key="body-key")
        r1, r2 = post(c, b, None), post(c, b, None)
        assert r1.status_code == 200 and r2.content == r1.content
        before = c.get("/v1/state").json()
        conflict = post(c, slot_body(sc, 2), "same")
        assert conflict.status_code == 409
        assert conflict.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
        assert c.get("/v1/state").json() == before
        assert before["slots"] == 2


def test_slot_time_order(app_factory, builtin):
    sc = builtin
    app = app_factory(sc)
    with running(app) as c:
        r = post(c, slot_body(sc, 0, with_time=False), "k0")
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "time"]
        assert post(c, slot_body(sc, 1), "k1").status_code == 200
        dup = post(c, slot_body(sc, 1), "k2")
        assert dup.status_code == 409 and "duplicates" in dup.json()["detail"][0]["msg"]
        early = post(c, slot_body(sc, 0), "k3")
        assert early.status_code == 409 and "before" in early.json()["detail"][0]["msg"]
        nxt = post(c, slot_body(sc, 2, with_time=False), "k4")
        assert nxt.status_code == 200
        assert pd.Timestamp(nxt.json()["time"]) == sc.time[2]  # last + one slot (1 h)
        gap = post(c, slot_body(sc, 5), "k5")  # a gap is allowed
        assert gap.status_code == 200 and gap.json()["slot"] == 2


def _bad(sc: Scenario) -> list[tuple[str, Any, int, list[Any]]]:
    """(case, body or raw text, status, loc prefix) of rejected submissions."""
    good = slot_body(sc, 1)
    r0, d0 = sc.regions[0], sc.datacenters[0]

    def edit(path: list[Any], value: Any) -> dict[str, Any]:
        b = json.loads(json.dumps(good))
        node = b
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
        return b

    no_region = json.loads(json.dumps(good))
    del no_region["demand"][r0]
    huge = edit(["demand", r0], 5e11)
    return [
        ("unknown region", edit(["demand", "Atlantis"], 1.0), 422, ["body", "demand", "Atlantis"]),
        ("missing region", no_region, 422, ["body", "demand"]),
        ("unknown datacenter", edit(["price", "Moon"], 0.1), 422, ["body", "price", "Moon"]),
        ("negative demand", edit(["demand", r0], -1.0), 422, ["body", "demand", r0]),
        ("NaN", json.dumps(edit(["demand", r0], float("nan"))), 422, ["body", "demand", r0]),
        ("Infinity", json.dumps(edit(["price", d0], float("inf"))), 422, ["body", "price", d0]),
        ("string number", edit(["price", d0], "0.1"), 422, ["body", "price", d0]),
        ("bool number", edit(["wue", d0], True), 422, ["body", "wue", d0]),
        (
            "out of range",
            edit(["carbon_intensity", d0], 1e9),
            422,
            ["body", "carbon_intensity", d0],
        ),
        ("pue zero", edit(["pue", d0], 0.0), 422, ["body", "pue", d0]),
        ("extra field", edit(["colour"], "red"), 422, ["body", "colour"]),
        (
            "unknown capacity dc",
            edit(["capacity"], {"Moon": 5.0}),
            422,
            ["body", "capacity", "Moon"],
        ),
        (
            "per-model capacity in shared mode",
            edit(["capacity"], {d0: {sc.models[0]: 5.0}}),
            422,
            ["body", "capacity", d0],
        ),
        ("bad time", edit(["time"], "yesterday"), 422, ["body", "time"]),
        ("infeasible demand", huge, 422, ["body", "demand", r0]),
        ("not JSON", "{demand: 1", 422, ["body"]),
        ("JSON array", "[1, 2]", 422, ["body"]),
        ("empty body", "", 422, ["body"]),
    ]


def test_bad_input_is_4xx_naming_the_field_and_changes_nothing(app_factory, builtin):
    sc = builtin
    app = app_factory(sc)
    with running(app) as c:
        assert post(c, slot_body(sc, 0), "k0").status_code == 200
        before = c.get("/v1/state").json()
        weights = c.get("/v1/weights").json()
        for i, (case, body, status, loc) in enumerate(_bad(sc)):
            if isinstance(body, str):
                r = post(c, None, f"bad{i}", raw=body)
            else:
                r = post(c, body, f"bad{i}")
            assert r.status_code == status, (case, r.text)
            locs = [d["loc"] for d in r.json()["detail"]]
            assert any(lc[: len(loc)] == loc for lc in locs), (case, locs)
            assert all(d["msg"] for d in r.json()["detail"]), case
        infeasible = post(c, _bad(sc)[-4][1], "again")
        assert "cannot be served" in infeasible.json()["detail"][0]["msg"]
        big = post(c, None, "big", raw=" " * (4 * 1024 * 1024 + 1))
        assert big.status_code == 413
        # idempotency key problems
        r = post(c, slot_body(sc, 1), None)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][0] == "header"
        r = post(c, slot_body(sc, 1, idempotency_key="x"), "y")
        assert r.status_code == 422 and "differ" in r.json()["detail"][0]["msg"]
        assert c.get("/v1/state").json() == before
        assert c.get("/v1/weights").json() == weights
        # after all the rejections the next good slot is slot 1
        ok = post(c, slot_body(sc, 1), "bad0")  # a key of a rejected request is free
        assert ok.status_code == 200 and ok.json()["slot"] == 1


def test_infeasible_first_slot_leaves_service_fresh(app_factory, builtin):
    sc = builtin
    app = app_factory(sc)
    with running(app) as c:
        body = slot_body(sc, 0)
        body["demand"][sc.regions[0]] = 5e11
        assert post(c, body, "k").status_code == 422
        assert c.get("/v1/state").json()["slots"] == 0
        ok = post(c, slot_body(sc, 3), "k2")
        assert ok.status_code == 200
        st = c.get("/v1/state").json()
        assert st["first_time"] == ok.json()["time"]


def test_auth(app_factory, builtin):
    sc = builtin
    app = app_factory(sc)
    with running(app) as c:
        body = slot_body(sc, 0)
        r = c.post("/v1/slots", json=body, headers={"Idempotency-Key": "a"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        r = c.post(
            "/v1/slots",
            json=body,
            headers={"Idempotency-Key": "a", "Authorization": f"Basic {TOKEN}"},
        )
        assert r.status_code == 401
        r = c.post(
            "/v1/slots",
            json=body,
            headers={"Idempotency-Key": "a", "Authorization": "Bearer wrong"},
        )
        assert r.status_code == 403
        # unauthenticated garbage is refused for the token, before its body is read
        r = c.post("/v1/slots", content="not json", headers={"Idempotency-Key": "a"})
        assert r.status_code == 401
        assert c.get("/v1/state").json()["slots"] == 0  # reads open by default
        assert c.get("/v1/weights/nginx").status_code == 200
    locked = app_factory(sc, db="locked.db", read_token_required=True)
    with running(locked) as c:
        for path in (
            "/v1/state",
            "/v1/weights",
            "/v1/weights/nginx",
            "/v1/weights/envoy",
            "/v1/slots",
            "/v1/slots/0",
        ):
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers={"Authorization": "Bearer no"}).status_code == 403
        assert c.get("/v1/state", headers=AUTH).status_code == 200
        assert c.get("/healthz").status_code == 200


# --------------------------------------------------------------------------- signals
def test_capacity_changes_are_sticky(app_factory, builtin):
    """Setting a data centre's capacity to 0 keeps every request away from it in this and
    later slots, until it is given back."""
    sc = builtin
    app = app_factory(sc)
    busy = sc.datacenters[1]  # Virginia: reachable by many regions
    i = sc.datacenters.index(busy)
    with running(app) as c:
        y0 = routing_array(sc, post(c, slot_body(sc, 0), "k0").json())
        assert y0[i].sum() > 0
        y1 = routing_array(sc, post(c, slot_body(sc, 1, capacity={busy: 0.0}), "k1").json())
        y2 = routing_array(sc, post(c, slot_body(sc, 2), "k2").json())
        assert y1[i].sum() == 0 and y2[i].sum() == 0
        st = c.get("/v1/state").json()
        assert st["signals"]["capacity"][busy] == 0.0
        cap = float(sc.capacity[3, i])
        y3 = routing_array(sc, post(c, slot_body(sc, 3, capacity={busy: cap}), "k3").json())
        assert y3[i].sum() > 0


def test_per_model_capacity(app_factory):
    """Per-(data centre, model) capacity: a pool set to 0 carries nothing; in a scenario
    that needs that pool the slot is refused naming a region's demand."""
    sc = random_scenario(np.random.default_rng(0), T=4, N=3, J=3, K=2, per_model=True)
    dc, m = sc.datacenters[0], sc.models[0]
    app = app_factory(sc)
    with running(app) as c:
        r = post(c, slot_body(sc, 0, capacity={dc: {m: 0.0}}), "k0")
        assert r.status_code == 200, r.text
        y = routing_array(sc, r.json())
        assert y[0, :, 0].sum() == 0
        assert c.get("/v1/state").json()["signals"]["capacity"][dc][m] == 0.0
        bad = post(c, slot_body(sc, 1, capacity={dc: 5.0}), "k1")
        assert bad.status_code == 422 and "per (data centre, model)" in bad.text
    tight = random_scenario(np.random.default_rng(2), T=4, N=3, J=3, K=2, per_model=True)
    app = app_factory(tight, db="tight.db")
    with running(app) as c:
        r = post(c, slot_body(tight, 0, capacity={dc: {m: 0.0}}), "k0")
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"][:2] == ["body", "demand"]
        assert c.get("/v1/state").json()["slots"] == 0


def test_region_without_demand_keeps_its_weights(app_factory, builtin):
    sc = builtin
    app = app_factory(sc)
    region = sc.regions[2]
    with running(app) as c:
        first = post(c, slot_body(sc, 0), "k0").json()
        body = slot_body(sc, 1)
        body["demand"][region] = 0.0
        second = post(c, body, "k1").json()
    assert second["routing"][region]["routes"] == []
    assert second["weights"]["regions"][region]["carried_over"] is True
    w0 = first["weights"]["regions"][region]
    w1 = second["weights"]["regions"][region]
    assert w1["datacenters"] == w0["datacenters"] and w1["routes"] == w0["routes"]


def test_horizon_is_enforced(app_factory, builtin):
    app = app_factory(builtin, horizon=2)
    with running(app) as c:
        assert post(c, slot_body(builtin, 0), "a").status_code == 200
        assert post(c, slot_body(builtin, 1), "b").status_code == 200
        r = post(c, slot_body(builtin, 2), "c")
        assert r.status_code == 409 and "horizon" in r.text


# --------------------------------------------------------------------------- durability
def test_restart_resumes_the_same_decisions(tmp_path, builtin):
    """Stopping after 3 slots and restarting on the same database gives, for slots 3-4,
    exactly the decisions of an uninterrupted service."""
    sc = builtin
    bodies = [slot_body(sc, t) for t in range(5)]
    app = create_app(sc, tmp_path / "a.db", TOKEN)
    with running(app) as c:
        for t in range(3):
            assert post(c, bodies[t], f"k{t}").status_code == 200
    app = create_app(sc, tmp_path / "a.db", TOKEN)
    with running(app) as c:
        assert c.get("/v1/state").json()["slots"] == 3
        assert post(c, bodies[1], "k1").headers.get("idempotency-replayed") == "true"
        resumed = [post(c, bodies[t], f"k{t}").json() for t in (3, 4)]
        listed = c.get("/v1/slots").json()
        stored = c.get("/v1/slots/4").json()
        assert c.get("/v1/slots/5").status_code == 404
    assert [s["idempotency_key"] for s in listed] == [f"k{t}" for t in range(5)]
    assert stored["response"] == resumed[1]
    app = create_app(sc, tmp_path / "b.db", TOKEN)
    with running(app) as c:
        straight = [post(c, bodies[t], f"k{t}").json() for t in range(5)]
    assert resumed == straight[3:]


def test_database_refuses_other_settings_and_second_service(tmp_path, builtin):
    app = create_app(builtin, tmp_path / "x.db", TOKEN)
    with running(app) as c:
        assert post(c, slot_body(builtin, 0), "k").status_code == 200
        with pytest.raises(StoreError, match="in use"):
            create_app(builtin, tmp_path / "x.db", TOKEN)
    with pytest.raises(StoreError, match="objective"):
        create_app(builtin, tmp_path / "x.db", TOKEN, q="inf")  # the default q is 2
    with pytest.raises(StoreError, match="datacenters"):
        create_app(two_by_one(), tmp_path / "x.db", TOKEN)
    with pytest.raises(ValueError, match="token"):
        create_app(builtin, tmp_path / "y.db", "")
    app = create_app(builtin, tmp_path / "x.db", TOKEN)  # same settings: fine
    app.state.service.close()


def test_served_view_holds_the_history_and_refuses_the_future(tmp_path, builtin):
    """A served policy sees slots 0..t (rebuilt after a restart), never slot t + 1."""
    from eqglb.online import OnlineDMD
    from eqglb.online.simulator import CausalityError

    seen: list[tuple[int, int, float]] = []

    class Probe(OnlineDMD):
        def decide(self, view: Any) -> np.ndarray:
            t = view.t
            seen.append((t, len(view.demand), float(view.at("demand", 0)[0])))
            with pytest.raises(CausalityError):
                view.at("price", t + 1)
            with pytest.raises(IndexError):
                view.demand[t + 1]
            assert view.time[t] == builtin.time[t]
            return super().decide(view)

    def make(objective: Objective) -> Probe:
        return Probe(objective=objective, name="online")

    for part in (range(0, 3), range(3, 5)):  # a restart in between
        app = create_app(builtin, tmp_path / "h.db", TOKEN, policy=make)
        with running(app) as c:
            for t in part:
                assert post(c, slot_body(builtin, t), f"k{t}").status_code == 200
    assert [s[:2] for s in seen] == [(t, t + 1) for t in range(5)]
    assert all(s[2] == builtin.demand[0][0] for s in seen)


# --------------------------------------------------------------------------- reads
def test_openapi_and_read_endpoints(app_factory, builtin):
    sc = builtin
    app = app_factory(sc, weight_total=100)
    with running(app) as c:
        spec = c.get("/openapi.json").json()
        post_op = spec["paths"]["/v1/slots"]["post"]
        schema = post_op["requestBody"]["content"]["application/json"]["schema"]
        assert {"demand", "price", "carbon_intensity", "wue"} <= set(schema["required"])
        for path in (
            "/v1/state",
            "/v1/weights",
            "/v1/weights/nginx",
            "/v1/weights/envoy",
            "/healthz",
            "/v1/slots/{slot}",
        ):
            assert path in spec["paths"], path
        out = post(c, slot_body(sc, 0), "k0").json()
        w = c.get("/v1/weights").json()
        assert w["from"]["slot"] == 0 and w["total"] == 100
        for region, servers in w["regions"].items():
            want = {
                f"{dc.lower()}.internal:8000": n
                for dc, n in out["weights"]["regions"][region]["datacenters"].items()
            }
            assert servers == want
        nginx = c.get("/v1/weights/nginx").text
        assert sum(ln.startswith("upstream ") for ln in nginx.splitlines()) == len(sc.regions)
        env = c.get("/v1/weights/envoy").json()
        env_yaml = yaml.safe_load(c.get("/v1/weights/envoy?format=yaml").text)
        assert env == env_yaml
        routes = env["virtual_hosts"][0]["routes"]
        assert len(routes) == len(sc.regions)
        for route in routes:
            region = route["match"]["headers"][0]["string_match"]["exact"]
            cl = route["route"]["weighted_clusters"]["clusters"]
            assert sum(x["weight"] for x in cl) == 100
            assert sorted(x["weight"] for x in cl) == sorted(w["regions"][region].values())
        boot = c.get("/v1/weights/envoy?bootstrap=true").json()
        names = {cl["name"] for cl in boot["static_resources"]["clusters"]}
        used = {x["name"] for r in routes for x in r["route"]["weighted_clusters"]["clusters"]}
        assert used <= names
        model_level = c.get("/v1/weights?level=model").json()
        assert all(sum(v.values()) == 100 for v in model_level["regions"].values())
        assert c.get("/v1/weights?level=rack").status_code == 422
        assert c.get("/v1/slots/abc").status_code == 422
        assert c.get("/healthz").json() == {"status": "ok", "slots": 1, "writable": True}


# --------------------------------------------------------------------------- pieces
@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=30), st.integers(1, 10_000))
def test_largest_remainder_sums_exactly(values, total):
    w = largest_remainder(np.asarray(values), total)
    s = sum(values)
    if s == 0:
        assert (w == 0).all()
        return
    assert w.sum() == total and (w >= 0).all()
    assert np.all(np.abs(w - np.asarray(values) / s * total) < 1 + 1e-9)


def test_command_line_needs_a_token(tmp_path, monkeypatch, capsys):
    from eqglb.cli.serve import main

    monkeypatch.delenv("EQGLB_TOKEN", raising=False)
    code = main(["--db", str(tmp_path / "t.db"), "--days", "1"])
    assert code == 2
    assert "token" in capsys.readouterr().err
    code = main(
        ["--db", str(tmp_path / "t.db"), "--days", "1", "--token", "x", "--address", "nowhere"]
    )
    assert code == 2
    assert "DATACENTER=HOST:PORT" in capsys.readouterr().err


def test_serve_registers_on_the_cli(capsys):
    from eqglb.cli import main

    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    for option in (
        "--scenario",
        "--db",
        "--token",
        "--read-token-required",
        "--policy",
        "--weight-total",
        "--synchronous",
    ):
        assert option in out
