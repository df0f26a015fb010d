"""Client of the WattTime API v3: marginal operating emissions rate (MOER) per grid region.

Authentication: ``GET /login`` with HTTP basic auth (user name and password) answers
``{"token": "..."}``; the token (valid 30 minutes) goes in ``Authorization: Bearer`` on
the data requests. This client logs in on first use, renews the token after 25 minutes,
and logs in again once if a data request answers 401. The token is kept in memory only.

Endpoints used (``GET``):

- ``/v3/forecast?region=R&signal_type=co2_moer&horizon_hours=0``: the current MOER (the
  forecast's first point, per WattTime's guidance for real-time values);
- ``/v3/historical?region=R&signal_type=co2_moer&start=T0&end=T1``: past MOER;
- ``/v3/signal-index?region=R&signal_type=co2_moer``: the current MOER as a percentile
  [0-100] of the region's next 24 hours (a ranking, not an emission rate).

Answers are ``{"data": [{"point_time", "value"}, ...], "meta": {"units", "region",
"signal_type", "data_point_period_seconds", ...}}``; ``point_time`` is the start of a
5-minute interval (UTC).

**Units.** WattTime MOER is in lbs CO2/MWh (``meta.units == "lbs_co2_per_mwh"``). This
client converts it to kg CO2/kWh: ``kg/kWh = lbs/MWh * 0.45359237 / 1000``
(:data:`LB_PER_MWH_TO_KG_PER_KWH`). MOER is a *marginal* rate (the emissions of the
generators that respond to a change in load), not the average intensity Electricity Maps
or the EIA fuel mix give; choose one kind per study.

Environment: ``WATTTIME_USERNAME`` (or the SDK's ``WATTTIME_USER``) and
``WATTTIME_PASSWORD`` (required); ``WATTTIME_BASE_URL`` (optional; default
``https://api.watttime.org``).
"""

from __future__ import annotations

import base64
import os
import threading
import time as _time
from datetime import timedelta
from typing import Any

import pandas as pd

from eqglb.signals._http import (
    HttpSettings,
    JsonClient,
    SignalError,
    as_utc,
    env_value,
    field_of,
    iso_z,
    number,
    parse_time,
)
from eqglb.signals.electricitymaps import CarbonReading

__all__ = [
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "LB_PER_MWH_TO_KG_PER_KWH",
    "PASSWORD_ENV",
    "PROVIDER",
    "USERNAME_ENV",
    "WattTimeClient",
]

PROVIDER = "WattTime"
USERNAME_ENV = "WATTTIME_USERNAME"
_USERNAME_ENV_SDK = "WATTTIME_USER"
PASSWORD_ENV = "WATTTIME_PASSWORD"
BASE_URL_ENV = "WATTTIME_BASE_URL"
DEFAULT_BASE_URL = "https://api.watttime.org"
#: 1 lb CO2/MWh in kg CO2/kWh (0.45359237 kg per lb, 1000 kWh per MWh).
LB_PER_MWH_TO_KG_PER_KWH = 0.45359237 / 1000.0
_TOKEN_LIFETIME_S = 25 * 60.0  # WattTime tokens last 30 minutes; renew with a margin
_MASS_SIGNALS = ("co2_moer", "co2_aoer")
_UNITS = "lbs_co2_per_mwh"


def _history_ttl(ttl: float) -> float:
    """Cache lifetime of past MOER [s]: at least an hour (the past changes little), 0 if off."""
    return max(ttl, 3600.0) if ttl > 0 else 0.0


