"""The self-contained HTML report, checked in a real headless browser.

* Debian's chromium (``scripts/install-test-deps`` installs it) loads ``report.html`` from
  disk; the test drives it over the Chrome DevTools protocol (a websocket to
  ``--remote-debugging-port``) and asserts: no console error, no uncaught exception, no log
  entry of level error, no request but the page itself, every figure element present and
  drawn (a non-empty SVG of real size with many painted shapes). A missing chromium is a
  failure, not a skip.
* A page that logs an error is caught by the same harness (the check can fail).
* Without site coordinates the burdens are bars and the page says so.
* The shipped Natural Earth outlines: small, closed rings, land where land is.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eqglb.builtin import builtin_scenario
from eqglb.costs import Objective
from eqglb.policies import make_policy
from eqglb.report_html import FRONTIER_KEYS, load_coastline, site_coordinates, write_html_report
from eqglb.simulate import run_policy

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_binary() -> str:
    path = shutil.which("chromium") or next(
        (p for p in ("/usr/bin/chromium", "/usr/lib/chromium/chromium") if Path(p).exists()), None
    )
    if path is None:
        pytest.fail(
            "chromium is not installed: the HTML report is tested in a real headless "
            "browser; run scripts/install-test-deps (apt-get install chromium "
            "chromium-driver) first"
        )
    return path


class Browser:
    """Headless chromium driven over the DevTools protocol (flat sessions on one socket)."""

    def __init__(self, profile: Path):
        from websockets.sync.client import connect

        profile.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                chromium_binary(),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if self.proc.poll() is not None:
                raise AssertionError(f"chromium exited with {self.proc.returncode} at start")
            if time.monotonic() > deadline:
                self.close()
                raise AssertionError("chromium did not open its DevTools port within 60 s")
            time.sleep(0.1)
        port, path = port_file.read_text().split()[:2]
        self.stack = contextlib.ExitStack()
        self.ws = self.stack.enter_context(
            connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=30)
        )
        self.next_id = 0
        self.events: list[dict] = []

    def call(
        self,
        method: str,
        params: dict | None = None,
        session: str | None = None,
        timeout: float = 60.0,
    ) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str, timeout: float = 60.0) -> dict:
        seen = len(self.events)
        for ev in self.events:
            if ev.get("method") == method and ev.get("sessionId") == session:
                return ev
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ev = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            self.events.append(ev)
            if ev.get("method") == method and ev.get("sessionId") == session:
                return ev
        raise AssertionError(
            f"no {method} within {timeout} s ({len(self.events) - seen} other events)"
        )

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.events.append(json.loads(self.ws.recv(timeout=left)))
            except TimeoutError:
                return

    def open(self, url: str) -> dict:
        """Load ``url`` in a new tab; what it logged, requested, and the figures it drew."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable", session=session)
        self.call("Page.navigate", {"url": url}, session=session)
        self.wait_event("Page.loadEventFired", session)
        self.drain(1.0)  # late console messages, failed loads
        probe = self.call(
            "Runtime.evaluate", {"expression": FIGURE_PROBE, "returnByValue": True}, session=session
        )
        page = json.loads(probe["result"]["value"])
        for fig in page["figures"]:  # what the browser painted inside each figure
            fig["colours"] = 0
            if fig["width"] >= 1 and fig["height"] >= 1:
                shot = self.call(
                    "Page.captureScreenshot",
                    {
                        "format": "png",
                        "captureBeyondViewport": True,
                        "clip": {
                            "x": fig["x"],
                            "y": fig["y"],
                            "width": fig["width"],
                            "height": fig["height"],
                            "scale": 0.5,
                        },
                    },
                    session=session,
                )
                with Image.open(io.BytesIO(base64.b64decode(shot["data"]))) as im:
                    fig["colours"] = len(im.convert("RGB").getcolors(1 << 24) or [])
        mine = [e for e in self.events if e.get("sessionId") == session]
        errors = []
        for e in mine:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append(
                    f"console.{p['type']}: "
                    + " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", []))
                )
            elif m == "Runtime.exceptionThrown":
                errors.append(f"exception: {p['exceptionDetails'].get('text')}")
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                errors.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
            elif m == "Network.loadingFailed":
                errors.append(f"load failed: {p.get('errorText')}")
        requests = [
            e["params"]["request"]["url"]
            for e in mine
            if e.get("method") == "Network.requestWillBeSent"
        ]
        self.call("Target.closeTarget", {"targetId": target})
        return {"errors": errors, "requests": requests, "page": page}

    def close(self) -> None:
        try:
            if getattr(self, "stack", None) is not None:
                self.stack.close()
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=10)


