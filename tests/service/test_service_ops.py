"""Operability of the dispatch service (issue 13 item 5): Prometheus ``/metrics`` scraped
from a real server, JSON log lines, per-app metric registries, ``eqglb serve --check``.

Real servers are forked by the zygote of test_service_crash.py.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from eqglb.builtin import builtin_scenario
from eqglb.service import create_app
from eqglb.service.metrics import JsonFormatter, rejection_reason
from tests.service.test_service import AUTH, TOKEN, running, slot_body
from tests.service.test_service_crash import DAYS, _start
from tests.service.test_service_faults import _make_read_only, _make_writable

SC = builtin_scenario(days=DAYS)


def _scrape(text: str) -> dict[str, list[Any]]:
    """Samples of an exposition by metric family name (the parser is the test)."""
    return {f.name: list(f.samples) for f in text_string_to_metric_families(text)}


def _value(
    fams: dict[str, list[Any]], family: str, sample: str | None = None, **labels: str
) -> float:
    hits = [
        s.value
        for s in fams[family]
        if s.name == (sample or family) and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(hits) == 1, f"{family} {sample} {labels}: {hits}"
    return float(hits[0])


def _post(url: str, body: Any, key: str | None, auth: bool = True) -> httpx.Response:
    h = dict(AUTH) if auth else {}
    if key is not None:
        h["Idempotency-Key"] = key
    return httpx.post(url + "/v1/slots", json=body, headers=h, timeout=20)


def test_metrics_scraped_from_a_real_server_count_what_was_sent(tmp_path):
    db, log = tmp_path / "m.db", tmp_path / "server.log"
    proc, url = _start(db, log, "--log-format", "json", "--log-level", "info")
    try:
        for t in range(4):
            r = _post(url, slot_body(SC, t, with_time=t == 0), f"k{t}")
            assert r.status_code == 200, r.text
        r = _post(url, slot_body(SC, 0), "k0")  # a retry: replayed
        assert r.status_code == 200 and r.headers["idempotency-replayed"] == "true"
        assert _post(url, slot_body(SC, 1), "k-late").status_code == 409  # out of order
        assert (
            _post(url, slot_body(SC, 5, with_time=False), "k-anon", auth=False).status_code == 401
        )
        assert _post(url, {"demand": {}}, "k-bad").status_code == 422  # missing fields
        m = httpx.get(url + "/metrics", timeout=20)
        state = httpx.get(url + "/v1/state", timeout=20).json()
    finally:
        proc.kill()
        proc.wait(10)
    assert m.status_code == 200
    assert m.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    fams = _scrape(m.text)
    assert _value(fams, "eqglb_decisions", "eqglb_decisions_total") == 4
    assert _value(fams, "eqglb_replayed_requests", "eqglb_replayed_requests_total") == 1
    rejected = {
        (s.labels["status"], s.labels["reason"]): s.value
        for s in fams["eqglb_rejected_requests"]
        if s.name == "eqglb_rejected_requests_total"
    }
    assert rejected == {
        ("409", "out_of_order"): 1,
        ("401", "unauthorized"): 1,
        ("422", "missing"): 1,
    }
    lat = "eqglb_decision_latency_seconds"
    assert _value(fams, lat, lat + "_count") == 4
    assert 0 < _value(fams, lat, lat + "_sum") < 4 * 10
    assert _value(fams, lat, lat + "_bucket", le="+Inf") == 4
    batch = "eqglb_commit_batch_size"
    assert _value(fams, batch, batch + "_sum") == 4  # every decided slot, once
    assert 1 <= _value(fams, batch, batch + "_count") <= 4
    assert _value(fams, "eqglb_slots") == 4 == state["slots"]
    cum = state["cumulative"]
    assert _value(fams, "eqglb_worst_carbon_kg") == pytest.approx(max(cum["carbon"].values()))
    assert _value(fams, "eqglb_worst_water_liters") == pytest.approx(max(cum["water"].values()))
    assert _value(fams, "eqglb_worst_quality_loss") == pytest.approx(max(cum["social"].values()))
    assert _value(fams, "eqglb_worst_carbon_kg") > 0
    dc = next(iter(cum["carbon"]))
    assert _value(fams, "eqglb_cumulative_carbon_kg", datacenter=dc) == pytest.approx(
        cum["carbon"][dc]
    )
    assert _value(fams, "eqglb_cumulative_energy_cost_usd") == pytest.approx(cum["energy_cost"])

    # one JSON line per decision, replay and rejection (uvicorn's own lines are text)
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    events = [r for r in records if r.get("logger") == "eqglb.service.requests"]
    assert [e["event"] for e in events] == ["decision"] * 4 + ["replay"] + ["rejected"] * 3
    assert [e["slot"] for e in events[:4]] == [0, 1, 2, 3]
    assert [e["key"] for e in events[:5]] == ["k0", "k1", "k2", "k3", "k0"]
    assert [(e["status"], e["reason"]) for e in events[5:]] == [
        (409, "out_of_order"),
        (401, "unauthorized"),
        (422, "missing"),
    ]
    assert all(
        e["latency_ms"] >= 0 and e["level"] == "info" and e["ts"].endswith("Z") for e in events
    )


def test_two_apps_in_one_process_have_their_own_metrics(tmp_path):
    a = create_app(SC, tmp_path / "a.db", TOKEN)
    b = create_app(SC, tmp_path / "b.db", TOKEN)  # the global registry would clash
    with running(a) as ca, running(b) as cb:
        for t in range(2):
            r = ca.post(
                "/v1/slots",
                json=slot_body(SC, t, with_time=t == 0),
                headers={**AUTH, "Idempotency-Key": f"a{t}"},
            )
            assert r.status_code == 200, r.text
        r = cb.post(
            "/v1/slots",
            json=slot_body(SC, 0),
            headers={"Authorization": "Bearer wrong", "Idempotency-Key": "b0"},
        )
        assert r.status_code == 403
        fa, fb = _scrape(ca.get("/metrics").text), _scrape(cb.get("/metrics").text)
    assert _value(fa, "eqglb_decisions", "eqglb_decisions_total") == 2
    assert _value(fb, "eqglb_decisions", "eqglb_decisions_total") == 0
    assert (
        _value(
            fb,
            "eqglb_rejected_requests",
            "eqglb_rejected_requests_total",
            status="403",
            reason="forbidden",
        )
        == 1
    )
    assert not [
        s for s in fa["eqglb_rejected_requests"] if s.name == "eqglb_rejected_requests_total"
    ]
    assert _value(fa, "eqglb_slots") == 2 and _value(fb, "eqglb_slots") == 0


def test_metrics_follow_read_token_required(tmp_path):
    app = create_app(SC, tmp_path / "a.db", TOKEN, read_token_required=True)
    with running(app) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers=AUTH).status_code == 200


def test_rejection_reason_and_json_formatter():
    assert rejection_reason(409, b'{"detail": [{"type": "out_of_order"}]}') == "out_of_order"
    assert rejection_reason(500, b'{"detail": "server error: boom"}') == "server_error"
    assert rejection_reason(413, b"not json") == "too_large"
    assert rejection_reason(418) == "http_418"
    import logging

    rec = logging.LogRecord(
        "eqglb.service.requests", logging.INFO, __file__, 1, "decision slot=%s", (3,), None
    )
    rec.eqglb = {"event": "decision", "slot": 3}
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    d = json.loads(line)
    assert d["msg"] == "decision slot=3" and d["event"] == "decision" and d["slot"] == 3


# --------------------------------------------------------------------------- --check
def _check(capsys: Any, *args: str) -> tuple[int, str, str]:
    from eqglb.cli.serve import main

    code = main(["--check", "--days", str(DAYS), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_check_good_config_exits_0_and_creates_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EQGLB_TOKEN", TOKEN)
    new = tmp_path / "sub" / "new.db"
    code, out, err = _check(capsys, "--db", str(new))
    assert code == 0, err
    assert out.count("\n") == 1 and out.startswith("eqglb serve --check: ok:")
    assert "10 data centres" in out and "will be created" in out
    assert not new.exists() and not new.parent.exists()
    # an existing database: opened as the server would, closed again, left usable
    db = tmp_path / "old.db"
    with running(create_app(SC, db, TOKEN)) as c:
        assert (
            c.post(
                "/v1/slots", json=slot_body(SC, 0), headers={**AUTH, "Idempotency-Key": "k0"}
            ).status_code
            == 200
        )
    code, out, err = _check(capsys, "--db", str(db))
    assert code == 0, err
    assert "(1 slots, writable, not locked)" in out
    # through the eqglb command line too
    from eqglb.cli import main as cli_main

    assert cli_main(["serve", "--check", "--days", str(DAYS), "--db", str(db)]) == 0
    assert "ok:" in capsys.readouterr().out


def test_check_bad_configs_exit_2_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EQGLB_TOKEN", raising=False)
    code, out, err = _check(capsys, "--db", str(tmp_path / "x.db"))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "token is required" in err
    assert not (tmp_path / "x.db").exists()

    monkeypatch.setenv("EQGLB_TOKEN", TOKEN)
    db = tmp_path / "ro.db"
    with running(create_app(SC, db, TOKEN)) as c:
        assert (
            c.post(
                "/v1/slots", json=slot_body(SC, 0), headers={**AUTH, "Idempotency-Key": "k0"}
            ).status_code
            == 200
        )
    _make_read_only(db)
    try:
        code, out, err = _check(capsys, "--db", str(db))
    finally:
        _make_writable(db)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "read-only" in err and str(db) in err

    code, _, err = _check(capsys, "--db", str(db), "--q", "-3")  # a bad objective
    assert code == 2 and "q" in err

    code, _, err = _check(capsys, "--db", str(db), "--scenario", str(tmp_path / "nope"))
    assert code == 2 and "nope" in err


def test_check_refuses_a_database_held_by_a_running_server(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EQGLB_TOKEN", TOKEN)
    db, log = tmp_path / "held.db", tmp_path / "server.log"
    proc, url = _start(db, log)
    try:
        code, out, err = _check(capsys, "--db", str(db), "--horizon", "100000")
        assert code == 2 and out == "" and "in use" in err
        h = httpx.get(url + "/healthz", timeout=10)  # the server was not disturbed
        assert h.status_code == 200 and h.json()["writable"] is True
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode is not None
    # once it is gone, the check passes with the server's settings, and only with them
    code, out, err = _check(capsys, "--db", str(db), "--horizon", "100000")
    assert code == 0 and "not locked" in out, err
    code, out, err = _check(capsys, "--db", str(db))
    assert code == 2 and "other settings" in err and "horizon" in err


def test_bad_log_format_is_refused(capsys):
    from eqglb.cli.serve import main

    assert main(["--log-format", "xml", "--check"]) == 2
    assert "--log-format" in capsys.readouterr().err


def test_a_failed_start_installs_no_log_handler(tmp_path, monkeypatch, capsys):
    import logging

    from eqglb.cli.serve import main

    logger = logging.getLogger("eqglb.service")
    before = list(logger.handlers)
    monkeypatch.delenv("EQGLB_TOKEN", raising=False)
    assert main(["--db", str(tmp_path / "t.db"), "--days", "1", "--log-format", "json"]) == 2
    assert "token" in capsys.readouterr().err
    assert logger.handlers == before
