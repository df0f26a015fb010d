"""The service fetching grid signals itself (eqglb serve --signals eia --zone DC=ZONE;
eqglb.service.fill): slots that omit carbon intensity and EWIF are filled from the EIA
API, answered by recorded responses served on 127.0.0.1; the filled values are checked
against the fuel mix computed by hand, the decision against a service posted the same
values, and retries, provider failures and bad configurations against what the docs
promise."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from eqglb.service import ServiceConfig, create_app
from eqglb.service.engine import ServiceConfigError
from eqglb.service.fill import SignalSource
from eqglb.testing import random_scenario
from tests.service.test_service import TOKEN, post, routing_array, running
from tests.service.test_service_policies import _body
from tests.signals.test_signals import (
    EIA_EP,
    ERCO_13,
    PJM_13,
    Server,
    error,
    expected_mix,
    recorded,
)

ZONES = {"dc0": "ERCO", "dc1": "PJM"}
START = "2024-05-01T13:00:00+00:00"  # the recorded hour


@pytest.fixture
def eia(monkeypatch):
    s = Server()
    s.routes[EIA_EP] = [recorded("eia_fuel_type_data.json")]
    monkeypatch.setenv("EIA_API_KEY", "eia-test-key")
    monkeypatch.setenv("EIA_BASE_URL", s.url)
    yield s
    s.close()


@pytest.fixture(scope="module")
def scenario():
    sc = random_scenario(np.random.default_rng(4), T=3, N=2, J=3, K=2)
    import dataclasses

    return dataclasses.replace(sc, time=pd.date_range(START, periods=3, freq="h"))


def _config(sc, **kw: Any) -> ServiceConfig:
    return ServiceConfig.from_scenario(sc, signals=SignalSource("eia", ZONES), **kw)


def _demand_only(sc, t: int) -> dict[str, Any]:
    body = _body(sc, t)
    del body["carbon_intensity"], body["ewif"]
    body["time"] = sc.time[t].isoformat()
    return body


def test_omitted_grid_signals_are_filled_from_the_provider(tmp_path, eia, scenario):
    sc = scenario
    app = create_app(_config(sc), tmp_path / "s.db", TOKEN)
    with running(app) as c:
        r = post(c, _demand_only(sc, 0), "k0")
        assert r.status_code == 200, r.text
        stored = c.get("/v1/slots/0").json()
        again = post(c, _demand_only(sc, 0), "k0")  # a retry: filled alike, replayed
        assert again.status_code == 200 and again.headers.get("Idempotency-Replayed") == "true"
        assert again.json() == r.json()
    req = stored["request"]
    for dc, mix in (("dc0", ERCO_13), ("dc1", PJM_13)):
        ci, water = expected_mix(mix)
        assert req["carbon_intensity"][dc] == pytest.approx(ci, rel=1e-12)
        assert req["ewif"][dc] == pytest.approx(water, rel=1e-12)
    (call,) = eia.calls(EIA_EP)[:1]
    assert call[1]["api_key"] == ["eia-test-key"]
    # the same values posted by hand to a service without --signals: the same decision
    body = {**_demand_only(sc, 0), "carbon_intensity": req["carbon_intensity"], "ewif": req["ewif"]}
    plain = create_app(ServiceConfig.from_scenario(sc), tmp_path / "p.db", TOKEN)
    with running(plain) as c:
        by_hand = post(c, body, "k0")
        assert by_hand.status_code == 200, by_hand.text
    np.testing.assert_array_equal(routing_array(sc, r.json()), routing_array(sc, by_hand.json()))


def test_given_values_are_kept_and_a_partial_map_completed(tmp_path, eia, scenario):
    sc = scenario
    body = _demand_only(sc, 0)
    body["carbon_intensity"] = {"dc0": 0.123}
    app = create_app(_config(sc), tmp_path / "s.db", TOKEN)
    with running(app) as c:
        assert post(c, body, "k0").status_code == 200
        req = c.get("/v1/slots/0").json()["request"]
        calls = len(eia.calls(EIA_EP))
        full = _body(sc, 1)  # every signal given: the provider is not asked
        full["time"] = sc.time[1].isoformat()
        assert post(c, full, "k1").status_code == 200
        assert len(eia.calls(EIA_EP)) == calls
    assert req["carbon_intensity"]["dc0"] == 0.123
    assert req["carbon_intensity"]["dc1"] == pytest.approx(expected_mix(PJM_13)[0], rel=1e-12)


def test_fill_needs_the_slots_time_and_a_failing_provider_applies_nothing(tmp_path, eia, scenario):
    sc = scenario
    app = create_app(_config(sc), tmp_path / "s.db", TOKEN)
    with running(app) as c:
        first = _demand_only(sc, 0)
        assert post(c, first, "k0").status_code == 200
        no_time = _demand_only(sc, 1)
        del no_time["time"]
        r = post(c, no_time, "k1")
        assert r.status_code == 422 and "'time'" in r.text
        eia.routes[EIA_EP] = [error(503, "down")]
        r = post(c, _demand_only(sc, 1), "k1")
        assert r.status_code == 503 and "EIA" in r.text
        assert c.get("/v1/state").json()["slots"] == 1  # nothing applied
        eia.routes[EIA_EP] = [recorded("eia_fuel_type_data.json")]
        r = post(c, _demand_only(sc, 1), "k1")  # the client's retry, same key
        assert r.status_code == 200, r.text
        assert c.get("/v1/state").json()["slots"] == 2


def test_signal_configuration_is_checked(tmp_path, eia, scenario, monkeypatch):
    sc = scenario
    with pytest.raises(ServiceConfigError, match="no --zone for data centres"):
        ServiceConfig.from_scenario(sc, signals=SignalSource("eia", {"dc0": "ERCO"}))
    with pytest.raises(ServiceConfigError, match="unknown data centres"):
        ServiceConfig.from_scenario(sc, signals=SignalSource("eia", {**ZONES, "dcX": "PJM"}))
    with pytest.raises(ValueError, match="unknown provider"):
        SignalSource("nope", ZONES)
    monkeypatch.delenv("EIA_API_KEY")
    with pytest.raises(ValueError, match="EIA_API_KEY"):
        create_app(_config(sc), tmp_path / "k.db", TOKEN)
    assert not (tmp_path / "k.db").exists()


def test_serve_check_with_signals(tmp_path, eia, capsys, monkeypatch):
    from eqglb.builtin import builtin_scenario
    from eqglb.cli.serve import main

    monkeypatch.setenv("EQGLB_TOKEN", "t0ken")
    dcs = builtin_scenario(days=1).datacenters
    zones = [f"--zone={dc}=ERCO" for dc in dcs]
    args = ["--check", "--days", "1", "--db", str(tmp_path / "c.db"), "--signals", "eia"]
    assert main([*args, *zones]) == 0
    assert "signals from eia" in capsys.readouterr().out
    assert main([*args, *zones[1:]]) == 2
    assert "no --zone" in capsys.readouterr().err
    assert main(["--check", "--days", "1", "--zone", "a=b"]) == 2
    assert "--signals" in capsys.readouterr().err
