"""Signal clients (eqglb.signals) against recorded provider answers on a local HTTP server.

The answers under tests/signals/data/ follow each provider's published JSON format; a
real ``http.server`` on 127.0.0.1 serves them, so every request goes through the network
stack (headers, status codes, Retry-After, closed ports).
"""

from __future__ import annotations

import base64
import json
import math
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from eqglb.physics import GAL_PER_MWH_TO_L_PER_KWH, fuel_factors
from eqglb.signals import (
    LB_PER_MWH_TO_KG_PER_KWH,
    EIAClient,
    ElectricityMapsClient,
    HttpSettings,
    SignalError,
    WattTimeClient,
    clear_default_clients,
    slot_signals,
)

DATA = Path(__file__).parent / "data"
ENV_VARS = (
    "ELECTRICITYMAPS_TOKEN",
    "ELECTRICITYMAPS_BASE_URL",
    "WATTTIME_USERNAME",
    "WATTTIME_USER",
    "WATTTIME_PASSWORD",
    "WATTTIME_BASE_URL",
    "EIA_API_KEY",
    "EIA_BASE_URL",
)

Response = tuple[int, bytes, dict[str, str]]


def recorded(name: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return status, (DATA / name).read_bytes(), headers or {}


def error(status: int, message: str = "error", headers: dict[str, str] | None = None) -> Response:
    return status, json.dumps({"message": message}).encode(), headers or {}


class Server:
    """A local HTTP server answering from per-path queues of recorded responses."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Response] | Callable[[dict[str, list[str]]], Response]] = {}
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                with outer.lock:
                    outer.requests.append((parts.path, query, dict(self.headers.items())))
                    route = outer.routes.get(parts.path)
                    if route is None:
                        resp: Response = (404, b'{"message": "no such route"}', {})
                    elif callable(route):
                        resp = route(query)
                    else:
                        resp = route.pop(0) if len(route) > 1 else route[0]
                status, body, headers = resp
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def calls(self, path: str) -> list[tuple[str, dict[str, list[str]], dict[str, str]]]:
        return [r for r in self.requests if r[0] == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    clear_default_clients()
    yield
    clear_default_clients()


@pytest.fixture
def sleeps() -> list[float]:
    return []


def settings(sleeps: list[float], **kw: Any) -> HttpSettings:
    kw.setdefault("timeout", 5.0)
    kw.setdefault("backoff", 0.25)
    return HttpSettings(sleep=sleeps.append, **kw)


def header(req: tuple[str, dict, dict[str, str]], name: str) -> str | None:
    return {k.lower(): v for k, v in req[2].items()}.get(name.lower())


def closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


# ----------------------------------------------------------------------------- Electricity Maps
EM_LATEST = "/v3/carbon-intensity/latest"


def em_client(server: Server, sleeps: list[float], **kw: Any) -> ElectricityMapsClient:
    http = {k: kw.pop(k) for k in ("max_attempts", "cache_ttl", "cache_dir") if k in kw}
    return ElectricityMapsClient(
        "em-secret", base_url=server.url, settings=settings(sleeps, **http), **kw
    )


def test_electricitymaps_latest_in_kg_per_kwh_with_auth_token_header(server, sleeps):
    server.routes[EM_LATEST] = [recorded("electricitymaps_latest_DE.json")]
    r = em_client(server, sleeps).latest("DE")
    assert r.carbon_intensity == pytest.approx(0.302)  # 302 gCO2eq/kWh -> kg/kWh
    assert r.time == datetime(2024, 5, 1, 13, tzinfo=UTC)
    assert r.estimated is True and r.kind == "lifecycle" and r.zone == "DE"
    (req,) = server.calls(EM_LATEST)
    assert header(req, "auth-token") == "em-secret"
    assert req[1]["zone"] == ["DE"] and req[1]["emissionFactorType"] == ["lifecycle"]


def test_electricitymaps_history_series_keeps_missing_hour_as_nan(server, sleeps):
    server.routes["/v3/carbon-intensity/history"] = [recorded("electricitymaps_history_DE.json")]
    s = em_client(server, sleeps).history("DE")
    assert list(s.index) == [datetime(2024, 5, 1, h, tzinfo=UTC) for h in (10, 11, 12, 13)]
    assert s.iloc[[0, 1, 3]].tolist() == pytest.approx([0.355, 0.331, 0.302])
    assert math.isnan(s.iloc[2])
    assert s.attrs["unit"] == "kg CO2-eq/kWh"


def test_electricitymaps_past_sends_the_hour_and_direct_kind_is_checked(server, sleeps):
    server.routes["/v3/carbon-intensity/past"] = [recorded("electricitymaps_past_FR.json")]
    r = em_client(server, sleeps).past("FR", "2024-05-01T09:00:00")
    assert r.carbon_intensity == pytest.approx(0.041) and r.estimated is False
    (req,) = server.calls("/v3/carbon-intensity/past")
    assert req[1]["datetime"] == ["2024-05-01T09:00:00Z"]
    # asking for direct intensity but getting life-cycle values is refused, naming the field
    with pytest.raises(SignalError, match="emissionFactorType") as info:
        em_client(server, sleeps, emission_factor_type="direct").past("FR", "2024-05-01T09")
    assert info.value.field == "emissionFactorType"


# ----------------------------------------------------------------------------- WattTime
def wt_client(server: Server, sleeps: list[float], **kw: Any) -> WattTimeClient:
    return WattTimeClient(
        "ops-user", "s3cret", base_url=server.url, settings=settings(sleeps, **kw)
    )


def test_watttime_basic_login_then_bearer_token_and_lbs_per_mwh_to_kg_per_kwh(server, sleeps):
    server.routes["/login"] = [recorded("watttime_login.json")]
    server.routes["/v3/forecast"] = [recorded("watttime_forecast_CAISO_NORTH.json")]
    r = wt_client(server, sleeps).latest("CAISO_NORTH")
    # 935 lbs CO2/MWh * 0.45359237 kg/lb / 1000 kWh/MWh
    assert r.carbon_intensity == pytest.approx(935.0 * 0.45359237 / 1000.0)
    assert LB_PER_MWH_TO_KG_PER_KWH == pytest.approx(4.5359237e-4)
    assert r.time == datetime(2024, 5, 1, 13, 5, tzinfo=UTC) and r.kind == "moer"
    (login,) = server.calls("/login")
    assert (
        header(login, "Authorization") == "Basic " + base64.b64encode(b"ops-user:s3cret").decode()
    )
    (data,) = server.calls("/v3/forecast")
    token = json.loads((DATA / "watttime_login.json").read_text())["token"]
    assert header(data, "Authorization") == f"Bearer {token}"
    assert data[1]["signal_type"] == ["co2_moer"] and data[1]["horizon_hours"] == ["0"]


def test_watttime_mean_over_the_slot_excludes_the_next_slot(server, sleeps):
    server.routes["/login"] = [recorded("watttime_login.json")]
    server.routes["/v3/historical"] = [recorded("watttime_historical_CAISO_NORTH.json")]
    c = wt_client(server, sleeps)
    r = c.mean("CAISO_NORTH", datetime(2024, 5, 1, 12), timedelta(hours=1))
    # points 12:00..12:55 are 900..1010 lbs/MWh (mean 955); the 13:00 point (1500) is out
    assert r.carbon_intensity == pytest.approx(955.0 * LB_PER_MWH_TO_KG_PER_KWH)
    (req,) = server.calls("/v3/historical")
    assert req[1]["start"] == ["2024-05-01T12:00:00Z"]
    assert req[1]["end"] == ["2024-05-01T13:00:00Z"]


def test_watttime_logs_in_again_once_when_the_token_expired(server, sleeps):
    server.routes["/login"] = [recorded("watttime_login.json")]
    server.routes["/v3/forecast"] = [
        error(401, "token expired"),
        recorded("watttime_forecast_CAISO_NORTH.json"),
    ]
    c = wt_client(server, sleeps)
    assert c.latest("CAISO_NORTH").carbon_intensity > 0
    assert c.logins == 2 and len(server.calls("/v3/forecast")) == 2 and sleeps == []


def test_watttime_refused_password_names_the_variables(server, sleeps):
    server.routes["/login"] = [error(403, "Invalid username or password")]
    with pytest.raises(
        SignalError,
        match="WattTime /login: HTTP 403.*Invalid username or "
        "password.*WATTTIME_USERNAME and WATTTIME_PASSWORD",
    ):
        wt_client(server, sleeps).latest("CAISO_NORTH")
    assert server.calls("/v3/forecast") == [] and sleeps == []


def test_watttime_signal_index_is_a_percentile_and_wrong_units_are_refused(server, sleeps):
    server.routes["/login"] = [recorded("watttime_login.json")]
    server.routes["/v3/signal-index"] = [recorded("watttime_signal_index_CAISO_NORTH.json")]
    c = wt_client(server, sleeps)
    t, pct = c.signal_index("CAISO_NORTH")
    assert pct == 72.0 and t == datetime(2024, 5, 1, 13, 5, tzinfo=UTC)
    # a percentile answer where a MOER in lbs/MWh is expected must not pass as a rate
    server.routes["/v3/forecast"] = [recorded("watttime_signal_index_CAISO_NORTH.json")]
    with pytest.raises(SignalError, match="units are 'percentile'") as info:
        c.latest("CAISO_NORTH")
    assert info.value.field == "meta.units" and "WattTime /v3/forecast" in str(info.value)


# ----------------------------------------------------------------------------- EIA
EIA_EP = "/v2/electricity/rto/fuel-type-data/data/"
ERCO_13 = dict(COL=8000, NG=20000, NUC=5000, SUN=12000, WND=6000, WAT=100, OTH=400)
PJM_13 = dict(COL=15500, NG=41000, NUC=32000, OIL=250, WAT=1400, SUN=3300, WND=2200, OTH=1150)
CODE_FUEL = {
    "COL": "coal",
    "NG": "natural_gas",
    "NUC": "nuclear",
    "OIL": "oil",
    "WAT": "hydro",
    "SUN": "solar",
    "WND": "wind",
    "OTH": "other",
}


def expected_mix(mix: dict[str, float]) -> tuple[float, float]:
    """Generation-weighted carbon [kg/kWh] and water [L/kWh], computed here by hand."""
    f = fuel_factors()
    total = sum(mix.values())
    ci = sum(v * f.loc[CODE_FUEL[c], "carbon_kg_per_kwh"] for c, v in mix.items()) / total
    water = sum(v * f.loc[CODE_FUEL[c], "water_l_per_kwh"] for c, v in mix.items()) / total
    return ci, water


def eia_client(server: Server, sleeps: list[float], **kw: Any) -> EIAClient:
    return EIAClient("eia-secret-key", base_url=server.url, settings=settings(sleeps, **kw))


def test_eia_fuel_mix_to_carbon_and_water_through_the_factor_table(server, sleeps):
    server.routes[EIA_EP] = [recorded("eia_fuel_type_data.json")]
    sig = eia_client(server, sleeps).intensity(
        ["ERCO", "PJM"], "2024-05-01T13:00Z", "2024-05-01T13:00Z"
    )
    # period 2024-05-01T14 (end of hour) is the slot starting 13:00; storage (BAT, PS) is out
    assert list(sig.carbon_intensity.index) == [datetime(2024, 5, 1, 13, tzinfo=UTC)]
    for ba, mix in (("ERCO", ERCO_13), ("PJM", PJM_13)):
        ci, water = expected_mix(mix)
        assert sig.carbon_intensity.loc[:, ba].iloc[0] == pytest.approx(ci, rel=1e-12)
        assert sig.ewif.loc[:, ba].iloc[0] == pytest.approx(water, rel=1e-12)
    # the same by hand from the packaged table's gal/MWh values: the L/kWh conversion holds
    assert sum(ERCO_13.values()) == 51500
    assert sig.ewif["ERCO"].iloc[0] == pytest.approx(
        (8000 * 450 + 20000 * 300 + 5000 * 600 + 400 * 475) / 51500 * GAL_PER_MWH_TO_L_PER_KWH
    )
    assert sig.carbon_intensity.attrs["unit"] == "kg CO2/kWh"
    assert sig.ewif.attrs["unit"] == "L/kWh"
    (req,) = server.calls(EIA_EP)
    q = req[1]
    assert q["api_key"] == ["eia-secret-key"] and q["frequency"] == ["hourly"]
    assert q["facets[respondent][]"] == ["ERCO", "PJM"] and q["data[0]"] == ["value"]
    assert q["start"] == ["2024-05-01T14"] and q["end"] == ["2024-05-01T14"]


def test_eia_follows_pages_until_total(server, sleeps):
    def pages(query: dict[str, list[str]]) -> Response:
        return recorded(
            "eia_fuel_type_data_page1.json"
            if query["offset"] == ["0"]
            else "eia_fuel_type_data_page2.json"
        )

    server.routes[EIA_EP] = pages
    gen = eia_client(server, sleeps).generation(
        ["ERCO", "PJM"], "2024-05-01T12:00Z", "2024-05-01T14:00Z"
    )
    assert [r[1]["offset"] for r in server.calls(EIA_EP)] == [["0"], ["20"]]
    # rows of both pages are there: PJM's 13:00 slot is split across the two pages
    assert gen["PJM"].loc[datetime(2024, 5, 1, 13, tzinfo=UTC), "solar"] == 3300
    assert gen["ERCO"].loc[datetime(2024, 5, 1, 12, tzinfo=UTC)].sum() == pytest.approx(
        7800 + 21000 + 5000 + 11000 + 6500 + 90 + 350
    )
    assert len(gen["ERCO"]) == 3


def test_eia_latest_takes_the_newest_complete_hour(server, sleeps):
    server.routes[EIA_EP] = [recorded("eia_fuel_type_data.json")]
    out = eia_client(server, sleeps).latest(["ERCO"], now="2024-05-01T16:20Z")
    t, ci, water = out["ERCO"]
    # the 14:00 slot has only 2 of 8 fuels reported yet, so 13:00 is the latest complete
    assert t == datetime(2024, 5, 1, 13, tzinfo=UTC)
    assert (ci, water) == pytest.approx(expected_mix(ERCO_13))
    (req,) = server.calls(EIA_EP)
    assert req[1]["start"] == ["2024-04-29T16"] and "end" not in req[1]


def test_eia_unknown_fuel_code_and_unit_errors_name_the_field(server, sleeps):
    doc = json.loads((DATA / "eia_fuel_type_data.json").read_text())
    doc["response"]["data"][0]["fueltype"] = "XYZ"
    server.routes[EIA_EP] = [(200, json.dumps(doc).encode(), {})]
    with pytest.raises(SignalError, match="unknown fuel type code 'XYZ'") as info:
        eia_client(server, sleeps).intensity(["ERCO"], "2024-05-01T12:00Z", "2024-05-01T12:00Z")
    assert info.value.field == "fueltype" and "fueltype_map" in str(info.value)
    # mapping the new code makes the same answer usable
    sig = EIAClient(
        "k",
        base_url=server.url,
        fueltype_map={"XYZ": "coal"},
        settings=settings(sleeps, cache_ttl=0),
    ).intensity(["ERCO"], "2024-05-01T12:00Z", "2024-05-01T12:00Z")
    assert sig.carbon_intensity["ERCO"].iloc[0] > 0
    doc["response"]["data"][0].update({"fueltype": "COL", "value-units": "thousand megawatthours"})
    server.routes[EIA_EP] = [(200, json.dumps(doc).encode(), {})]
    with pytest.raises(SignalError, match="value-units") as info:
        EIAClient("k", base_url=server.url, settings=settings(sleeps)).intensity(
            ["ERCO"], "2024-05-01T12:00Z", "2024-05-01T12:00Z"
        )
    assert info.value.field == "value-units"


def test_eia_absent_authority_is_a_clear_error(server, sleeps):
    server.routes[EIA_EP] = [recorded("eia_fuel_type_data.json")]
    with pytest.raises(SignalError, match="no rows for balancing authority 'MISO'"):
        eia_client(server, sleeps).intensity(["MISO"], "2024-05-01T13:00Z", "2024-05-01T13:00Z")


# ----------------------------------------------------------------------------- retries
def test_retry_after_a_429_honours_retry_after_then_succeeds(server, sleeps):
    server.routes[EM_LATEST] = [
        error(429, "rate limited", {"Retry-After": "3"}),
        recorded("electricitymaps_latest_DE.json"),
    ]
    r = em_client(server, sleeps).latest("DE")
    assert r.carbon_intensity == pytest.approx(0.302)
    assert len(server.calls(EM_LATEST)) == 2
    assert sleeps == [3.0]  # Retry-After (3 s) is longer than the first backoff (0.25 s)


def test_retry_after_longer_than_max_delay_stops_at_once_and_http_dates_parse(server, sleeps):
    from email.utils import format_datetime

    from eqglb.signals._http import _retry_after

    server.routes[EM_LATEST] = [
        error(429, "slow down", {"Retry-After": "120"}),
        recorded("electricitymaps_latest_DE.json"),
    ]
    with pytest.raises(SignalError, match="retry after 120 s, longer than max_delay=30 s"):
        em_client(server, sleeps).latest("DE")
    assert len(server.calls(EM_LATEST)) == 1 and sleeps == []
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    assert 15 < _retry_after(soon) <= 20
    assert _retry_after("not a date") is None and _retry_after("-5") == 0.0


def test_retries_after_503s_with_exponential_backoff_then_succeeds(server, sleeps):
    server.routes["/login"] = [recorded("watttime_login.json")]
    server.routes["/v3/forecast"] = [
        error(503),
        error(502),
        error(503),
        recorded("watttime_forecast_CAISO_NORTH.json"),
    ]
    r = wt_client(server, sleeps, max_attempts=4).latest("CAISO_NORTH")
    assert r.carbon_intensity == pytest.approx(935.0 * LB_PER_MWH_TO_KG_PER_KWH)
    assert sleeps == [0.25, 0.5, 1.0]
    assert len(server.calls("/v3/forecast")) == 4


def test_gives_up_after_n_attempts_with_a_clear_error(server, sleeps):
    server.routes[EIA_EP] = [error(503, "Service Unavailable")]
    with pytest.raises(SignalError) as info:
        eia_client(server, sleeps, max_attempts=3, max_delay=0.4).intensity(
            ["ERCO"], "2024-05-01T13:00Z", "2024-05-01T13:00Z"
        )
    msg = str(info.value)
    assert "EIA API v2 /v2/electricity/rto/fuel-type-data/data/" in msg
    assert "gave up after 3 attempt(s)" in msg and "HTTP 503" in msg
    assert "eia-secret-key" not in msg  # the key never appears in messages
    assert info.value.attempts == 3 and info.value.status == 503
    assert len(server.calls(EIA_EP)) == 3 and sleeps == [0.25, 0.4]  # capped at max_delay


def test_connection_errors_are_retried_then_reported():
    sleeps: list[float] = []
    c = ElectricityMapsClient(
        "t",
        base_url=closed_port_url(),
        settings=HttpSettings(max_attempts=2, backoff=0.1, timeout=2, sleep=sleeps.append),
    )
    with pytest.raises(
        SignalError,
        match=r"gave up after 2 attempt\(s\); last: connection "
        "failed",
    ):
        c.latest("DE")
    assert sleeps == [0.1]


def test_refused_credentials_are_not_retried(server, sleeps):
    server.routes[EM_LATEST] = [error(401, "Invalid auth-token")]
    with pytest.raises(SignalError, match="HTTP 401.*Invalid auth-token.*ELECTRICITYMAPS_TOKEN"):
        em_client(server, sleeps).latest("DE")
    assert len(server.calls(EM_LATEST)) == 1 and sleeps == []


def test_not_json_and_missing_field_errors_name_provider_endpoint_and_field(server, sleeps):
    server.routes[EM_LATEST] = [(200, b"<html>login page</html>", {})]
    with pytest.raises(
        SignalError,
        match="Electricity Maps /v3/carbon-intensity/latest: HTTP 200 answer is not JSON.*base URL",
    ):
        em_client(server, sleeps, cache_ttl=0).latest("DE")
    server.routes[EM_LATEST] = [(200, b'{"zone": "DE", "datetime": "2024-05-01T13:00Z"}', {})]
    with pytest.raises(SignalError, match="field 'carbonIntensity'") as info:
        em_client(server, sleeps, cache_ttl=0).latest("DE")
    assert info.value.field == "carbonIntensity" and info.value.provider == "Electricity Maps"


# ----------------------------------------------------------------------------- caching
def test_memory_cache_hit_avoids_a_second_request_until_the_ttl(server, sleeps):
    server.routes[EM_LATEST] = [recorded("electricitymaps_latest_DE.json")]
    c = em_client(server, sleeps, cache_ttl=300)
    a, b = c.latest("DE"), c.latest("DE")
    assert a == b and len(server.calls(EM_LATEST)) == 1 and c.http.requests_sent == 1
    short = em_client(server, sleeps, cache_ttl=0.05)
    short.latest("DE")
    threading.Event().wait(0.1)  # past the 0.05 s TTL
    short.latest("DE")
    assert len(server.calls(EM_LATEST)) == 3


def test_disk_cache_serves_a_new_client_and_holds_no_secret(server, sleeps, tmp_path):
    server.routes[EIA_EP] = [recorded("eia_fuel_type_data.json")]
    first = eia_client(server, sleeps, cache_dir=tmp_path / "cache").intensity(
        ["ERCO"], "2024-05-01T13:00Z", "2024-05-01T13:00Z"
    )
    again = eia_client(server, sleeps, cache_dir=tmp_path / "cache").intensity(
        ["ERCO"], "2024-05-01T13:00Z", "2024-05-01T13:00Z"
    )
    assert len(server.calls(EIA_EP)) == 1
    assert again.carbon_intensity.equals(first.carbon_intensity)
    files = list((tmp_path / "cache").glob("*.json"))
    assert len(files) == 1 and "eia-secret-key" not in files[0].read_text()
    # a different key shares the cache (the key is not part of the request's identity)...
    other = EIAClient(
        "another-key", base_url=server.url, settings=settings(sleeps, cache_dir=tmp_path / "cache")
    )
    other.intensity(["ERCO"], "2024-05-01T13:00Z", "2024-05-01T13:00Z")
    assert len(server.calls(EIA_EP)) == 1
    # ...but another query does not
    other.intensity(["ERCO"], "2024-05-01T12:00Z", "2024-05-01T12:00Z")
    assert len(server.calls(EIA_EP)) == 2


# ----------------------------------------------------------------------------- credentials
@pytest.mark.parametrize(
    ("make", "var"),
    [
        (lambda: ElectricityMapsClient(), "ELECTRICITYMAPS_TOKEN"),
        (lambda: WattTimeClient(password="p"), "WATTTIME_USERNAME"),
        (lambda: WattTimeClient(username="u"), "WATTTIME_PASSWORD"),
        (lambda: EIAClient(), "EIA_API_KEY"),
    ],
)
def test_missing_api_key_names_the_environment_variable(make, var):
    with pytest.raises(SignalError, match=f"environment variable {var} is not set.*export {var}="):
        make()


def test_credentials_and_base_url_come_from_the_environment(server, sleeps, monkeypatch):
    monkeypatch.setenv("WATTTIME_USER", "sdk-user")  # the WattTime SDK's name also works
    monkeypatch.setenv("WATTTIME_PASSWORD", "pw")
    monkeypatch.setenv("WATTTIME_BASE_URL", server.url)
    server.routes["/login"] = [recorded("watttime_login.json")]
    server.routes["/v3/forecast"] = [recorded("watttime_forecast_CAISO_NORTH.json")]
    out = slot_signals("watttime", {"dc-ca": "CAISO_NORTH"})
    assert out == {"carbon_intensity": {"dc-ca": pytest.approx(935 * LB_PER_MWH_TO_KG_PER_KWH)}}
    assert (
        header(server.calls("/login")[0], "Authorization")
        == "Basic " + base64.b64encode(b"sdk-user:pw").decode()
    )
    slot_signals("watttime", ["CAISO_NORTH"])  # the kept client reuses token and cache
    assert len(server.calls("/login")) == 1 and len(server.calls("/v3/forecast")) == 1


# ----------------------------------------------------------------------------- slot_signals
def test_slot_signals_eia_fills_carbon_and_ewif_accepted_by_the_service_schema(server, sleeps):
    from eqglb.service.schemas import SlotIn

    server.routes[EIA_EP] = [recorded("eia_fuel_type_data.json")]
    client = eia_client(server, sleeps)
    zones = {"dc-austin": "ERCO", "dc-dallas": "ERCO", "dc-ashburn": "PJM"}
    out = slot_signals("eia", zones, datetime(2024, 5, 1, 13, 30), client=client)
    assert set(out) == {"carbon_intensity", "ewif"}
    assert out["carbon_intensity"]["dc-austin"] == out["carbon_intensity"]["dc-dallas"]
    assert (out["carbon_intensity"]["dc-ashburn"], out["ewif"]["dc-ashburn"]) == pytest.approx(
        expected_mix(PJM_13)
    )
    assert len(server.calls(EIA_EP)) == 1  # both authorities in one request
    body = SlotIn.model_validate_json(
        json.dumps(
            {
                "time": "2024-05-01T13:00:00Z",
                "demand": {"r": 1.0},
                "price": dict.fromkeys(zones, 0.1),
                "wue": dict.fromkeys(zones, 0.5),
                **out,
            }
        )
    )
    assert body.ewif == out["ewif"]


def test_slot_signals_electricitymaps_past_hour_and_latest(server, sleeps):
    server.routes["/v3/carbon-intensity/past"] = [recorded("electricitymaps_past_FR.json")]
    server.routes[EM_LATEST] = [recorded("electricitymaps_latest_DE.json")]
    c = em_client(server, sleeps)
    past = slot_signals("electricitymaps", {"paris": "FR"}, "2024-05-01T09:40:00Z", client=c)
    assert past == {"carbon_intensity": {"paris": pytest.approx(0.041)}}
    assert server.calls("/v3/carbon-intensity/past")[0][1]["datetime"] == ["2024-05-01T09:00:00Z"]
    now = slot_signals("Electricity-Maps", {"frankfurt": "DE", "berlin": "DE"}, client=c)
    assert now["carbon_intensity"] == {
        "frankfurt": pytest.approx(0.302),
        "berlin": pytest.approx(0.302),
    }
    assert len(server.calls(EM_LATEST)) == 1


def test_slot_signals_rejects_unknown_provider_and_mismatched_client(server, sleeps):
    with pytest.raises(SignalError, match="unknown provider.*'eia', 'electricitymaps'"):
        slot_signals("carbonsignal", ["DE"])
    with pytest.raises(SignalError, match="pass a WattTimeClient"):
        slot_signals("watttime", ["DE"], client=em_client(server, sleeps))
    with pytest.raises(SignalError, match="no data centres"):
        slot_signals("eia", {}, client=eia_client(server, sleeps))


def test_cli_signals_prints_the_slot_maps(server, monkeypatch, capsys):
    from eqglb.cli import main

    monkeypatch.setenv("ELECTRICITYMAPS_TOKEN", "cli-token")
    server.routes[EM_LATEST] = [recorded("electricitymaps_latest_DE.json")]
    rc = main(["signals", "electricitymaps", "--zone", "dc-de=DE", "--base-url", server.url])
    assert rc == 0
    assert json.loads(capsys.readouterr().out) == {"carbon_intensity": {"dc-de": 0.302}}
    assert header(server.calls(EM_LATEST)[0], "auth-token") == "cli-token"
    assert main(["signals", "eia", "--zone", "nonsense"]) == 2
    assert "DATACENTRE=ZONE" in capsys.readouterr().err
