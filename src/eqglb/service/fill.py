"""Grid signals the service fetches itself: ``eqglb serve --signals PROVIDER --zone DC=ZONE``.

With a :class:`SignalSource` configured, a slot posted to ``POST /v1/slots`` may omit the
provider's signals (``carbon_intensity`` [kg CO2/kWh]; for ``eia`` also ``ewif``
[L/kWh]); the service then asks the provider (:func:`eqglb.signals.slot_signals`) for the
hour of the slot's ``time`` and puts the answer into the body before it is validated,
decided and stored. The operator posts demand, prices and on-site WUE only.

Choices:

* a slot that omits them must give its ``time``: the values are then those of a fixed
  hour (never "latest"), so a retry of the same slot is filled alike and replays the
  stored response instead of conflicting with it; concurrent clients cannot make a fill
  depend on the order in which their slots are sequenced;
* values the body gives are kept (a partial map is completed for the data centres it
  omits); the provider is not asked when nothing is missing;
* the filled body is what the service stores: a restart or an audit sees the signals the
  decision used, and the service stays a function of its stored requests;
* a provider failure refuses the slot with 503 naming the provider, endpoint and fix;
  nothing is applied, and the client retries with the same key.

A restarted service asks again for a slot whose first attempt was never committed; if the
provider revised that hour meanwhile, a retry of a committed slot conflicts (409). The
clients' on-disk cache (``--signals-cache-dir``) keeps answers across restarts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from eqglb.errors import ConfigError
from eqglb.signals import PROVIDERS, SignalError, make_client, slot_signals

__all__ = ["SignalFiller", "SignalSource", "parse_zones"]


def parse_zones(items: Sequence[str]) -> dict[str, str]:
    """``["dc-a=DE", ...]`` -> ``{"dc-a": "DE"}``; ConfigError naming ``--zone``."""
    zones: dict[str, str] = {}
    for item in items:
        dc, sep, code = str(item).partition("=")
        if not sep or not dc.strip() or not code.strip():
            raise ConfigError(f"--zone {item!r}: write DATACENTRE=ZONE, e.g. --zone dc-de=DE")
        zones[dc.strip()] = code.strip()
    return zones


@dataclass(frozen=True)
class SignalSource:
    """Where the service gets grid signals a slot omits.

    Parameters
    ----------
    provider : {"electricitymaps", "watttime", "eia"}
    zones : mapping
        Data centre -> the provider's zone (Electricity Maps zone id, WattTime region,
        EIA balancing authority); every data centre of the scenario.
    cache_dir : str, optional
        Folder of the clients' on-disk cache (kept across restarts).
    base_url : str, optional
        The provider's base URL (default the public API, or its environment variable).
    """

    provider: str
    zones: Mapping[str, str] = field(default_factory=dict)
    cache_dir: str | None = None
    base_url: str | None = None

    def __post_init__(self) -> None:
        name = str(self.provider).strip().lower()
        if name not in PROVIDERS:
            raise ConfigError(
                f"--signals {self.provider!r}: unknown provider; use one of {sorted(PROVIDERS)}"
            )
        object.__setattr__(self, "provider", name)
        if not self.zones:
            raise ConfigError(
                f"--signals {name} needs the zone of every data centre: --zone DC=ZONE"
            )

    @property
    def fields(self) -> tuple[str, ...]:
        """Slot fields this provider fills."""
        return ("carbon_intensity", "ewif") if self.provider == "eia" else ("carbon_intensity",)

    def check(self, datacenters: Sequence[str]) -> None:
        """Every data centre has a zone and every zone names a data centre."""
        unknown = sorted(set(self.zones) - set(datacenters))
        if unknown:
            raise ConfigError(
                f"--zone names unknown data centres {unknown}; known: {list(datacenters)}"
            )
        missing = [dc for dc in datacenters if dc not in self.zones]
        if missing:
            raise ConfigError(
                f"--signals {self.provider}: no --zone for data centres {missing}; give "
                "DC=ZONE for every data centre"
            )


class SignalFiller:
    """Completes posted slot bodies with the provider's signals (module docstring).

    The client is built at once (credentials from the environment), so a missing key
    fails when the service starts, not at the first slot.
    """

    def __init__(self, source: SignalSource, slot: timedelta, client: Any = None) -> None:
        self.source = source
        self.slot = slot
        if client is None:
            kwargs: dict[str, Any] = {}
            if source.cache_dir:
                kwargs["cache_dir"] = source.cache_dir
            if source.base_url:
                kwargs["base_url"] = source.base_url
            try:
                client = make_client(source.provider, **kwargs)
            except SignalError as exc:
                raise ConfigError(f"--signals {source.provider}: {exc}") from None
        self.client = client

    def missing(self, body: Mapping[str, Any]) -> dict[str, list[str]]:
        """Data centres each filled field lacks in ``body``."""
        out: dict[str, list[str]] = {}
        for name in self.source.fields:
            given = body.get(name)
            have = set(given) if isinstance(given, Mapping) else set()
            lack = [dc for dc in self.source.zones if dc not in have]
            if lack:
                out[name] = lack
        return out

    def fill(self, raw: bytes) -> bytes:
        """``raw`` (a JSON slot body) with the missing signals filled; unchanged when
        nothing is missing or it is not a JSON object (validation reports that).

        Raises
        ------
        ValueError
            A body that needs filling gives no ``time`` (message for the client, 422).
        SignalError
            The provider failed (503).
        """
        try:
            body = json.loads(raw)
        except ValueError:
            return raw
        if not isinstance(body, dict):
            return raw
        lack = self.missing(body)
        if not lack:
            return raw
        if body.get("time") is None:
            raise ValueError(
                f"the slot omits {sorted(lack)}, which the service fetches from "
                f"{self.source.provider} for the slot's hour: give the slot's 'time'"
            )
        need = {dc for dcs in lack.values() for dc in dcs}
        zones = {dc: z for dc, z in self.source.zones.items() if dc in need}
        got = slot_signals(
            self.source.provider, zones, body["time"], client=self.client, slot=self.slot
        )
        for name, dcs in lack.items():
            given = body.get(name)
            merged = dict(given) if isinstance(given, Mapping) else {}
            merged.update({dc: got[name][dc] for dc in dcs})
            body[name] = merged
        return json.dumps(body).encode()
