"""Live grid signals from the providers operators pay for, ready for the service's slots.

Clients (standard library HTTP; retries with exponential backoff on 429/5xx/connection
errors honouring ``Retry-After``; in-memory TTL cache plus an optional on-disk JSON cache;
clear :class:`SignalError` messages naming provider, endpoint, field and fix):

- :class:`ElectricityMapsClient`: Electricity Maps API v3, average carbon intensity per
  zone (latest, past hour, last 24 h, range) [kg CO2-eq/kWh]; ``ELECTRICITYMAPS_TOKEN``.
- :class:`WattTimeClient`: WattTime API v3, marginal emissions (MOER), converted from
  lbs CO2/MWh to [kg CO2/kWh]; ``WATTTIME_USERNAME`` and ``WATTTIME_PASSWORD``.
- :class:`EIAClient`: EIA API v2 hourly fuel mix per balancing authority -> carbon
  intensity [kg CO2/kWh] and EWIF [L/kWh] through :func:`eqglb.physics.grid_intensity`;
  ``EIA_API_KEY``.

Each base URL can be overridden (argument, or ``ELECTRICITYMAPS_BASE_URL``,
``WATTTIME_BASE_URL``, ``EIA_BASE_URL``), e.g. to a caching proxy.

:func:`slot_signals` fills the signal maps of a service slot (``POST /v1/slots``) so the
operator only adds demand, prices and WUE::

    from eqglb.signals import slot_signals
    body = {"demand": {...}, "price": {...}, "wue": {...},
            **slot_signals("eia", {"dc-tx": "ERCO", "dc-va": "PJM"})}
    # body["carbon_intensity"] [kg CO2/kWh] and body["ewif"] [L/kWh] per data centre

On the command line: ``eqglb signals eia --zone dc-tx=ERCO --zone dc-va=PJM`` prints the
same maps as JSON.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from eqglb.signals._http import HttpSettings, SignalError, as_utc
from eqglb.signals.eia import EIAClient
from eqglb.signals.electricitymaps import CarbonReading, ElectricityMapsClient
from eqglb.signals.watttime import LB_PER_MWH_TO_KG_PER_KWH, WattTimeClient

__all__ = [
    "LB_PER_MWH_TO_KG_PER_KWH",
    "PROVIDERS",
    "CarbonReading",
    "EIAClient",
    "ElectricityMapsClient",
    "HttpSettings",
    "SignalError",
    "WattTimeClient",
    "clear_default_clients",
    "make_client",
    "slot_signals",
]

#: Provider name -> client class, as accepted by :func:`slot_signals`.
PROVIDERS: dict[str, type] = {
    "electricitymaps": ElectricityMapsClient,
    "watttime": WattTimeClient,
    "eia": EIAClient,
}

_DEFAULTS: dict[str, Any] = {}
_DEFAULTS_LOCK = threading.Lock()


def _provider_name(provider: str) -> str:
    name = str(provider).strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    if name not in PROVIDERS:
        raise SignalError(
            str(provider), "slot_signals", "unknown provider", f"use one of {sorted(PROVIDERS)}"
        )
    return name


def make_client(provider: str, **kwargs: Any) -> Any:
    """A new client of ``provider`` (``"electricitymaps"``, ``"watttime"`` or ``"eia"``);
    ``kwargs`` go to its constructor (credentials, ``base_url``, ``cache_dir``, ...)."""
    return PROVIDERS[_provider_name(provider)](**kwargs)


def clear_default_clients() -> None:
    """Forget the per-provider clients :func:`slot_signals` keeps between calls."""
    with _DEFAULTS_LOCK:
        _DEFAULTS.clear()


def _default_client(name: str) -> Any:
    with _DEFAULTS_LOCK:
        if name not in _DEFAULTS:
            _DEFAULTS[name] = PROVIDERS[name]()
        return _DEFAULTS[name]


def slot_signals(
    provider: str,
    zones: Mapping[str, str] | Iterable[str],
    time: Any = None,
    *,
    client: Any = None,
    slot: timedelta = timedelta(hours=1),
    **client_kwargs: Any,
) -> dict[str, dict[str, float]]:
    """Per-data-centre grid signals of one slot, in the service's slot-input form.

    Parameters
    ----------
    provider : {"electricitymaps", "watttime", "eia"}
    zones : mapping or iterable of str
        Data centre -> provider zone: an Electricity Maps zone id (``"DE"``,
        ``"US-TEX-ERCO"``), a WattTime region (``"CAISO_NORTH"``) or an EIA balancing
        authority (``"ERCO"``). An iterable of codes uses each code as the data-centre
        name. Each distinct zone is asked once.
    time : datetime, ISO 8601 text or None
        Start of the slot (naive = UTC). ``None``: the latest values (Electricity Maps
        ``latest``; WattTime current MOER; EIA the latest complete hour). Given:
        Electricity Maps and EIA the hour containing ``time`` (hourly data); WattTime
        the mean of its 5-minute MOER over ``[time, time + slot)``.
    client : client object or None
        A client of that provider to use; ``None`` uses one kept per provider between
        calls (so the caches and the WattTime token are reused) built from the
        environment, or a new one from ``client_kwargs`` when given.
    slot : timedelta
        Slot length (WattTime averaging window); default 1 hour.
    **client_kwargs : Any
        Passed to the client's constructor when ``client`` is ``None``.

    Returns
    -------
    dict
        ``{"carbon_intensity": {dc: [kg CO2/kWh]}}``, and for ``"eia"`` also ``{"ewif":
        {dc: [L/kWh]}}``: keys and units of the service's ``SlotIn`` body, to merge into
        it. Electricity Maps gives average (life-cycle by default) intensity, WattTime
        marginal (MOER), EIA average (generation-weighted, eGLB factors).

    Raises
    ------
    SignalError
        Unknown provider, no zones, missing credentials, or any client failure.
    """
    name = _provider_name(provider)
    mapping = dict(zones) if isinstance(zones, Mapping) else {str(z): str(z) for z in zones}
    if not mapping:
        raise SignalError(
            name, "slot_signals", "no data centres given", "pass zones={datacenter: zone code}"
        )
    if client is None:
        client = PROVIDERS[name](**client_kwargs) if client_kwargs else _default_client(name)
    elif not isinstance(client, PROVIDERS[name]):
        raise SignalError(
            name,
            "slot_signals",
            f"client is a {type(client).__name__}",
            f"pass a {PROVIDERS[name].__name__} or no client",
        )
    if slot <= timedelta(0):
        raise SignalError(name, "slot_signals", f"slot is {slot}", "give a positive length")
    t = None if time is None else as_utc(time, name, "slot_signals")
    distinct = list(dict.fromkeys(mapping.values()))
    carbon: dict[str, float] = {}
    ewif: dict[str, float] = {}
    if name == "eia":
        if t is None:
            latest = client.latest(distinct)
            carbon = {z: v[1] for z, v in latest.items()}
            ewif = {z: v[2] for z, v in latest.items()}
        else:
            hour = t.replace(minute=0, second=0, microsecond=0)
            sig = client.intensity(distinct, hour, hour)
            for z in distinct:
                ci = sig.carbon_intensity[z].dropna()
                if ci.empty:
                    raise SignalError(
                        client.http.provider,
                        "slot_signals",
                        f"no value for {z!r} in the hour starting {hour:%Y-%m-%d %H:%M} UTC",
                        "ask for an hour EIA has published",
                    )
                carbon[z] = float(ci.iloc[0])
                ewif[z] = float(sig.ewif[z].dropna().iloc[0])
    else:
        for z in distinct:
            if t is None:
                r = client.latest(z)
            elif name == "electricitymaps":
                r = client.past(z, t.replace(minute=0, second=0, microsecond=0))
            else:
                r = client.mean(z, t, slot)
            carbon[z] = r.carbon_intensity
    out = {"carbon_intensity": {dc: carbon[z] for dc, z in mapping.items()}}
    if name == "eia":
        out["ewif"] = {dc: ewif[z] for dc, z in mapping.items()}
    return out
