"""Kubernetes Gateway API ``HTTPRoute`` objects, validated without a cluster.

The schema is the published one: the OpenAPI v3 schema of the ``HTTPRoute`` CRD
(``gateway.networking.k8s.io/v1``) as the npm package ``@kubernetes-models/gateway-api``
0.5.1 (MIT licence, by Tommy Chen) carries it, generated from the Gateway API v1.0.0
release's ``standard-install.yaml`` and ``experimental-install.yaml``; its ``ObjectMeta``
comes from the package's dependency ``@kubernetes-models/apimachinery``. Nothing is copied
into the repository: the tests read the installed package (``scripts/install-test-deps``
runs ``npm install --prefix .test-deps @kubernetes-models/gateway-api@0.5.1``; set
``EQGLB_K8S_MODELS`` to another ``node_modules/@kubernetes-models`` folder) and validate
with the ``jsonschema`` package. Unknown fields are refused, as the API server's strict
field validation does. Not checked: the CRD's CEL rules (``x-kubernetes-validations``),
which only an API server evaluates.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from eqglb.builtin import builtin_scenario
from eqglb.scenario import Scenario
from eqglb.service import create_app
from eqglb.service.proxy import (
    GATEWAY_MAX_WEIGHT,
    gateway_backend_ref,
    render_gateway,
    rescale_weights,
)
from tests.service.test_service import TOKEN, post, running, slot_body

PACKAGE_VERSION = "0.5.1"
INSTALL = (
    "npm install --prefix .test-deps --no-save "
    f"@kubernetes-models/gateway-api@{PACKAGE_VERSION} (scripts/install-test-deps)"
)


def models_dir() -> Path:
    env = os.environ.get("EQGLB_K8S_MODELS")
    root = (
        Path(env)
        if env
        else (
            Path(__file__).resolve().parents[2]
            / ".test-deps"
            / "node_modules"
            / "@kubernetes-models"
        )
    )
    pkg = root / "gateway-api" / "package.json"
    if not pkg.exists():
        pytest.fail(f"the Gateway API schema is not installed at {root}: {INSTALL}")
    version = json.loads(pkg.read_text())["version"]
    if version != PACKAGE_VERSION:
        pytest.fail(
            f"@kubernetes-models/gateway-api {version} at {root}; the tests need "
            f"{PACKAGE_VERSION}: {INSTALL}"
        )
    return root


def schema_of(js: Path) -> dict[str, Any]:
    """The JSON literal ``const schema = {...};`` of a generated model module."""
    text = js.read_text()
    at = text.index("const schema = ") + len("const schema = ")
    obj, _ = json.JSONDecoder().raw_decode(text, at)
    return obj


def strict(schema: Any) -> Any:
    """Refuse unknown fields where the schema lists the properties (strict validation)."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


_VALIDATOR: jsonschema.Draft7Validator | None = None


def validator() -> jsonschema.Draft7Validator:
    global _VALIDATOR
    if _VALIDATOR is None:
        root = models_dir()

        def retrieve(uri: str) -> Resource:
            # "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" -> IoK8s...V1ObjectMeta.js
            name = "".join(p[:1].upper() + p[1:] for p in uri.rstrip("#").split("."))
            path = root / "apimachinery" / "_schemas" / f"{name}.js"
            return Resource.from_contents(strict(schema_of(path)), default_specification=DRAFT7)

        route = strict(
            schema_of(root / "gateway-api" / "gateway.networking.k8s.io" / "v1" / "HTTPRoute.js")
        )
        _VALIDATOR = jsonschema.Draft7Validator(route, registry=Registry(retrieve=retrieve))
    return _VALIDATOR


def errors(obj: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(obj)
    ]


def route_weights(routes: list[dict[str, Any]]) -> dict[str, dict[tuple[str, int], int]]:
    """``{region: {(service, port): weight}}`` of rendered routes."""
    out = {}
    for r in routes:
        for rule in r["spec"]["rules"]:
            (match,) = rule["matches"]
            (hdr,) = match["headers"]
            out[hdr["value"]] = {(b["name"], b["port"]): b["weight"] for b in rule["backendRefs"]}
    return out


