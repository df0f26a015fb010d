"""Faults of issue 15 (service: durability and correctness), one regression test per item.

Every test runs the real server (``python -m eqglb.service``: uvicorn on a loopback port)
on a real SQLite file, and damages what a real fault would: a slot time far in the
future, a row that cannot be stored (a trigger in the database), a second service through
a hard link or a symbolic link, a read-only file, a path with URI characters, bytes
changed on disk, a damaged write-ahead log after a kill, oversized and trickled headers.
The last tests check the OpenAPI schema and run schemathesis against the live server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from eqglb.builtin import builtin_scenario
from tests.service.test_service import AUTH, slot_body
from tests.service.test_service_crash import DAYS, _refused, _start

SC = builtin_scenario(days=DAYS)


def _post(url: str, body: dict[str, Any], key: str, timeout: float = 20) -> httpx.Response:
    return httpx.post(
        url + "/v1/slots", json=body, headers={**AUTH, "Idempotency-Key": key}, timeout=timeout
    )


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _server(db: Path, log: Path, *extra: str) -> Any:
    proc, url = _start(db, log, *extra)
    try:
        yield proc, url
    finally:
        _stop(proc)


def _detail(r: httpx.Response) -> list[dict[str, Any]]:
    d = r.json()["detail"]
    return d if isinstance(d, list) else [{"loc": [], "msg": d}]


def _fill(url: str, n: int, prefix: str = "k") -> list[dict[str, Any]]:
    """Post the first slot (with its time) and n - 1 more (one slot length apart)."""
    out = []
    for t in range(n):
        r = _post(url, slot_body(SC, t % SC.n_time, with_time=t == 0), f"{prefix}{t}")
        assert r.status_code == 200, r.text
        out.append(r.json())
    return out


# --------------------------------------------------------------------------- S1
def test_s1_far_future_time_is_422_and_never_acknowledged(tmp_path):
    db, log = tmp_path / "s1.db", tmp_path / "log"
    with _server(db, log) as (proc, url):
        _fill(url, 1)
        far = slot_body(SC, 1, time="9999-12-31T23:00:00Z")
        for _ in range(2):  # the retry is refused the same way
            r = _post(url, far, "far")
            assert r.status_code == 422, r.text
            assert "idempotency-replayed" not in r.headers
            (item,) = _detail(r)
            assert item["loc"] == ["body", "time"]
            assert "1970-01-01T00:00:00Z" in item["msg"] and "2262-01-01T00:00:00Z" in item["msg"]
        r = _post(url, slot_body(SC, 1), "next")  # the service is not wedged
        assert r.status_code == 200, r.text
        assert r.json()["slot"] == 1
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    with _server(db, log) as (_, url):
        listed = httpx.get(url + "/v1/slots").json()
        assert [s["idempotency_key"] for s in listed] == ["k0", "next"]
        r = _post(url, far, "far")  # still never acknowledged after a restart
        assert r.status_code == 422


# --------------------------------------------------------------------------- S2
def _burst(url: str, bodies: list[tuple[str, dict[str, Any]]]) -> dict[str, httpx.Response]:
    """Post all bodies at once (one thread each, released together)."""
    out: dict[str, httpx.Response] = {}
    gate = threading.Barrier(len(bodies))

    def one(key: str, body: dict[str, Any]) -> None:
        gate.wait()
        out[key] = _post(url, body, key, timeout=60)

    threads = [threading.Thread(target=one, args=kb) for kb in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return out


def test_s2_poison_time_fails_only_itself(tmp_path):
    db, log = tmp_path / "s2.db", tmp_path / "log"
    with _server(db, log) as (_, url):
        _fill(url, 1)
        good = 0
        for rnd in range(3):
            bodies = [
                (f"poison-{rnd}-{i}", slot_body(SC, 2, time="2300-01-01T00:00:00Z"))
                for i in range(3)
            ]
            bodies += [
                (f"good-{rnd}-{i}", slot_body(SC, (i + 1) % SC.n_time, with_time=False))
                for i in range(9)
            ]
            res = _burst(url, bodies)
            for key, r in res.items():
                if key.startswith("poison"):
                    assert r.status_code == 422, r.text
                    assert _detail(r)[0]["loc"] == ["body", "time"]
                else:
                    assert r.status_code == 200, f"{key}: {r.status_code} {r.text}"
                    good += 1
        listed = httpx.get(url + "/v1/slots", params={"limit": 1000}).json()
        assert [s["slot"] for s in listed] == list(range(1 + good))


def test_s2_unstorable_row_fails_only_itself(tmp_path):
    """A row the database refuses (a trigger aborts its insert) in a group commit: that
    request gets 503, every other one of its batch is stored and answered 200."""
    db, log = tmp_path / "s2b.db", tmp_path / "log"
    with _server(db, log) as (_, url):
        _fill(url, 1)
    with sqlite3.connect(db) as con:
        con.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON slots WHEN NEW.idempotency_key "
            "LIKE 'poison%' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
        )
    con.close()
    with _server(db, log) as (_, url):
        good = 0
        for rnd in range(3):
            bodies = [(f"poison-{rnd}", slot_body(SC, 1, with_time=False))]
            bodies += [
                (f"good-{rnd}-{i}", slot_body(SC, (i + 1) % SC.n_time, with_time=False))
                for i in range(11)
            ]
            res = _burst(url, bodies)
            for key, r in res.items():
                if key.startswith("poison"):
                    assert r.status_code == 503, r.text
                else:
                    assert r.status_code == 200, f"{key}: {r.status_code} {r.text}"
                    good += 1
        # the poisoned request may have been the last one re-committed: one more good
        # write, then /healthz reports writes as possible again
        r = _post(url, slot_body(SC, 0, with_time=False), "good-after")
        assert r.status_code == 200, r.text
        good += 1
        h = httpx.get(url + "/healthz")  # the last write succeeded
        assert h.status_code == 200 and h.json()["writable"] is True
        listed = httpx.get(url + "/v1/slots", params={"limit": 1000}).json()
        assert [s["slot"] for s in listed] == list(range(1 + good))
        assert not any(s["idempotency_key"].startswith("poison") for s in listed)
        # every stored response is the one its client got (no gap, no decision twice)
        for s in listed[1:]:
            assert (
                res.get(s["idempotency_key"]) is None
                or httpx.get(f"{url}/v1/slots/{s['slot']}").json()["response"]
                == res[s["idempotency_key"]].json()
            )
        # with only the poisoned request, /healthz says writes fail, and why
        r = _post(url, slot_body(SC, 1, with_time=False), "poison-alone")
        assert r.status_code == 503
        h = httpx.get(url + "/healthz")
        assert h.status_code == 503
        assert h.json()["writable"] is False and "poisoned row" in h.json()["write_error"]


# --------------------------------------------------------------------------- S3
def test_s3_query_parameters_out_of_range_are_422(tmp_path):
    with _server(tmp_path / "s3.db", tmp_path / "log") as (_, url):
        _fill(url, 2)
        for params, name in (
            ({"after": str(2**63)}, "after"),
            ({"after": "-2"}, "after"),
            ({"after": "x"}, "after"),
            ({"limit": "0"}, "limit"),
            ({"limit": str(2**64)}, "limit"),
        ):
            r = httpx.get(url + "/v1/slots", params=params)
            assert r.status_code == 422, (params, r.text)
            assert _detail(r)[0]["loc"] == ["query", name]
        assert httpx.get(url + f"/v1/slots/{2**63}").status_code == 422
        assert len(httpx.get(url + "/v1/slots", params={"after": "-1"}).json()) == 2


# --------------------------------------------------------------------------- D1
def test_d1_second_writer_refused_through_link_or_deleted_lock(tmp_path):
    db, log = tmp_path / "a.db", tmp_path / "log"
    with _server(db, log) as (_, url):
        _fill(url, 2)
        hard, soft = tmp_path / "hard.db", tmp_path / "soft.db"
        os.link(db, hard)
        soft.symlink_to(db)
        for other in (hard, soft):
            assert "in use" in _refused(other)
        for lock in tmp_path.glob("*.lock"):  # a lock file of older versions: irrelevant
            lock.unlink()
        assert "in use" in _refused(db)
        r = _post(url, slot_body(SC, 2), "after-attempts")  # the first one still writes
        assert r.status_code == 200 and r.json()["slot"] == 2
    with _server(hard, log) as (_, url):  # once it stopped, any name works
        assert len(httpx.get(url + "/v1/slots").json()) == 3


# --------------------------------------------------------------------------- D2
def _make_read_only(path: Path) -> None:
    if os.geteuid() == 0:  # root ignores permission bits: make the file immutable
        res = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        assert res.returncode == 0, f"chattr +i (needed as root): {res.stderr}"
    else:
        path.chmod(stat.S_IRUSR | stat.S_IRGRP)


def _make_writable(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], check=False)
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_d2_read_only_database_refused_at_start(tmp_path):
    db, log = tmp_path / "ro.db", tmp_path / "log"
    with _server(db, log) as (_, url):
        _fill(url, 1)
    _make_read_only(db)
    try:
        out = _refused(db)
    finally:
        _make_writable(db)
    assert "read-only" in out and str(db) in out and "--db" in out
    with _server(db, log) as (_, url):  # writable again: /healthz says so
        h = httpx.get(url + "/healthz")
        assert h.status_code == 200 and h.json()["writable"] is True
        assert _post(url, slot_body(SC, 1, with_time=False), "k1").status_code == 200


# --------------------------------------------------------------------------- D3
def test_d3_database_path_with_uri_characters(tmp_path):
    folder = tmp_path / "we#ird?fo%41lder"
    db, log = folder / "s#v?x%20y.db", tmp_path / "log"
    with _server(db, log) as (_, url):
        _fill(url, 2)
        r = httpx.get(url + "/v1/slots")
        assert r.status_code == 200, r.text
        assert [s["idempotency_key"] for s in r.json()] == ["k0", "k1"]
        r = httpx.get(url + "/v1/slots/1")
        assert r.status_code == 200 and r.json()["slot"] == 1
        files = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert files <= {"log", *(f"{folder.name}/{db.name}{s}" for s in ("", "-wal", "-shm"))}, files
    with sqlite3.connect(db) as con:  # the file the service wrote is that one
        assert con.execute("SELECT COUNT(*) FROM slots").fetchone()[0] == 2
    con.close()


# --------------------------------------------------------------------------- D4
def _sql(db: Path, *statements: str, params: tuple[Any, ...] = ()) -> list[Any]:
    con = sqlite3.connect(db)
    try:
        out: list[Any] = []
        for q in statements:
            out = con.execute(q, params if "?" in q else ()).fetchall()
        con.commit()
        return out
    finally:
        con.close()


def test_d4_damaged_response_is_never_replayed(tmp_path):
    db, log = tmp_path / "d4.db", tmp_path / "log"
    with _server(db, log) as (_, url):
        got = _fill(url, 3)
        (resp,) = _sql(db, "SELECT response FROM slots WHERE slot = 1")[0]
        flipped = bytearray(resp)
        i = bytes(resp).index(b'"energy_cost":') + len('"energy_cost":')
        flipped[i] = ord("9") if flipped[i] != ord("9") else ord("8")
        _sql(db, "UPDATE slots SET response = ? WHERE slot = 1", params=(bytes(flipped),))
        r = _post(url, slot_body(SC, 1, with_time=False), "k1")  # a retry of slot 1
        assert r.status_code == 500 and "checksum" in r.text, r.text
        assert r.content != bytes(flipped)
        r = httpx.get(url + "/v1/slots/1")
        assert r.status_code == 500 and "slot 1" in r.text
        r = _post(url, slot_body(SC, 2, with_time=False), "k2")  # intact: replayed
        assert r.status_code == 200 and r.json() == got[2]
    out = _refused(db)
    assert "slot 1 does not match its checksum" in out and "backup" in out


def test_d4_damaged_state_dropped_table_and_lost_rows_refused(tmp_path):
    db, log = tmp_path / "d4b.db", tmp_path / "log"
    with _server(db, log) as (_, url):
        _fill(url, 4)
    copies = {}
    for name in ("state", "table", "rows"):
        copies[name] = tmp_path / name / "d.db"
        copies[name].parent.mkdir()
        shutil.copy(db, copies[name])
    _sql(
        copies["state"],
        "UPDATE slots SET state = replace(state, '\"slot\":4', '\"slot\":5') WHERE slot = 3",
    )
    _sql(copies["table"], "DROP TABLE slots")
    _sql(copies["rows"], "DELETE FROM slots WHERE slot >= 2")
    assert "slot 3 does not match its checksum" in _refused(copies["state"])
    assert "lost its table 'slots'" in _refused(copies["table"])
    out = _refused(copies["rows"])
    assert "does not match its own history" in out and "0..3" in out
    with _server(db, log) as (_, url):  # the intact original still starts
        assert len(httpx.get(url + "/v1/slots").json()) == 4


def _wal_frames(wal: Path) -> tuple[int, int]:
    data = wal.read_bytes()
    page = int.from_bytes(data[8:12], "big")
    return page, (len(data) - 32) // (24 + page)


def test_d4_damaged_wal_frame_after_kill_refused(tmp_path):
    db, log = tmp_path / "w.db", tmp_path / "log"
    proc, url = _start(db, log)
    try:
        _fill(url, 40)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        _stop(proc, signal.SIGKILL)
    wal = Path(str(db) + "-wal")
    page, n = _wal_frames(wal)
    assert n >= 20, f"only {n} WAL frames after the kill"
    intact = tmp_path / "intact"  # control: the undamaged log starts fine
    intact.mkdir()
    for suffix in ("", "-wal"):
        shutil.copy(str(db) + suffix, str(intact / "w.db") + suffix)
    with open(wal, "r+b") as fh:  # one byte in the page of a middle frame
        off = 32 + (n // 2) * (24 + page) + 24 + page // 2
        fh.seek(off)
        b = fh.read(1)
        fh.seek(off)
        fh.write(bytes([b[0] ^ 0x10]))
    out = _refused(db)
    assert "write-ahead log" in out and "damaged" in out and "backup" in out
    with _server(intact / "w.db", log) as (_, url):
        assert len(httpx.get(url + "/v1/slots").json()) == 40


# --------------------------------------------------------------------------- H1
def _status_line(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0]


def _closed_within(sock: socket.socket, seconds: float, trickle: bool = False) -> float:
    """Seconds until the server closes ``sock`` (fails after ``seconds``)."""
    t0 = time.monotonic()
    sock.settimeout(0.25)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    i = 0
    while time.monotonic() - t0 < seconds:
        if trickle and i < len(head):
            try:
                sock.sendall(head[i : i + 1])
            except OSError:
                return time.monotonic() - t0
            i += 1
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - t0
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - t0
    pytest.fail(f"connection still open after {seconds} s")


def test_h1_header_size_and_idle_connection_limits(tmp_path):
    with _server(
        tmp_path / "h1.db", tmp_path / "log", "--header-timeout", "1.5", "--timeout-keep-alive", "1"
    ) as (_, url):
        host, port = url.removeprefix("http://").split(":")
        addr = (host, int(port))
        with socket.create_connection(addr, timeout=10) as s:  # 1 MiB of headers
            with contextlib.suppress(OSError):  # it may close early
                s.sendall(
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
                )
            line = _status_line(s)
            assert not line.startswith(b"HTTP/1.1 200"), line
            assert line == b"" or line.split()[1] in (b"400", b"431"), line
        with socket.create_connection(addr) as s:  # idle, never a request
            assert _closed_within(s, 6) >= 1.0
        with socket.create_connection(addr) as s:  # headers byte by byte
            assert _closed_within(s, 6, trickle=True) >= 1.0
        with socket.create_connection(addr) as s:  # idle after a response
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _status_line(s) == b"HTTP/1.1 200 OK"
            _closed_within(s, 6)
        with socket.create_connection(addr) as s:  # 60 KiB of headers: fine
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Ok: " + b"a" * 60_000 + b"\r\n\r\n")
            assert _status_line(s) == b"HTTP/1.1 200 OK"


# --------------------------------------------------------------------------- A1
def test_a1_openapi_schema_is_true(tmp_path):
    with _server(tmp_path / "a1.db", tmp_path / "log") as (_, url):
        schema = httpx.get(url + "/openapi.json").json()
        post = schema["paths"]["/v1/slots"]["post"]
        (key,) = [p for p in post["parameters"] if p["name"] == "Idempotency-Key"]
        assert key["in"] == "header" and key["required"] is True
        assert schema["components"]["securitySchemes"]["bearerAuth"] == {
            **schema["components"]["securitySchemes"]["bearerAuth"],
            "type": "http",
            "scheme": "bearer",
        }
        assert post["security"] == [{"bearerAuth": []}]
        assert {"401", "403", "409", "413", "422", "503"} <= set(post["responses"])
        envoy = schema["paths"]["/v1/weights/envoy"]["get"]["responses"]["200"]["content"]
        assert {"application/json", "application/yaml"} <= set(envoy)
        r = httpx.get(url + "/v1/weights/envoy", params={"format": "yaml"})
        assert r.headers["content-type"].startswith("application/yaml")
        for path, ops in schema["paths"].items():
            assert "options" in ops, path
        r = httpx.options(url + "/v1/slots")
        assert r.status_code == 204 and r.headers["allow"] == "GET, OPTIONS, POST"
        r = httpx.put(url + "/v1/slots")
        assert r.status_code == 405 and r.headers["allow"] == "GET, OPTIONS, POST"
        r = _post(url, slot_body(SC, 0), "")  # the header is required: 422
        assert r.status_code == 422
        assert httpx.get(url + "/healthz").json()["writable"] is True


def test_a1_schemathesis_finds_no_server_error_and_no_mismatch(tmp_path):
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    with _server(tmp_path / "st.db", tmp_path / "log") as (_, url):
        _fill(url, 2)
        schema = schemathesis.openapi.from_url(url + "/openapi.json")
        calls: dict[str, int] = {}

        def fuzz(op: Any, mode: Any) -> None:
            label = f"{op.method.upper()} {op.path} {mode.value}"

            @settings(
                max_examples=15 if op.method == "post" else 6,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                case.call_and_validate(base_url=url, headers=dict(AUTH), checks=checks, timeout=20)
                calls[label] = calls.get(label, 0) + 1

            run()

        expected = set()
        for result in schema.get_all_operations():
            op = result.ok()
            modes = [GenerationMode.POSITIVE]
            raw = op.definition.raw
            if raw.get("parameters") or raw.get("requestBody"):  # some input to get wrong
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:
                expected.add(f"{op.method.upper()} {op.path} {mode.value}")
                fuzz(op, mode)
        assert set(calls) == expected  # every operation was called
        assert "OPTIONS /v1/slots positive" in calls and "POST /v1/slots negative" in calls
        assert httpx.get(url + "/healthz").json()["status"] == "ok"