#: Runs in the page: every figure element, its SVG's rendered size and painted shapes.
FIGURE_PROBE = """JSON.stringify({
  title: document.title,
  rows: document.querySelector('table') ? document.querySelector('table').rows.length : 0,
  scripts: document.scripts.length,
  text: document.body.innerText,
  figures: Array.from(document.querySelectorAll('figure')).map(f => {
    const svg = f.querySelector('svg');
    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0, x: 0, y: 0};
    const shapes = svg ? Array.from(svg.querySelectorAll('path, use, rect, circle, image'))
      .filter(e => { const b = e.getBoundingClientRect(); return b.width > 0 || b.height > 0; })
      : [];
    return {name: f.dataset.figure || '', cls: f.className, svgs: f.querySelectorAll('svg').length,
            width: box.width, height: box.height, x: box.x + window.scrollX,
            y: box.y + window.scrollY, shapes: shapes.length,
            texts: svg ? svg.querySelectorAll('text').length : 0};
  })
})"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


@pytest.fixture(scope="module")
def comparison():
    sc = builtin_scenario(days=1)
    obj = Objective(
        mu_social=1e5,
        mu_carbon=0.19,
        mu_water=1e-3,
        q_social=math.inf,
        q_carbon=math.inf,
        q_water=math.inf,
    )
    evals, dispatches = {}, {}
    for name in ("energy", "structured"):
        disp, ev = run_policy(sc, make_policy(name, obj), obj)
        evals[name], dispatches[name] = ev, disp
    frontier = []
    for q in (1.0, 2.0, math.inf):
        o = obj.with_q(q)
        _, ev = run_policy(sc, make_policy("structured", o), o)
        frontier.append(
            {
                "q": q,
                "energy_cost": ev.energy_cost,
                "objective": ev.objective,
                "carbon_max": ev.summary["carbon"]["max"],
                "water_max": ev.summary["water"]["max"],
                "quality_max": ev.summary["social"]["max"],
            }
        )
    return sc, obj, evals, dispatches, frontier


def test_report_renders_in_headless_chromium(browser, comparison, tmp_path):
    sc, obj, evals, dispatches, frontier = comparison
    path = write_html_report(
        tmp_path,
        evals,
        sc,
        objective=obj,
        frontier=frontier,
        provenance={"command": "pytest"},
        dispatches=dispatches,
    )
    assert path == tmp_path / "report.html"
    text = path.read_text()
    # self-contained: no script, no stylesheet or image from elsewhere
    assert "<script" not in text
    assert not re.search(r"""(src|href)\s*=\s*["'](?!#|data:)""", text)
    assert not re.search(r"url\(\s*['\"]?(https?:|//)", text)

    res = browser.open(path.as_uri())
    assert res["errors"] == []
    # the only fetch is the page itself; images inside the SVGs are inline data: URIs
    assert [u for u in res["requests"] if not u.startswith("data:")] == [path.as_uri()]
    page = res["page"]
    assert page["title"] == "eqglb report: builtin"
    assert page["scripts"] == 0
    assert page["rows"] == 1 + len(evals)
    figs = {f["name"]: f for f in page["figures"]}
    assert set(figs) == {"frontier", "map", "burdens", "dispatch"}
    for name, f in figs.items():
        assert f["cls"] == "fig", name
        assert f["svgs"] == 1, name
        assert f["width"] > 300 and f["height"] > 150, (name, f)
        assert f["shapes"] >= 20, (name, f)  # lines, bars, areas, land, bubbles
        assert f["texts"] >= 5, (name, f)  # titles, tick labels, legends
        assert f["colours"] >= 20, (name, f)  # painted, not a blank box
    # the map draws the shipped land (many polygons), not just markers
    assert figs["map"]["shapes"] > 100
    for word in (
        "Comparison",
        "Price of fairness",
        "Who bears what",
        "Dispatch over time",
        "Provenance",
        "Natural Earth",
    ):
        assert word in page["text"], word