def test_gateway_routes_from_live_weights_validate_against_crd_schema(tmp_path):
    sc = builtin_scenario(days=2)
    app = create_app(
        sc,
        tmp_path / "svc.db",
        TOKEN,
        addresses={
            dc: f"llm-{i}.inference.svc.cluster.local:8000" for i, dc in enumerate(sc.datacenters)
        },
        weight_total=1000,
    )
    with running(app) as c:
        for t in range(3):
            assert post(c, slot_body(sc, t), f"k{t}").status_code == 200
        weights = {
            level: c.get(f"/v1/weights?level={level}").json()["regions"]
            for level in ("datacenter", "model")
        }
        docs = {
            level: c.get(f"/v1/weights/gateway?level={level}&namespace=edge").json()
            for level in ("datacenter", "model")
        }
        as_yaml = list(
            yaml.safe_load_all(c.get("/v1/weights/gateway?format=yaml&namespace=edge").text)
        )
        assert c.get("/v1/weights/gateway?name=Not_A_Label").status_code == 422
    assert any(len(v) > 1 for v in weights["datacenter"].values()), "no split: weak test"
    for level, doc in docs.items():
        assert doc["kind"] == "List" and doc["items"]
        for route in doc["items"]:
            assert errors(route) == [], (level, route)
            assert route["metadata"]["namespace"] == "edge"
            assert len(route["spec"]["rules"]) <= 16
        got = route_weights(doc["items"])
        want = {
            region: {
                tuple(gateway_backend_ref(a)[k] for k in ("name", "port")): w
                for a, w in row.items()
            }
            for region, row in weights[level].items()
            if row
        }
        assert got == want  # weight_total 1000 <= 1,000,000: passed unchanged
    assert as_yaml == docs["datacenter"]["items"]
    # in-cluster DNS names become the Service and its namespace
    ref = docs["datacenter"]["items"][0]["spec"]["rules"][0]["backendRefs"][0]
    assert ref["name"].startswith("llm-") and ref["namespace"] == "inference"
    assert ref["port"] == 8000


def test_crd_schema_refuses_what_the_api_server_would():
    """The validator is live: each broken route is refused, the intact one accepted."""
    (route,) = render_gateway(
        {"eu": {"a.internal:80": 7, "b.internal:81": 3}},
        namespace="edge",
        gateway="gw",
        gateway_namespace="infra",
    )
    assert errors(route) == []
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "gw",
            "namespace": "infra",
        }
    ]

    def broken(edit: Any) -> dict[str, Any]:
        r = json.loads(json.dumps(route))
        edit(r)
        return r

    rule = lambda r: r["spec"]["rules"][0]  # noqa: E731
    cases = {
        "weight over 1,000,000": lambda r: rule(r)["backendRefs"][0].update(
            weight=GATEWAY_MAX_WEIGHT + 1
        ),
        "negative weight": lambda r: rule(r)["backendRefs"][0].update(weight=-1),
        "17 rules": lambda r: r["spec"].update(rules=[rule(r)] * 17),
        "17 backendRefs": lambda r: rule(r).update(backendRefs=rule(r)["backendRefs"] * 9),
        "port 0": lambda r: rule(r)["backendRefs"][0].update(port=0),
        "unknown match type": lambda r: rule(r)["matches"][0]["headers"][0].update(type="Prefix"),
        "bad header name": lambda r: rule(r)["matches"][0]["headers"][0].update(name="X Region"),
        "unknown field": lambda r: rule(r).update(backendRef=[]),
        "wrong apiVersion": lambda r: r.update(apiVersion="gateway.networking.k8s.io/v2"),
        "bad metadata": lambda r: r["metadata"].update(labels={"a": 1}),
    }
    for what, edit in cases.items():
        assert errors(broken(edit)), what


