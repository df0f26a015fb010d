"""Schema-driven fuzzing of the dispatch service: no input may cause a 5xx.

Bodies for ``POST /v1/slots`` are generated from the request's JSON schema
(``SlotIn.model_json_schema()``): every property of the schema, with values drawn from
the schema's type (maps keyed by known and unknown names holding numbers in and out of
range, NaN, infinities, strings, booleans, nulls and nested objects; timestamps valid and
not), plus mutations of valid bodies (a field dropped, replaced or added) and arbitrary
JSON. Every response must be < 500; a rejected request must leave the state unchanged and
an accepted one must route exactly the demand with weights summing to the total.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from eqglb.builtin import builtin_scenario
from eqglb.service import create_app
from eqglb.service.schemas import SlotIn
from tests.service.test_service import AUTH, TOKEN, routing_array, running, slot_body

SC = builtin_scenario(days=2)
SCHEMA = SlotIn.model_json_schema()
PROPS = SCHEMA["properties"]

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 2e4),
    st.integers(-10, 10**13),
    st.just(0),
    st.just(-0.0),
    st.sampled_from([1e-300, 5e-324, 1e308, -1e308]),
)
scalars = st.one_of(numbers, st.text(max_size=8), st.booleans(), st.none())
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
names = st.one_of(st.sampled_from(SC.regions + SC.datacenters + SC.models), st.text(max_size=12))


def _for_schema(prop: dict) -> st.SearchStrategy:
    """Values for one schema property, most of them of the schema's own type."""
    kinds = [s.get("type") for s in prop.get("anyOf", [prop])]
    options = [json_values]
    if "object" in kinds:
        known = st.dictionaries(names, st.one_of(numbers, numbers, json_values), max_size=12)
        per_model = st.dictionaries(names, st.dictionaries(names, numbers, max_size=4), max_size=3)
        options += [known, known, per_model]
    if "string" in kinds:
        options += [
            st.text(max_size=30),
            st.datetimes().map(lambda d: d.isoformat()),
            st.sampled_from(
                [
                    "2022-09-22T00:00:00Z",
                    "2021-01-01T00:00:00+05:00",
                    "2099-12-31T23:00:00",
                    "not a time",
                    "",
                ]
            ),
        ]
    if "null" in kinds:
        options.append(st.none())
    return st.one_of(options)


@st.composite
def schema_bodies(draw):
    body = {}
    for name, prop in PROPS.items():
        if draw(st.booleans()):
            body[name] = draw(_for_schema(prop))
    if draw(st.integers(0, 9)) == 0:
        body[draw(st.text(max_size=6))] = draw(json_values)
    return body


@st.composite
def mutated_valid_bodies(draw):
    t = draw(st.integers(0, SC.n_time - 1))
    body = slot_body(SC, t, with_time=draw(st.integers(0, 3)) == 0)
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3]))):
        field = draw(st.sampled_from(sorted(PROPS)))
        action = draw(st.sampled_from(["drop", "replace", "entry", "entry", "scale"]))
        if action == "drop":
            body.pop(field, None)
        elif action == "replace":
            body[field] = draw(_for_schema(PROPS[field]))
        elif action == "entry" and isinstance(body.get(field), dict):
            body[field][draw(names)] = draw(st.one_of(numbers, json_values))
        elif action == "scale" and isinstance(body.get(field), dict):
            k = draw(st.sampled_from(sorted(body[field]) or ["x"]))
            v = body[field].get(k)
            if isinstance(v, float):
                body[field][k] = v * draw(st.sampled_from([0.0, -1.0, 10.0, 1e6, 1e12]))
    return body


bodies = st.one_of(
    schema_bodies(),
    mutated_valid_bodies(),
    mutated_valid_bodies(),
    mutated_valid_bodies(),
    json_values,
)
keys = st.one_of(
    st.uuids().map(str),
    st.uuids().map(str),
    st.none(),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=210),
)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    app = create_app(
        SC, tmp_path_factory.mktemp("fuzz") / "fuzz.db", TOKEN, horizon=10**6, weight_total=100
    )
    with running(app) as c:
        yield c


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(body=bodies, key=keys, header_key=st.booleans())
def test_fuzzed_slots_never_5xx(client, body, key, header_key):
    before = client.get("/v1/state").json()
    raw = json.dumps(body, allow_nan=True)  # Python clients can send NaN/Infinity
    headers = {**AUTH, "Content-Type": "application/json"}
    if key is not None and header_key:
        headers["Idempotency-Key"] = key
    elif key is not None and isinstance(body, dict) and "idempotency_key" not in body:
        raw = json.dumps({**body, "idempotency_key": key}, allow_nan=True)
    r = client.post("/v1/slots", content=raw, headers=headers)
    assert r.status_code < 500, (r.status_code, r.text, raw[:500])
    event(f"status {r.status_code}")
    after = client.get("/v1/state").json()
    if r.status_code >= 400:
        detail = r.json()["detail"]
        assert detail and all(d["loc"] and d["msg"] for d in detail)
        assert after == before
        return
    assert r.status_code == 200
    out = r.json()
    if r.headers.get("idempotency-replayed") == "true":
        assert after == before
        return
    assert after["slots"] == before["slots"] + 1
    y = routing_array(SC, out)
    demand = np.array([out["routing"][reg]["demand"] for reg in SC.regions])
    assert np.allclose(y.sum(axis=(0, 2)), demand, rtol=1e-6, atol=1e-6)
    for reg, w in out["weights"]["regions"].items():
        assert sum(w["datacenters"].values()) == 100
        if demand[SC.regions.index(reg)] > 0:
            total = sum(x["fraction"] for x in out["routing"][reg]["routes"])
            assert math.isclose(total, 1.0, rel_tol=1e-6)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(
        ["/v1/weights", "/v1/weights/nginx", "/v1/weights/envoy", "/v1/slots", "/v1/state"]
    ),
    params=st.dictionaries(
        st.sampled_from(["level", "format", "map", "bootstrap", "header", "after", "limit", "x"]),
        st.text(max_size=10),
        max_size=3,
    ),
)
def test_fuzzed_queries_never_5xx(client, path, params):
    r = client.get(path, params=params)
    assert r.status_code < 500, (path, params, r.text)