def test_harness_catches_console_errors(browser, tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><head><title>bad</title></head><body>"
        "<figure class='fig' data-figure='empty'></figure>"
        "<figure class='fig' data-figure='blank'><svg width='400' height='200'>"
        "</svg></figure><img src='http://127.0.0.1:9/away.png'>"
        "<script>console.error('boom from the page')</script></body></html>"
    )
    res = browser.open(bad.as_uri())
    assert any("boom from the page" in e for e in res["errors"])
    assert any(e.startswith("load failed") for e in res["errors"])
    assert "http://127.0.0.1:9/away.png" in res["requests"]
    empty, blank = res["page"]["figures"]
    assert empty["svgs"] == 0 and empty["shapes"] == 0 and empty["colours"] == 0
    assert blank["svgs"] == 1 and blank["width"] == 400 and blank["shapes"] == 0
    assert blank["colours"] == 1


def test_no_coordinates_gives_bars_and_says_so(browser, comparison, tmp_path):
    sc, obj, evals, _, _ = comparison
    bare = sc.replace(attrs={})
    assert site_coordinates(bare) == ({}, {})
    path = write_html_report(tmp_path / "r.html", evals, bare, baseline="structured")
    res = browser.open(path.as_uri())
    assert res["errors"] == []
    page = res["page"]
    figs = {f["name"]: f for f in page["figures"]}
    assert set(figs) == {"burdens"}  # no frontier, no dispatch, no map
    assert figs["burdens"]["shapes"] >= 3 * len(sc.datacenters) * len(evals)
    assert "no site coordinates" in page["text"]
    assert "Price of fairness" not in page["text"]


def test_site_coordinates_of_the_builtin_and_of_a_file(comparison):
    sc = comparison[0]
    dcs, regs = site_coordinates(sc)
    assert set(dcs) == set(sc.datacenters) and set(regs) == set(sc.regions)
    assert dcs["Germany"] == pytest.approx((50.11, 8.68))
    # the scenario file format's layout; a region without coordinates takes its home's
    other = sc.replace(
        attrs={
            "coordinates": {
                "datacenter": {"Texas": {"lat": 1.0, "lon": 2.0}},
                "region": {"Japan": {"lat": 3.0, "lon": 4.0}},
            }
        }
    )
    dcs, regs = site_coordinates(other)
    assert dcs == {"Texas": (1.0, 2.0)}
    assert regs == {"Texas": (1.0, 2.0), "Japan": (3.0, 4.0)}


def test_bad_arguments_are_refused(comparison, tmp_path):
    sc, obj, evals, _, frontier = comparison
    with pytest.raises(ValueError, match="baseline"):
        write_html_report(tmp_path / "a.html", evals, sc, baseline="nope")
    broken = [{k: v for k, v in frontier[0].items() if k != "water_max"}]
    with pytest.raises(ValueError, match="water_max"):
        write_html_report(tmp_path / "b.html", evals, sc, frontier=broken)
    with pytest.raises(ValueError, match="no evaluations"):
        write_html_report(tmp_path / "c.html", {}, sc)
    assert set(FRONTIER_KEYS) <= set(frontier[0])


def _inside(ring: np.ndarray, lon: float, lat: float) -> bool:
    """Even-odd rule: does the closed ring contain the point?"""
    x, y = ring[:, 0], ring[:, 1]
    x2, y2 = np.roll(x, -1), np.roll(y, -1)
    crosses = (y > lat) != (y2 > lat)
    with np.errstate(divide="ignore", invalid="ignore"):
        xs = x + (lat - y) * (x2 - x) / (y2 - y)
    return bool(np.count_nonzero(crosses & (xs > lon)) % 2)


def test_shipped_coastline_is_small_closed_and_right():
    from importlib import resources

    raw = resources.files("eqglb").joinpath("data/coastline_110m.json").read_bytes()
    assert len(raw) < 200_000
    coast = load_coastline()
    assert coast["source"]["licence"] == "public domain"
    assert len(coast["land"]) > 100 and len(coast["borders"]) > 100
    for ring in coast["land"]:
        assert np.array_equal(ring[0], ring[-1])
        assert (np.abs(ring[:, 0]) <= 180).all() and (np.abs(ring[:, 1]) <= 90).all()

    def on_land(lon: float, lat: float) -> bool:
        return sum(_inside(r, lon, lat) for r in coast["land"]) % 2 == 1

    land = [
        (8.68, 50.11),
        (-96.80, 32.78),
        (139.69, 35.68),
        (20.0, 0.0),
        (-60.0, -10.0),
        (135.0, -25.0),
        (100.0, 60.0),
    ]
    sea = [(-40.0, 30.0), (-150.0, 0.0), (80.0, -20.0), (18.0, 35.0), (-90.0, 25.0)]
    assert all(on_land(*p) for p in land), [p for p in land if not on_land(*p)]
    assert not any(on_land(*p) for p in sea), [p for p in sea if on_land(*p)]
