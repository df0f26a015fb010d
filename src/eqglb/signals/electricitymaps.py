"""Client of the Electricity Maps API v3: grid carbon intensity per zone, latest and history.

Endpoints used (``GET``, header ``auth-token: <token>``):

- ``/v3/carbon-intensity/latest?zone=Z``: the latest hour, one object;
- ``/v3/carbon-intensity/history?zone=Z``: the last 24 hours, ``{"zone", "history": [...]}``;
- ``/v3/carbon-intensity/past?zone=Z&datetime=T``: the hour starting at ``T``, one object;
- ``/v3/carbon-intensity/past-range?zone=Z&start=T0&end=T1``: ``{"zone", "data": [...]}``.

Each object carries ``zone``, ``carbonIntensity`` [g CO2-eq/kWh], ``datetime`` (start of
the hour, UTC), ``isEstimated`` and ``emissionFactorType`` (``lifecycle`` or ``direct``).
Values are returned in kg CO2-eq/kWh (divided by 1000), as
:func:`eqglb.io.electricitymaps.load_electricitymaps` does for the CSV exports.

Environment: ``ELECTRICITYMAPS_TOKEN`` (the API token, required) and
``ELECTRICITYMAPS_BASE_URL`` (optional; default ``https://api.electricitymap.org``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
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

__all__ = [
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "G_PER_KG",
    "PROVIDER",
    "TOKEN_ENV",
    "CarbonReading",
    "ElectricityMapsClient",
]

PROVIDER = "Electricity Maps"
TOKEN_ENV = "ELECTRICITYMAPS_TOKEN"
BASE_URL_ENV = "ELECTRICITYMAPS_BASE_URL"
DEFAULT_BASE_URL = "https://api.electricitymap.org"
#: grams per kilogram: Electricity Maps reports g CO2-eq/kWh, eqglb works in kg CO2-eq/kWh.
G_PER_KG = 1000.0
_KINDS = ("lifecycle", "direct")


@dataclass(frozen=True)
class CarbonReading:
    """One carbon-intensity value of one zone.

    Attributes
    ----------
    zone : str
        Zone (Electricity Maps zone id) or region (WattTime region) code.
    time : datetime
        Start of the interval the value holds for (UTC).
    carbon_intensity : float
        [kg CO2-eq/kWh] (Electricity Maps: average intensity; WattTime: marginal MOER).
    estimated : bool or None
        Whether the provider flags the value as estimated (``None``: not said).
    kind : str
        ``"lifecycle"`` / ``"direct"`` (Electricity Maps) or ``"moer"`` (WattTime).
    provider : str
    """

    zone: str
    time: datetime
    carbon_intensity: float
    estimated: bool | None
    kind: str
    provider: str


class ElectricityMapsClient:
    """Carbon intensity from the Electricity Maps API v3.

    Parameters
    ----------
    token : str or None
        API token; default the environment variable ``ELECTRICITYMAPS_TOKEN``.
    base_url : str or None
        Default ``ELECTRICITYMAPS_BASE_URL`` or ``https://api.electricitymap.org``.
    emission_factor_type : {"lifecycle", "direct"}
        Sent as ``emissionFactorType``: life-cycle (the API's default) or direct
        (combustion only) intensity.
    settings : HttpSettings or None
        Retries and caching (default: 4 attempts, 300 s in-memory cache).
    **http : Any
        Shortcut for ``HttpSettings(**http)`` (e.g. ``cache_dir=..., max_attempts=...``).

    Raises
    ------
    SignalError
        No token (environment variable unset) or a bad base URL.
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        base_url: str | None = None,
        emission_factor_type: str = "lifecycle",
        settings: HttpSettings | None = None,
        **http: Any,
    ) -> None:
        if emission_factor_type not in _KINDS:
            raise SignalError(
                PROVIDER,
                "client",
                f"emission_factor_type is {emission_factor_type!r}",
                "use 'lifecycle' or 'direct'",
            )
        self.token = env_value(
            PROVIDER,
            "client",
            token,
            TOKEN_ENV,
            "API token",
            "the token of your Electricity Maps API portal account",
        )
        self.kind = emission_factor_type
        base = base_url or os.environ.get(BASE_URL_ENV, "").strip() or DEFAULT_BASE_URL
        self.http = JsonClient(
            PROVIDER,
            base,
            settings or HttpSettings(**http),
            auth_fix=f"check {TOKEN_ENV} (the token of your Electricity "
            "Maps account) and that your plan covers this zone",
        )

    def _get(self, endpoint: str, params: dict[str, str]) -> Any:
        params = {**params, "emissionFactorType": self.kind}
        return self.http.get_json(endpoint, params, headers={"auth-token": self.token})

    def _reading(self, obj: Any, endpoint: str, zone: str) -> CarbonReading:
        ci = field_of(obj, "carbonIntensity", PROVIDER, endpoint)
        value = number(ci, PROVIDER, endpoint, "carbonIntensity")
        assert value is not None
        if value < 0:
            raise SignalError(
                PROVIDER,
                endpoint,
                f"negative carbon intensity {value:g} gCO2eq/kWh for zone {zone!r}",
                "report it to the provider; eqglb needs intensities >= 0",
                field="carbonIntensity",
            )
        t = parse_time(
            field_of(obj, "datetime", PROVIDER, endpoint), PROVIDER, endpoint, "datetime"
        )
        got_zone = obj.get("zone", zone)
        if got_zone != zone:
            raise SignalError(
                PROVIDER,
                endpoint,
                f"asked for zone {zone!r}, got {got_zone!r}",
                "check the zone code (e.g. 'DE', 'US-CAL-CISO')",
                field="zone",
            )
        est = obj.get("isEstimated")
        kind = obj.get("emissionFactorType") or self.kind
        if kind != self.kind:
            raise SignalError(
                PROVIDER,
                endpoint,
                f"asked for {self.kind!r} intensity, got {kind!r}",
                "the provider ignored emissionFactorType; check the API version",
                field="emissionFactorType",
            )
        return CarbonReading(
            zone=zone,
            time=t,
            carbon_intensity=value / G_PER_KG,
            estimated=None if est is None else bool(est),
            kind=kind,
            provider=PROVIDER,
        )

    def _series(self, items: Any, endpoint: str, zone: str, field: str) -> pd.Series:
        if not isinstance(items, list):
            raise SignalError(
                PROVIDER,
                endpoint,
                f"{field!r} is not a list",
                "check the base URL and API version",
                field=field,
            )
        times: list[datetime] = []
        values: list[float] = []
        est: list[bool | None] = []
        for obj in items:
            if isinstance(obj, dict) and obj.get("carbonIntensity") is None and "datetime" in obj:
                times.append(parse_time(obj["datetime"], PROVIDER, endpoint, "datetime"))
                values.append(float("nan"))  # the provider has no value for this hour
                est.append(None)
                continue
            r = self._reading(obj, endpoint, zone)
            times.append(r.time)
            values.append(r.carbon_intensity)
            est.append(r.estimated)
        s = pd.Series(
            values, index=pd.DatetimeIndex(times, name="time"), name=zone, dtype=float
        ).sort_index()
        s.attrs.update(unit="kg CO2-eq/kWh", kind=self.kind, source=PROVIDER, estimated=est)
        return s

    def latest(self, zone: str) -> CarbonReading:
        """The latest carbon intensity of ``zone`` [kg CO2-eq/kWh]."""
        ep = "/v3/carbon-intensity/latest"
        return self._reading(self._get(ep, {"zone": zone}), ep, zone)

    def past(self, zone: str, time: Any) -> CarbonReading:
        """The carbon intensity of ``zone`` in the hour starting at ``time`` (naive = UTC)."""
        ep = "/v3/carbon-intensity/past"
        t = as_utc(time, PROVIDER, ep)
        return self._reading(self._get(ep, {"zone": zone, "datetime": iso_z(t)}), ep, zone)

    def history(self, zone: str) -> pd.Series:
        """The last 24 hours of ``zone``: a series [kg CO2-eq/kWh] indexed by UTC hour start.

        Hours the provider has no value for are NaN.
        """
        ep = "/v3/carbon-intensity/history"
        obj = self._get(ep, {"zone": zone})
        return self._series(field_of(obj, "history", PROVIDER, ep), ep, zone, "history")

    def past_range(self, zone: str, start: Any, end: Any) -> pd.Series:
        """Hourly values of ``zone`` from ``start`` to ``end`` (the provider caps the range)."""
        ep = "/v3/carbon-intensity/past-range"
        t0, t1 = as_utc(start, PROVIDER, ep, "start"), as_utc(end, PROVIDER, ep, "end")
        if t1 <= t0:
            raise SignalError(
                PROVIDER, ep, f"end {iso_z(t1)} is not after start {iso_z(t0)}", "give start < end"
            )
        obj = self._get(ep, {"zone": zone, "start": iso_z(t0), "end": iso_z(t1)})
        return self._series(field_of(obj, "data", PROVIDER, ep), ep, zone, "data")
