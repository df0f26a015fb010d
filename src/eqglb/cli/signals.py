"""``eqglb signals``: print one slot's grid signals from a provider as JSON.

The output holds the ``carbon_intensity`` map [kg CO2/kWh] (and for ``eia`` the ``ewif``
map [L/kWh]) of the service's slot input, keyed by data centre, so a cron job or a
sidecar can merge it into the body it posts to ``/v1/slots``::

    eqglb signals electricitymaps --zone dc-de=DE --zone dc-fr=FR
    eqglb signals eia --zone dc-tx=ERCO --time 2024-05-01T13:00Z --cache-dir ~/.cache/eqglb
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["signals_command"]


def signals_command(
    provider: Annotated[
        str,
        typer.Argument(
            help="Signal provider: electricitymaps (ELECTRICITYMAPS_TOKEN), watttime "
            "(WATTTIME_USERNAME, WATTTIME_PASSWORD) or eia (EIA_API_KEY)."
        ),
    ],
    zone: Annotated[
        list[str],
        typer.Option(
            "--zone",
            "-z",
            help="DATACENTRE=ZONE (repeatable): the provider's zone id, region "
            "or balancing authority of each data centre.",
        ),
    ],
    time: Annotated[
        str | None,
        typer.Option(help="Slot start (ISO 8601, naive = UTC); default the latest values."),
    ] = None,
    slot_minutes: Annotated[
        float, typer.Option(help="Slot length [min] (WattTime averages its 5-minute MOER over it).")
    ] = 60.0,
    base_url: Annotated[
        str | None,
        typer.Option(
            help="Override the provider's base URL (default from *_BASE_URL or the public API)."
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Folder of the on-disk JSON cache of answers.")
    ] = None,
    cache_ttl: Annotated[float, typer.Option(help="Cache lifetime [s].")] = 300.0,
    max_attempts: Annotated[
        int, typer.Option(help="Attempts per request (retries on 429/5xx/connection errors).")
    ] = 4,
) -> None:
    """Fetch one slot's carbon intensity (and, for eia, water factor) per data centre."""
    from datetime import timedelta

    from eqglb.errors import CLIError
    from eqglb.signals import SignalError, make_client, slot_signals

    zones: dict[str, str] = {}
    for item in zone:
        dc, sep, code = item.partition("=")
        if not sep or not dc.strip() or not code.strip():
            raise CLIError(f"--zone {item!r}: write DATACENTRE=ZONE, e.g. --zone dc-de=DE")
        zones[dc.strip()] = code.strip()
    try:
        kwargs: dict[str, object] = {
            "cache_ttl": cache_ttl,
            "max_attempts": max_attempts,
            "cache_dir": cache_dir,
        }
        if base_url:
            kwargs["base_url"] = base_url
        client = make_client(provider, **kwargs)
        out = slot_signals(
            provider, zones, time, client=client, slot=timedelta(minutes=slot_minutes)
        )
    except SignalError as exc:
        raise CLIError(str(exc)) from exc
    from eqglb._json import dumps

    typer.echo(dumps(out, sort_keys=True))
