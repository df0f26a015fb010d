"""HAProxy configurations rendered from live weights, checked by the real HAProxy.

* ``haproxy -c`` accepts the configuration the service serves at ``/v1/weights/haproxy``
  (Debian's haproxy; ``scripts/install-test-deps`` installs it). A missing haproxy is a
  failure, not a skip.
* A real HAProxy on loopback routes awkward region names to their backends, splits
  requests over small local HTTP backends in the proportions of the weights, and follows
  new weights pushed through its runtime API (``set server ... weight``) without a
  reload.
* ``rescale_weights`` keeps every share within its stated bound (< 1 / T <= 1/256).
"""

from __future__ import annotations

import contextlib
import http.client
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from eqglb.builtin import builtin_scenario
from eqglb.costs import Objective
from eqglb.service import ServiceConfig, create_app
from eqglb.service.proxy import (
    HAPROXY_MAX_WEIGHT,
    HAProxyRuntimeError,
    haproxy_server_name,
    push_haproxy_table,
    push_haproxy_weights,
    render_haproxy,
    rescale_weights,
    upstream_names,
)
from tests.service.test_service import TOKEN, post, running, slot_body
from tests.service.test_service_proxy import free_port, three_by_one


def haproxy_binary() -> str:
    path = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(p).exists()), None
    )
    if path is None:
        pytest.fail(
            "haproxy is not installed: the HAProxy tests need the real binary "
            "(apt-get install haproxy; scripts/install-test-deps installs it)"
        )
    return path


def haproxy_check(*configs: Path) -> subprocess.CompletedProcess:
    args = [haproxy_binary(), "-c"]
    for c in configs:
        args += ["-f", str(c)]
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


def parse_backends(text: str) -> dict[str, dict[str, tuple[str, int]]]:
    """``{backend: {server name: (address, weight)}}`` of a rendered configuration."""
    out: dict[str, dict[str, tuple[str, int]]] = {}
    current = None
    for line in text.splitlines():
        if m := re.match(r"backend (\S+)$", line):
            current = out.setdefault(m.group(1), {})
        elif (m := re.match(r"    server (\S+) (\S+) weight (\d+)$", line)) and current is not None:
            current[m.group(1)] = (m.group(2), int(m.group(3)))
    return out


def test_haproxy_accepts_config_from_live_weights(tmp_path):
    sc = builtin_scenario(days=2)
    app = create_app(
        sc,
        tmp_path / "svc.db",
        TOKEN,
        addresses={dc: f"127.0.0.{i + 1}:8000" for i, dc in enumerate(sc.datacenters)},
        model_address_template="127.1.{dc_index}.{model_index}:8000",
    )
    sock = tmp_path / "admin.sock"
    with running(app) as c:
        for t in range(3):
            assert post(c, slot_body(sc, t), f"k{t}").status_code == 200
        weights = c.get("/v1/weights").json()["regions"]
        configs = {
            level: c.get(f"/v1/weights/haproxy?level={level}&socket={sock}").text
            for level in ("datacenter", "model")
        }
        snippet = c.get("/v1/weights/haproxy?complete=false&bind=127.0.0.1:9999").text
        assert c.get("/v1/weights/haproxy?socket=relative/path").status_code == 422
    assert any(len(v) > 1 for v in weights.values()), "no region is split: weak test"
    for level, text in configs.items():
        cfg = tmp_path / f"{level}.cfg"
        cfg.write_text(text)
        res = haproxy_check(cfg)
        assert res.returncode == 0, (level, res.stdout, res.stderr, text)
        assert "Configuration file is valid" in res.stdout + res.stderr
        assert f"stats socket {sock} mode 600 level admin" in text
    # the backends-only form goes after the operator's own global/defaults
    own = tmp_path / "own.cfg"
    own.write_text(
        "global\n    maxconn 100\ndefaults\n    mode http\n    timeout connect 1s\n"
        "    timeout client 5s\n    timeout server 5s\n"
    )
    part = tmp_path / "eqglb.cfg"
    part.write_text(snippet)
    assert "global" not in snippet and "bind 127.0.0.1:9999" in snippet
    res = haproxy_check(own, part)
    assert res.returncode == 0, (res.stdout, res.stderr)
    # the checker is real: one weight over HAProxy's 256 is refused
    bad = tmp_path / "bad.cfg"
    bad.write_text(re.sub(r"weight \d+$", "weight 257", configs["datacenter"], count=1, flags=re.M))
    assert haproxy_check(bad).returncode != 0
    # the rendered weights are the live ones (every address declared, 0 where unused)
    backends = parse_backends(configs["datacenter"])
    names = upstream_names(list(weights))
    every = {a for row in weights.values() for a in row}
    for region, row in weights.items():
        got = backends[names[region]]
        assert {addr for addr, _ in got.values()} == every
        assert {addr: w for addr, w in got.values() if w > 0} == row
        assert all(name == haproxy_server_name(addr) for name, (addr, _) in got.items())


