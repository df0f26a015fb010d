"""Crash recovery: a real server process killed with SIGKILL under load, then restarted.

The server (``python -m eqglb.service``: uvicorn on a free loopback port) takes slots
from four concurrent clients; after enough acknowledgements it is killed with SIGKILL in
the middle of the load. Restarted on the same database it must hold every acknowledged
slot with the very response the client got, accept the retries of requests that were in
flight without applying any twice, and continue from the persisted state: replaying the
stored requests into a fresh in-process service gives exactly the same decisions.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from eqglb.builtin import builtin_scenario
from eqglb.service import create_app
from tests.test_service import AUTH, TOKEN, running, slot_body

DAYS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command(db: Path, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "eqglb.service", "--scenario", "builtin", "--days", str(DAYS),
            "--db", str(db), "--port", str(port), "--horizon", "100000",
            "--log-level", "warning", *extra]


def _start(db: Path, log: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """A real server process (uvicorn on a free loopback port) on ``db``, once healthy."""
    port = _free_port()
    env = dict(os.environ, EQGLB_TOKEN=TOKEN)
    cmd = _command(db, port, *extra)
    with log.open("ab") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=fh)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).json().get("status") == "ok":
                return proc, url
        except (httpx.HTTPError, ValueError):
            time.sleep(0.1)
    proc.kill()
    pytest.fail(f"server did not start: {log.read_text()[-2000:]}")


def _refused(db: Path, *extra: str) -> str:
    """Start a server that must refuse to start: it exits with code 2 (and never answers
    /healthz); returns what it printed."""
    port = _free_port()
    env = dict(os.environ, EQGLB_TOKEN=TOKEN)
    proc = subprocess.Popen(_command(db, port, *extra), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
            except httpx.HTTPError:
                time.sleep(0.1)
            else:
                pytest.fail(f"the server on {db} started; it should have refused")
    finally:
        if proc.poll() is None:
            proc.kill()
        out = proc.communicate(timeout=10)[0]
    assert proc.returncode == 2, f"exit {proc.returncode}, expected 2 (refused): {out[-2000:]}"
    return out


def test_sigkill_under_load_loses_no_acknowledged_slot(tmp_path):
    sc = builtin_scenario(days=DAYS)
    db, log = tmp_path / "svc.db", tmp_path / "server.log"
    proc, url = _start(db, log)
    acked: dict[str, dict[str, Any]] = {}       # key -> response the client got
    sent: dict[str, dict[str, Any]] = {}        # key -> body
    in_flight: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    try:
        first = slot_body(sc, 0)
        r = httpx.post(url + "/v1/slots", json=first, headers={**AUTH, "Idempotency-Key": "first"})
        assert r.status_code == 200, r.text
        acked["first"], sent["first"] = r.json(), first

        def client(c: int) -> None:
            with httpx.Client(base_url=url, timeout=10) as cl:
                n = 0
                while not stop.is_set():
                    key = f"c{c}-{n}"
                    body = slot_body(sc, (4 * n + c + 1) % sc.n_time, with_time=False)
                    with lock:
                        sent[key] = body
                    try:
                        resp = cl.post("/v1/slots", json=body,
                                       headers={**AUTH, "Idempotency-Key": key})
                    except httpx.HTTPError:
                        with lock:
                            in_flight.append(key)
                        return
                    assert resp.status_code == 200, resp.text
                    with lock:
                        acked[key] = resp.json()
                    n += 1

        threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 80 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)           # mid-load: clients are still posting
        proc.wait(10)
        stop.set()
        for t in threads:
            t.join(15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 80, f"only {len(acked)} slots acknowledged before the kill"
    assert in_flight, "no request was in flight at the kill: the load was not concurrent"

    proc, url = _start(db, log)
    try:
        with httpx.Client(base_url=url, timeout=10) as cl:
            listed = cl.get("/v1/slots", params={"limit": 10000}).json()
            keys = [s["idempotency_key"] for s in listed]
            assert [s["slot"] for s in listed] == list(range(len(listed)))
            assert len(set(keys)) == len(keys)
            assert set(acked) <= set(keys), "an acknowledged slot was lost"
            for s in listed:
                if s["idempotency_key"] in acked:
                    stored = cl.get(f"/v1/slots/{s['slot']}").json()
                    assert stored["response"] == acked[s["idempotency_key"]]
            times = [s["time"] for s in listed]
            assert times == sorted(times) and len(set(times)) == len(times)
            # retries of the requests in flight at the kill: applied at most once
            n_before = len(listed)
            for key in in_flight:
                r = cl.post("/v1/slots", json=sent[key], headers={**AUTH, "Idempotency-Key": key})
                assert r.status_code == 200, r.text
                if key in keys:
                    assert r.headers.get("idempotency-replayed") == "true"
                    assert r.json() == cl.get(f"/v1/slots/{keys.index(key)}").json()["response"]
            # the acknowledged responses replay unchanged too
            some = next(iter(acked))
            r = cl.post("/v1/slots", json=sent[some], headers={**AUTH, "Idempotency-Key": some})
            assert r.json() == acked[some]
            for n in range(5):                       # the next decisions after the restart
                key = f"after-{n}"
                sent[key] = slot_body(sc, (n + 7) % sc.n_time, with_time=False)
                r = cl.post("/v1/slots", json=sent[key], headers={**AUTH, "Idempotency-Key": key})
                assert r.status_code == 200, r.text
            final = cl.get("/v1/slots", params={"limit": 10000}).json()
            new_in_flight = sum(k not in keys for k in in_flight)
            assert len(final) == n_before + new_in_flight + 5
            stored = [cl.get(f"/v1/slots/{s['slot']}").json() for s in final]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()

    # the restarted service continued from the persisted state: a fresh service fed the
    # same requests in the same order decides exactly the same
    app = create_app(sc, tmp_path / "reference.db", TOKEN, horizon=100000)
    with running(app) as c:
        for s in stored:
            r = c.post("/v1/slots", content=json.dumps(s["request"]),
                       headers={**AUTH, "Idempotency-Key": s["idempotency_key"],
                                "Content-Type": "application/json"})
            assert r.status_code == 200, r.text
            assert r.json() == s["response"], f"slot {s['slot']} differs from the reference"
