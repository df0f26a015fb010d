"""Proxy configurations rendered from live weights, checked by real proxies.

* ``nginx -t`` accepts the NGINX configuration the service renders (Debian's nginx; the CI
  script installs it). Missing nginx is a failure, not a skip.
* A real NGINX on loopback, configured with the rendered upstreams and map, splits
  requests over small local HTTP backends in the proportions of the weights.
"""

from __future__ import annotations

import http.client
import re
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eqglb.builtin import builtin_scenario
from eqglb.costs import Objective
from eqglb.scenario import Scenario
from eqglb.service import ServiceConfig, create_app, render_nginx
from tests.service.test_service import TOKEN, post, running, slot_body


def nginx_binary() -> str:
    path = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if path is None:
        pytest.fail(
            "nginx is not installed: the proxy tests need the real nginx "
            "(apt-get install nginx-light; .ci/run installs it)"
        )
    return path


def nginx_conf(tmp: Path, snippet: str, port: int) -> Path:
    """A complete nginx.conf around the rendered ``http``-context snippet."""
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / d).mkdir(exist_ok=True)
    conf = tmp / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
master_process off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{snippet}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            if ($eqglb_upstream = "") {{ return 400; }}
            proxy_pass http://$eqglb_upstream;
        }}
    }}
}}
""")
    return conf


def nginx_test(conf: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            nginx_binary(),
            "-t",
            "-c",
            str(conf),
            "-p",
            str(conf.parent),
            "-e",
            str(conf.parent / "startup.log"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_nginx_accepts_config_from_live_weights(tmp_path):
    """NGINX resolves upstream host names when it loads a configuration, so the data
    centres get IP addresses here (one per data centre, one per (data centre, model))."""
    sc = builtin_scenario(days=2)
    app = create_app(
        sc,
        tmp_path / "svc.db",
        TOKEN,
        addresses={dc: f"127.0.0.{i + 1}:8000" for i, dc in enumerate(sc.datacenters)},
        model_address_template="127.1.{dc_index}.{model_index}:8000",
    )
    with running(app) as c:
        for t in range(3):
            assert post(c, slot_body(sc, t), f"k{t}").status_code == 200
        weights = c.get("/v1/weights").json()["regions"]
        configs = {
            level: c.get(f"/v1/weights/nginx?level={level}").text
            for level in ("datacenter", "model")
        }
    assert any(len(v) > 1 for v in weights.values()), "no region is split: weak test"
    for level, text in configs.items():
        d = tmp_path / level
        d.mkdir()
        res = nginx_test(nginx_conf(d, text, free_port()))
        assert res.returncode == 0, (level, res.stderr, text)
        assert "test is successful" in res.stderr
    # the rendered weights are the live ones
    text = configs["datacenter"]
    blocks = {
        name: dict(re.findall(r"server (\S+) weight=(\d+);", body))
        for name, body in re.findall(r"upstream (\S+) \{(.*?)\}", text, re.S)
    }
    mapping = dict(re.findall(r'^\s+"([^"]+)" (eqglb_\S+);$', text, re.M))
    assert set(mapping) == set(weights)
    for region, servers in weights.items():
        assert blocks[mapping[region]] == {a: str(w) for a, w in servers.items()}


def test_nginx_accepts_awkward_names(tmp_path):
    """Region names with quotes, spaces, braces, a leading '~' or '\\' and NGINX keywords."""
    regions = [
        'eu "west"',
        "us east {1}",
        "~tilde",
        "\\back",
        "default",
        "include",
        "Ünïcode",
        "semi;colon",
        "$dollar",
    ]
    weights = {r: {f"10.0.0.{i + 1}:8000": 60, "10.0.1.1:9000": 40} for i, r in enumerate(regions)}
    text = render_nginx(weights)
    res = nginx_test(nginx_conf(tmp_path, text, free_port()))
    assert res.returncode == 0, (res.stderr, text)
    assert text.count("upstream ") >= len(regions)
    with pytest.raises(ValueError, match="line break"):
        render_nginx({"bad\nname": {"a:1": 1}})


class _Counter(BaseHTTPRequestHandler):
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


def three_by_one() -> Scenario:
    """3 DCs a < b < c in price, one region, one model: demand 100, capacity a = 50,
    b = 30, c = 1000, so the energy-minimal routing (no equity terms) is 50 / 30 / 20."""
    T = 2
    return Scenario(
        datacenters=["a", "b", "c"],
        regions=["r"],
        models=["m"],
        time=pd.date_range("2022-01-01", periods=T, freq="h"),
        demand=np.full((T, 1), 100.0),
        price=np.tile([0.1, 0.2, 0.3], (T, 1)),
        carbon_intensity=np.full((T, 3), 0.3),
        wue=np.zeros((T, 3)),
        ewif=np.zeros((T, 3)),
        pue=[1.0, 1.0, 1.0],
        energy_per_request=[[1.0], [1.0], [1.0]],
        capacity_per_request=[1.0],
        capacity=[50.0, 30.0, 1000.0],
        quality_loss=[0.0],
        name="three-by-one",
    )


def test_real_nginx_splits_requests_by_the_weights(tmp_path):
    servers = []
    ports = []
    for _ in range(3):
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        ports.append(srv.server_address[1])
    _Counter.hits = {}
    sc = three_by_one()
    cfg = ServiceConfig(
        scenario=sc,
        objective=Objective(),
        weight_total=100,
        addresses={dc: f"127.0.0.1:{p}" for dc, p in zip("abc", ports, strict=True)},
    )
    app = create_app(cfg, tmp_path / "svc.db", TOKEN)
    with running(app) as c:
        out = post(c, slot_body(sc, 0), "k0").json()
        text = c.get("/v1/weights/nginx").text
    assert out["weights"]["regions"]["r"]["datacenters"] == {"a": 50, "b": 30, "c": 20}
    port = free_port()
    conf = nginx_conf(tmp_path, text, port)
    assert nginx_test(conf).returncode == 0
    proc = subprocess.Popen(
        [nginx_binary(), "-c", str(conf), "-p", str(tmp_path), "-e", str(tmp_path / "startup.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (tmp_path / "error.log").read_text(errors="replace")[-1000:]
                    pytest.fail(f"nginx did not start: {log}")
                time.sleep(0.05)
        n = 400
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(n):
            conn.request("GET", "/", headers={"X-EqGLB-Region": "r"})
            resp = conn.getresponse()
            assert resp.status == 200
            resp.read()
        conn.request("GET", "/", headers={"X-EqGLB-Region": "nowhere"})
        assert conn.getresponse().status == 400
        conn.close()
    finally:
        proc.terminate()
        proc.wait(10)
        for srv in servers:
            srv.shutdown()
            srv.server_close()
    got = [_Counter.hits.get(p, 0) for p in ports]
    want = [n * w / 100 for w in (50, 30, 20)]
    assert sum(got) == n
    for g, w in zip(got, want, strict=True):
        assert abs(g - w) <= 0.02 * n, (got, want)


def test_nginx_zero_weight_is_down(tmp_path):
    """NGINX weights are >= 1: a server given weight 0 is written ``down`` (no request)."""
    text = render_nginx(
        {"r": {"127.0.0.1:8001": 3, "127.0.0.1:8002": 0}, "none": {"127.0.0.1:8003": 0}}
    )
    assert "server 127.0.0.1:8001 weight=3;" in text and "server 127.0.0.1:8002 down;" in text
    assert "8003" not in text and "upstream eqglb_none" not in text  # no positive weight
    res = nginx_test(nginx_conf(tmp_path, text, free_port()))
    assert res.returncode == 0, (res.stderr, text)