class _Hits(BaseHTTPRequestHandler):
    hits: dict[int, int] = {}
    lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        port = self.server.server_address[1]
        with self.lock:
            self.hits[port] = self.hits.get(port, 0) + 1
        body = str(port).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def backends(n: int) -> Iterator[list[int]]:
    """``n`` small HTTP servers on 127.0.0.1 counting their requests in ``_Hits.hits``."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Hits) for _ in range(n)]
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    _Hits.hits = {}
    try:
        yield [srv.server_address[1] for srv in servers]
    finally:
        for srv in servers:
            srv.shutdown()
            srv.server_close()


@contextlib.contextmanager
def haproxy(cfg: Path, port: int, sock: Path | None = None) -> Iterator[None]:
    """A real HAProxy in the foreground on ``cfg`` until the block ends."""
    res = haproxy_check(cfg)
    assert res.returncode == 0, (res.stdout, res.stderr)
    log = cfg.with_suffix(".log")
    with log.open("w") as out:
        proc = subprocess.Popen(
            [haproxy_binary(), "-db", "-f", str(cfg)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                if sock is None or sock.exists():
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"haproxy did not start: {log.read_text(errors='replace')[-1000:]}")
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


def get(port: int, region: bytes | None, n: int = 1) -> list[tuple[int, str]]:
    """``n`` GETs on one keep-alive connection: ``[(status, body)]``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    try:
        for _ in range(n):
            conn.putrequest("GET", "/")
            if region is not None:
                conn.putheader("X-EqGLB-Region", region)
            conn.endheaders()
            resp = conn.getresponse()
            out.append((resp.status, resp.read().decode(errors="replace")))
    finally:
        conn.close()
    return out


def test_real_haproxy_routes_awkward_region_names(tmp_path):
    """Quotes, '$' (HAProxy expands environment variables in double quotes), backslashes,
    '#', a leading '-' (an ACL flag), spaces, braces and UTF-8 reach their own backend."""
    regions = [
        'eu "west"',
        "it's $HOME",
        "${PATH} \\back",
        "# not a comment",
        "-i",
        "us east {1}",
        "Ünïcode",
        "semi;colon",
        "a,b",
    ]
    port = free_port()
    with backends(3) as ports:
        weights = {r: {f"127.0.0.1:{ports[n % 3]}": 1} for n, r in enumerate(regions)}
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(render_haproxy(weights, bind=f"127.0.0.1:{port}", all_servers=False))
        with haproxy(cfg, port):
            for n, r in enumerate(regions):
                assert get(port, r.encode()) == [(200, str(ports[n % 3]))], r
            assert get(port, b"nowhere")[0][0] == 400
            assert get(port, b'eu "WEST"')[0][0] == 400  # exact, case-sensitive
            assert get(port, None)[0][0] == 400
    with pytest.raises(ValueError, match="line break"):
        render_haproxy({"bad\nname": {"127.0.0.1:1": 1}})


def shares(counts: list[int]) -> list[float]:
    return [c / sum(counts) for c in counts]