def test_gateway_many_and_awkward_regions():
    regions = [f"region {i}" for i in range(36)] + [
        'eu "west"',
        "it's $HOME",
        "Ünïcode",
        "-i",
        "a,b",
        "x" * 4096,
    ]
    weights = {
        r: {f"10.0.{i}.1:8000": 60, "svc-b.ns.svc:9000": 40, "zero.internal:1": 0}
        for i, r in enumerate(regions)
    }
    weights["nothing"] = {"10.9.9.9:80": 0}
    routes = render_gateway(weights, name="glb")
    assert [r["metadata"]["name"] for r in routes] == ["glb-0", "glb-1", "glb-2"]
    for r in routes:
        assert errors(r) == [], r["metadata"]["name"]
    got = route_weights(routes)
    assert set(got) == set(regions)  # "nothing" has no positive weight: no rule
    assert got["Ünïcode"] == {
        ("svc-10-0-38-1", 8000): 60,
        ("svc-b", 9000): 40,
        ("zero-internal", 1): 0,
    }
    # a Service given by name overrides the address-derived one
    (r,) = render_gateway(
        {"eu": {"10.0.0.1:8000": 1}}, services={"10.0.0.1:8000": {"name": "llm", "namespace": "ai"}}
    )
    assert r["spec"]["rules"][0]["backendRefs"] == [
        {"name": "llm", "namespace": "ai", "port": 8000, "weight": 1}
    ]
    assert errors(r) == []
    with pytest.raises(ValueError, match="4096"):
        render_gateway({"x" * 4097: {"a:1": 1}})
    with pytest.raises(ValueError, match="backendRefs"):
        render_gateway({"r": {f"10.0.0.{i}:80": 1 for i in range(17)}})
    with pytest.raises(ValueError, match="DNS label"):
        render_gateway({"r": {"a:1": 1}}, namespace="Bad_NS")


def test_gateway_rounding_error_under_one_millionth():
    """Weights above 1,000,000 are re-apportioned: the largest lands on 999,999 or
    1,000,000 and every share moves by less than 1 / T <= 1e-6 [fraction of the region's requests]."""
    rng = np.random.default_rng(7)
    for _ in range(100):
        k = int(rng.integers(1, 16))
        w = rng.random(k) * 10 ** rng.uniform(6.5, 12)
        (r,) = render_gateway({"eu": {f"10.0.0.{i}:80": float(x) for i, x in enumerate(w)}})
        assert errors(r) == []
        got = np.array([b["weight"] for b in r["spec"]["rules"][0]["backendRefs"]], float)
        assert GATEWAY_MAX_WEIGHT - 1 <= got.max() <= GATEWAY_MAX_WEIGHT
        assert np.abs(got / got.sum() - w / w.sum()).max() < 1 / GATEWAY_MAX_WEIGHT
    exact = {"a": 999_999, "b": 1, "c": 0}
    assert rescale_weights(exact, GATEWAY_MAX_WEIGHT) == exact


def test_gateway_endpoint_refuses_a_region_over_16_upstreams(tmp_path):
    """17 data centres serve one region: its rule would need 17 backendRefs (the schema
    allows 16), so the endpoint answers 409 with the reason, not a route the API server
    would refuse."""
    n, T = 17, 2
    sc = Scenario(
        datacenters=[f"dc{i}" for i in range(n)],
        regions=["r"],
        models=["m"],
        time=pd.date_range("2022-01-01", periods=T, freq="h"),
        demand=np.full((T, 1), 100.0),
        price=np.full((T, n), 0.1),
        carbon_intensity=np.full((T, n), 0.3),
        wue=np.zeros((T, n)),
        ewif=np.zeros((T, n)),
        pue=[1.0] * n,
        energy_per_request=[[1.0]] * n,
        capacity_per_request=[1.0],
        capacity=[1000.0] * n,
        quality_loss=[0.0],
        name="seventeen",
    )
    app = create_app(sc, tmp_path / "svc.db", TOKEN)
    with running(app) as c:
        assert len(c.get("/v1/weights").json()["regions"]["r"]) == n  # uniform start
        res = c.get("/v1/weights/gateway")
        assert c.get("/v1/weights/haproxy").status_code == 200
    assert res.status_code == 409
    assert "16 backendRefs" in res.text
