"""``POST /v1/slots`` skips FastAPI's per-request stack (``app._ServiceApp``): every answer
must be the one the full stack gives, byte for byte, headers included.

Two apps on two databases get the same sequence of submissions (decisions, a replay, a
conflict, refusals of every kind: auth, size, body, order); one takes the direct path,
the other is forced through the whole stack.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eqglb.builtin import builtin_scenario
from eqglb.service import create_app
from eqglb.service.app import _ServiceApp

from .test_service import AUTH, TOKEN, running, slot_body


def _requests(sc: Any) -> list[tuple[dict[str, str], bytes]]:
    first = json.dumps(slot_body(sc, 0)).encode()
    second = json.dumps(slot_body(sc, 1, with_time=False)).encode()
    third = json.dumps(slot_body(sc, 2)).encode()
    key = lambda k: {**AUTH, "Idempotency-Key": k}  # noqa: E731
    return [
        (key("a"), first),
        (key("a"), first),  # replay
        (key("a"), second),  # idempotency conflict
        ({"Idempotency-Key": "b"}, second),  # no token
        ({"Authorization": "Bearer wrong", "Idempotency-Key": "b"}, second),
        ({"Authorization": "Basic xyz", "Idempotency-Key": "b"}, second),
        (key("b"), b"{not json"),
        (key("b"), json.dumps({"demand": {"nowhere": 1.0}}).encode()),
        ({**AUTH}, second),  # no idempotency key
        ({**key("b"), "Content-Length": str(10**9)}, second),  # declared too large
        (key("b"), b" " * (4 * 1024 * 1024 + 1)),  # too large
        (key("b"), second),
        (key("c"), first),  # out of order (time of slot 0 again)
        (key("d"), third),
    ]


def test_direct_path_answers_as_the_full_stack(tmp_path: Path) -> None:
    sc = builtin_scenario(days=1)
    direct = create_app(sc, tmp_path / "direct.db", TOKEN)
    full = create_app(sc, tmp_path / "full.db", TOKEN)
    assert isinstance(direct, _ServiceApp) and direct._slots_endpoint is not None
    full._slots_endpoint = None  # forced through the whole FastAPI stack
    calls = {"n": 0}
    endpoint = direct._slots_endpoint

    async def counted(request: Any) -> Any:
        calls["n"] += 1
        return await endpoint(request)

    direct._slots_endpoint = counted
    answers: dict[str, list[tuple[int, list[tuple[str, str]], bytes]]] = {}
    for name, app in (("direct", direct), ("full", full)):
        with running(app) as client:
            out = []
            for headers, body in _requests(sc):
                r = client.post("/v1/slots", content=body, headers=headers)
                out.append((r.status_code, sorted(r.headers.items()), r.content))
            out.append((0, [], client.get("/v1/state").content))
            answers[name] = out
    assert calls["n"] == len(_requests(sc))  # every POST took the direct path
    statuses = [a[0] for a in answers["direct"]]
    assert {200, 401, 403, 409, 413, 422} <= set(statuses)
    for a, b in zip(answers["direct"], answers["full"], strict=True):
        assert a == b


def test_direct_path_server_error_is_the_plain_500(tmp_path: Path) -> None:
    """An exception escaping the endpoint: 500 'Internal Server Error' (text/plain), as
    Starlette's ServerErrorMiddleware answers, and the exception is raised on."""
    sc = builtin_scenario(days=1)
    app = create_app(sc, tmp_path / "x.db", TOKEN)

    async def broken(request: Any) -> Any:
        raise RuntimeError("boom")

    app._slots_endpoint = broken
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/v1/slots", content=b"{}", headers=AUTH)
        assert r.status_code == 500 and r.text == "Internal Server Error"
        assert r.headers["content-type"].startswith("text/plain")
    with TestClient(app) as client, pytest.raises(RuntimeError, match="boom"):
        client.post("/v1/slots", content=b"{}", headers=AUTH)


def test_direct_path_yields_to_user_middleware(tmp_path: Path) -> None:
    """With user middleware the request takes the full stack (the middleware runs)."""
    sc = builtin_scenario(days=1)
    app = create_app(sc, tmp_path / "x.db", TOKEN)
    seen: list[str] = []

    @app.middleware("http")
    async def note(request: Any, call_next: Any) -> Any:
        seen.append(request.url.path)
        return await call_next(request)

    with running(app) as client:
        body = json.dumps(slot_body(sc, 0)).encode()
        r = client.post("/v1/slots", content=body, headers={**AUTH, "Idempotency-Key": "k"})
        assert r.status_code == 200
    assert seen == ["/v1/slots"]