def test_real_haproxy_split_follows_weights_pushed_through_runtime_api(tmp_path):
    """Config from the service's live weights (50/30/20), then the next slot's weights
    pushed through the stats socket: the split follows without a reload. Tolerance: each
    backend's count within 2 % of the requests of its expected count (roundrobin is
    exact over every cycle of sum-of-weights requests)."""
    sc = three_by_one()
    port = free_port()
    sock = tmp_path / "admin.sock"
    n = 300
    with backends(3) as ports:
        addr = {dc: f"127.0.0.1:{p}" for dc, p in zip("abc", ports, strict=True)}
        cfg_svc = ServiceConfig(
            scenario=sc, objective=Objective(), weight_total=100, addresses=addr
        )
        app = create_app(cfg_svc, tmp_path / "svc.db", TOKEN)
        with running(app) as c:
            first = post(c, slot_body(sc, 0), "k0").json()["weights"]["regions"]["r"]
            text = c.get(f"/v1/weights/haproxy?bind=127.0.0.1:{port}&socket={sock}").text
            # next slot: a and b change capacity, so the energy-minimal split moves
            second = post(c, slot_body(sc, 1, capacity={"a": 10.0, "b": 60.0}), "k1").json()
            table = c.get("/v1/weights").json()["regions"]
        assert first["datacenters"] == {"a": 50, "b": 30, "c": 20}
        assert second["weights"]["regions"]["r"]["datacenters"] == {"a": 10, "b": 60, "c": 30}
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(text)
        backend = upstream_names(["r"])["r"]

        def split() -> list[int]:
            _Hits.hits = {}
            got = get(port, b"r", n)
            assert all(status == 200 for status, _ in got)
            return [_Hits.hits.get(p, 0) for p in ports]

        def close(got: list[int], weights: list[int]) -> None:
            want = [n * w / sum(weights) for w in weights]
            assert sum(got) == n
            for g, w in zip(got, want, strict=True):
                assert abs(g - w) <= 0.02 * n, (got, want)

        with haproxy(cfg, port, sock):
            close(split(), [50, 30, 20])
            # the service's next weights, pushed without a reload
            applied = push_haproxy_table(sock, table)
            assert applied == {
                "r": {
                    haproxy_server_name(addr[d]): w
                    for d, w in zip("abc", (10, 60, 30), strict=True)
                }
            }
            close(split(), [10, 60, 30])
            # a server left out of the mapping is drained (weight 0: no request at all)
            applied = push_haproxy_weights(sock, backend, {addr["b"]: 1000, addr["c"]: 3000})
            assert applied == {
                haproxy_server_name(addr["b"]): 85,  # 1000/4000 -> 85/341
                haproxy_server_name(addr["c"]): 256,
                haproxy_server_name(addr["a"]): 0,
            }
            got = split()
            assert got[0] == 0
            close(got, [0, 85, 256])
            # HAProxy's refusals come back as errors
            with pytest.raises(HAProxyRuntimeError, match="no server"):
                push_haproxy_weights(sock, backend, {"127.0.0.1:1": 5})
            with pytest.raises(HAProxyRuntimeError, match="no such backend|Can't find"):
                push_haproxy_weights(sock, "eqglb_nowhere", {addr["a"]: 5})


def test_rescale_weights_error_bound():
    """Shares move by less than 1 / T <= 1/256 [fraction of the region's requests] and
    each share by less than 1 / (T s_i) of itself; weights that fit pass unchanged."""
    rng = np.random.default_rng(13)
    worst_abs = worst_rel_top = 0.0
    for case in range(400):
        k = int(rng.integers(1, 12))
        scale = float(10 ** rng.uniform(0, 6))
        w = rng.random(k) * scale
        if case % 4 == 0:
            w = np.round(w)
            w[rng.integers(k)] = max(w.max(), 1.0)
        if case % 5 == 0:
            w[rng.random(k) < 0.3] = 0.0
        if w.sum() == 0:
            continue
        weights = {f"s{i}": float(x) for i, x in enumerate(w)}
        out = rescale_weights(weights, HAPROXY_MAX_WEIGHT)
        got = np.array([out[f"s{i}"] for i in range(k)], dtype=float)
        assert list(out) == list(weights)
        assert got.min() >= 0 and got.max() <= HAPROXY_MAX_WEIGHT
        assert all(isinstance(v, int) for v in out.values())
        s, s2 = w / w.sum(), got / got.sum()
        err = np.abs(s2 - s)
        if w.max() <= HAPROXY_MAX_WEIGHT and np.all(w == np.round(w)):
            assert np.array_equal(got, w)  # fits: passed unchanged
        else:
            total = got.sum()  # T = floor(256 sum / max)
            assert total == np.floor(HAPROXY_MAX_WEIGHT * w.sum() / w.max() + 1e-9)
            assert err.max() < 1 / total + 1e-15
        assert err.max() < 1 / HAPROXY_MAX_WEIGHT
        assert np.all(got[s == 0] == 0)
        top = int(np.argmax(w))
        worst_abs = max(worst_abs, float(err.max()))
        worst_rel_top = max(worst_rel_top, float(err[top] / s[top]))
    assert worst_rel_top < 1 / (HAPROXY_MAX_WEIGHT - 1)
    assert worst_abs > 0  # some cases were rounded: the bound was exercised
    # fits: unchanged; the service's weight_total 100 is exact for HAProxy
    assert rescale_weights({"a": 50, "b": 30, "c": 20}, 256) == {"a": 50, "b": 30, "c": 20}
    assert rescale_weights({"a": 256, "b": 0}, 256) == {"a": 256, "b": 0}
    assert rescale_weights({"a": 0, "b": 0}, 256) == {"a": 0, "b": 0}
    # a share below 1/T may round to 0; the largest weight lands on 256 exactly
    assert rescale_weights({"a": 1000, "b": 1}, 256) == {"a": 256, "b": 0}
    assert rescale_weights({"a": 700, "b": 300}, 256) == {"a": 256, "b": 109}
    with pytest.raises(ValueError):
        rescale_weights({"a": -1}, 256)
    with pytest.raises(ValueError):
        rescale_weights({"a": float("nan")}, 256)