class WattTimeClient:
    """Marginal emissions (MOER) from the WattTime API v3.

    Parameters
    ----------
    username, password : str or None
        Default the environment variables ``WATTTIME_USERNAME`` (or ``WATTTIME_USER``)
        and ``WATTTIME_PASSWORD``.
    base_url : str or None
        Default ``WATTTIME_BASE_URL`` or ``https://api.watttime.org``.
    signal_type : {"co2_moer", "co2_aoer"}
        Marginal (default) or average operating emissions rate; both in lbs CO2/MWh.
    settings : HttpSettings or None
        Retries and caching (default: 4 attempts, 300 s in-memory cache).
    **http : Any
        Shortcut for ``HttpSettings(**http)``.

    Raises
    ------
    SignalError
        Missing user name or password, or a bad base URL.
    """

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        *,
        base_url: str | None = None,
        signal_type: str = "co2_moer",
        settings: HttpSettings | None = None,
        **http: Any,
    ) -> None:
        if signal_type not in _MASS_SIGNALS:
            raise SignalError(
                PROVIDER,
                "client",
                f"signal_type is {signal_type!r}",
                f"use one of {list(_MASS_SIGNALS)} (emission rates in lbs CO2/MWh)",
            )
        if not username and os.environ.get(USERNAME_ENV, "").strip() == "":
            username = os.environ.get(_USERNAME_ENV_SDK, "").strip() or None
        self.username = env_value(
            PROVIDER,
            "/login",
            username,
            USERNAME_ENV,
            "user name",
            "the user name of your WattTime account",
        )
        self.password = env_value(
            PROVIDER,
            "/login",
            password,
            PASSWORD_ENV,
            "password",
            "the password of your WattTime account",
        )
        self.signal_type = signal_type
        base = base_url or os.environ.get(BASE_URL_ENV, "").strip() or DEFAULT_BASE_URL
        self.http = JsonClient(
            PROVIDER,
            base,
            settings or HttpSettings(**http),
            auth_fix=f"check {USERNAME_ENV} and {PASSWORD_ENV}, and that "
            "your WattTime plan covers this region (free accounts: "
            "CAISO_NORTH only)",
        )
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = threading.Lock()
        self.logins = 0

    # ------------------------------------------------------------------ auth
    def login(self) -> str:
        """Log in (basic auth) and keep the token; returns it."""
        ep = "/login"
        basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        obj = self.http.get_json(ep, headers={"Authorization": f"Basic {basic}"}, cache=False)
        token = field_of(obj, "token", PROVIDER, ep)
        if not isinstance(token, str) or not token:
            raise SignalError(
                PROVIDER, ep, "the token is empty", "check the account", field="token"
            )
        with self._token_lock:
            self._token = token
            self._token_expires = _time.monotonic() + _TOKEN_LIFETIME_S
            self.logins += 1
        return token

    def _auth(self) -> dict[str, str]:
        with self._token_lock:
            token = self._token if _time.monotonic() < self._token_expires else None
        return {"Authorization": f"Bearer {token or self.login()}"}

    def _get(self, endpoint: str, params: dict[str, str], ttl: float | None = None) -> Any:
        params = {**params, "signal_type": self.signal_type}
        return self.http.get_json(
            endpoint,
            params,
            headers=self._auth(),
            ttl=ttl,
            on_auth_failure=lambda: {"Authorization": f"Bearer {self.login()}"},
        )

    # ------------------------------------------------------------------ parsing
    def _points(
        self, obj: Any, endpoint: str, region: str, units: str | None = _UNITS
    ) -> tuple[list, list[float]]:
        meta = field_of(obj, "meta", PROVIDER, endpoint)
        data = field_of(obj, "data", PROVIDER, endpoint)
        if units is not None:
            got = field_of(meta, "units", PROVIDER, endpoint, " 'meta'")
            if got != units:
                raise SignalError(
                    PROVIDER,
                    endpoint,
                    f"units are {got!r}, expected {units!r}",
                    f"ask for signal_type in {list(_MASS_SIGNALS)}; eqglb "
                    "converts lbs CO2/MWh to kg CO2/kWh",
                    field="meta.units",
                )
        got_region = meta.get("region", region) if isinstance(meta, dict) else region
        if got_region != region:
            raise SignalError(
                PROVIDER,
                endpoint,
                f"asked for region {region!r}, got {got_region!r}",
                "check the region code (e.g. 'CAISO_NORTH')",
                field="meta.region",
            )
        if not isinstance(data, list):
            raise SignalError(
                PROVIDER,
                endpoint,
                "'data' is not a list",
                "check the base URL and API version",
                field="data",
            )
        times, values = [], []
        for p in data:
            times.append(
                parse_time(
                    field_of(p, "point_time", PROVIDER, endpoint, " 'data' item"),
                    PROVIDER,
                    endpoint,
                    "point_time",
                )
            )
            v = number(
                field_of(p, "value", PROVIDER, endpoint, " 'data' item"),
                PROVIDER,
                endpoint,
                "value",
            )
            assert v is not None
            values.append(v)
        return times, values

    def _reading(self, t: Any, lbs: float, region: str, endpoint: str) -> CarbonReading:
        if lbs < 0:
            raise SignalError(
                PROVIDER,
                endpoint,
                f"negative MOER {lbs:g} lbs CO2/MWh for {region!r}",
                "eqglb needs emission rates >= 0 (a negative marginal rate cannot be priced here)",
                field="value",
            )
        return CarbonReading(
            zone=region,
            time=t,
            carbon_intensity=lbs * LB_PER_MWH_TO_KG_PER_KWH,
            estimated=None,
            kind=self.signal_type.split("_")[1],
            provider=PROVIDER,
        )

    # ------------------------------------------------------------------ endpoints
    def latest(self, region: str) -> CarbonReading:
        """The current MOER of ``region``, converted to [kg CO2/kWh]."""
        ep = "/v3/forecast"
        obj = self._get(ep, {"region": region, "horizon_hours": "0"})
        times, values = self._points(obj, ep, region)
        if not values:
            raise SignalError(
                PROVIDER,
                ep,
                f"no data point for region {region!r}",
                "check the region code and your plan",
                field="data",
            )
        return self._reading(times[0], values[0], region, ep)

    def historical(self, region: str, start: Any, end: Any) -> pd.Series:
        """Past MOER of ``region`` from ``start`` to ``end`` [kg CO2/kWh], indexed by the UTC
        start of each (5-minute) interval."""
        ep = "/v3/historical"
        t0, t1 = as_utc(start, PROVIDER, ep, "start"), as_utc(end, PROVIDER, ep, "end")
        if t1 <= t0:
            raise SignalError(
                PROVIDER, ep, f"end {iso_z(t1)} is not after start {iso_z(t0)}", "give start < end"
            )
        obj = self._get(
            ep,
            {"region": region, "start": iso_z(t0), "end": iso_z(t1)},
            ttl=_history_ttl(self.http.settings.cache_ttl),
        )
        times, values = self._points(obj, ep, region)
        for t, v in zip(times, values, strict=True):
            self._reading(t, v, region, ep)  # checks the sign
        s = pd.Series(
            [v * LB_PER_MWH_TO_KG_PER_KWH for v in values],
            index=pd.DatetimeIndex(times, name="time"),
            name=region,
            dtype=float,
        ).sort_index()
        s.attrs.update(
            unit="kg CO2/kWh", source=f"{PROVIDER} {self.signal_type}", original_unit="lbs CO2/MWh"
        )
        return s

    def mean(self, region: str, start: Any, length: timedelta) -> CarbonReading:
        """Mean MOER of ``region`` over ``[start, start + length)`` [kg CO2/kWh]."""
        ep = "/v3/historical"
        t0 = as_utc(start, PROVIDER, ep, "start")
        s = self.historical(region, t0, t0 + length)
        s = s[(s.index >= pd.Timestamp(t0)) & (s.index < pd.Timestamp(t0 + length))]
        if s.empty:
            raise SignalError(
                PROVIDER,
                ep,
                f"no data point for region {region!r} in [{iso_z(t0)}, {iso_z(t0 + length)})",
                "ask for a time WattTime has data for",
                field="data",
            )
        return CarbonReading(
            zone=region,
            time=t0,
            carbon_intensity=float(s.mean()),
            estimated=None,
            kind=self.signal_type.split("_")[1],
            provider=PROVIDER,
        )

    def signal_index(self, region: str) -> tuple[Any, float]:
        """The current MOER percentile of ``region`` [0-100] (0 = cleanest of the next 24
        hours) and its time; a ranking, not converted to an emission rate."""
        ep = "/v3/signal-index"
        obj = self._get(ep, {"region": region})
        times, values = self._points(obj, ep, region, units="percentile")
        if not values:
            raise SignalError(
                PROVIDER,
                ep,
                f"no data point for region {region!r}",
                "check the region code",
                field="data",
            )
        if not 0 <= values[0] <= 100:
            raise SignalError(
                PROVIDER,
                ep,
                f"percentile {values[0]:g} is outside [0, 100]",
                "check the API version",
                field="value",
            )
        return times[0], values[0]
