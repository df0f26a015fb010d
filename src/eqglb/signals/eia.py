"""Client of the EIA API v2: hourly fuel mix per balancing authority -> carbon and water.

Route: ``GET /v2/electricity/rto/fuel-type-data/data/`` (Form EIA-930, the same data as
the bulk BALANCE files read by :mod:`eqglb.io.eia930`) with ``api_key``,
``frequency=hourly`` (UTC), ``data[0]=value``, ``facets[respondent][]=<BA>``, ``start``
and ``end`` (``YYYY-MM-DDTHH``, inclusive), ``sort[0][column]=period``, ``offset`` and
``length`` (at most 5000 rows a page; further pages are fetched while ``offset <
response.total``). Each row has ``period``, ``respondent``, ``fueltype`` (a code: ``COL``,
``NG``, ``NUC``, ``OIL``, ``WAT``, ``SUN``, ``WND``, ``OTH``, ...), ``value`` (a number or
numeric text) and ``value-units`` (``megawatthours``).

Conversions reuse the file loader's conventions and the packaged physics:

- Time: EIA-930 stamps the *end* of each hour, so ``slot start = period - 1 h``, as in
  :func:`eqglb.io.eia930.read_eia930_generation`.
- Fuel code -> EIA-930 energy source -> fuel of the factor table through
  :data:`eqglb.io.eia930.SOURCE_TO_FUEL` (:data:`FUELTYPE_TO_SOURCE`); storage codes
  (``PS``, ``BAT``, ``OES``, ``UES``) are left out of the mix. A fuel code absent in an
  hour counts as 0 MWh (as an empty cell of the file).
- Carbon intensity [kg CO2/kWh] and energy-water intensity factor EWIF [L/kWh] by
  :func:`eqglb.physics.grid_intensity` with :func:`eqglb.physics.fuel_factors` (the eGLB
  factors by default; negative generation clipped, hydro water 0 unless given).

Environment: ``EIA_API_KEY`` (required) and ``EIA_BASE_URL`` (optional; default
``https://api.eia.gov``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from eqglb.io.eia930 import SOURCE_TO_FUEL, GridSignals
from eqglb.physics import fuel_factors, grid_intensity
from eqglb.scenario import ScenarioError
from eqglb.signals._http import (
    HttpSettings,
    JsonClient,
    SignalError,
    as_utc,
    env_value,
    field_of,
    number,
)

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "ENDPOINT",
    "FUELTYPE_TO_SOURCE",
    "PROVIDER",
    "EIAClient",
]

PROVIDER = "EIA API v2"
API_KEY_ENV = "EIA_API_KEY"
BASE_URL_ENV = "EIA_BASE_URL"
DEFAULT_BASE_URL = "https://api.eia.gov"
ENDPOINT = "/v2/electricity/rto/fuel-type-data/data/"
_PAGE = 5000
_UNITS = "megawatthours"

#: EIA API ``fueltype`` code -> EIA-930 energy source (lower-case text of the bulk files'
#: ``Net Generation (MW) from <source>`` columns), mapped to a fuel by
#: :data:`eqglb.io.eia930.SOURCE_TO_FUEL`.
FUELTYPE_TO_SOURCE: dict[str, str] = {
    "COL": "coal",
    "NG": "natural gas",
    "NUC": "nuclear",
    "OIL": "all petroleum products",
    "WAT": "hydropower excluding pumped storage",
    "SUN": "solar",
    "SNB": "solar with integrated battery storage",
    "WND": "wind",
    "WNB": "wind with integrated battery storage",
    "GEO": "geothermal",
    "OTH": "other fuel sources",
    "UNK": "unknown fuel sources",
    "PS": "pumped storage",
    "BAT": "battery storage",
    "OES": "other energy storage",
    "UES": "unknown energy storage",
}


def _period_text(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H")


class EIAClient:
    """Hourly fuel mix, carbon intensity and EWIF per balancing authority (EIA API v2).

    Parameters
    ----------
    api_key : str or None
        Default the environment variable ``EIA_API_KEY``.
    base_url : str or None
        Default ``EIA_BASE_URL`` or ``https://api.eia.gov``.
    factors : pandas.DataFrame or None
        Per-fuel factors (:func:`eqglb.physics.fuel_factors`; default the eGLB values).
    hydro_water_l_per_kwh : float or None
        Water factor of hydro [L/kWh]; ``None`` keeps the table's 0 (eGLB convention).
    fueltype_map : dict or None
        Extra or replacement entries code -> fuel of the factor table, or ``None`` to
        leave a code out of the mix (e.g. ``{"XYZ": "other"}`` for a new code).
    settings : HttpSettings or None
        Retries and caching (default: 4 attempts, 300 s in-memory cache).
    **http : Any
        Shortcut for ``HttpSettings(**http)``.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        factors: pd.DataFrame | None = None,
        hydro_water_l_per_kwh: float | None = None,
        fueltype_map: dict[str, str | None] | None = None,
        settings: HttpSettings | None = None,
        **http: Any,
    ) -> None:
        self.api_key = env_value(
            PROVIDER,
            ENDPOINT,
            api_key,
            API_KEY_ENV,
            "API key",
            "a free key from https://www.eia.gov/opendata/register.php",
        )
        base = base_url or os.environ.get(BASE_URL_ENV, "").strip() or DEFAULT_BASE_URL
        self.http = JsonClient(
            PROVIDER,
            base,
            settings or HttpSettings(**http),
            secret_params=("api_key",),
            auth_fix=f"check {API_KEY_ENV} (register a key at "
            "https://www.eia.gov/opendata/register.php)",
        )
        self.factors = fuel_factors() if factors is None else factors
        self.hydro_water_l_per_kwh = hydro_water_l_per_kwh
        self.code_to_fuel: dict[str, str | None] = {
            code: SOURCE_TO_FUEL[src] for code, src in FUELTYPE_TO_SOURCE.items()
        }
        self.code_to_fuel.update({str(k).upper(): v for k, v in (fueltype_map or {}).items()})

    # ------------------------------------------------------------------ raw rows
    def _rows(self, bas: list[str], start: datetime, end: datetime | None) -> list[dict[str, Any]]:
        params: list[tuple[str, Any]] = [
            ("api_key", self.api_key),
            ("frequency", "hourly"),
            ("data[0]", "value"),
        ]
        params += [("facets[respondent][]", ba) for ba in bas]
        params.append(("start", _period_text(start)))
        if end is not None:
            params.append(("end", _period_text(end)))
        params += [("sort[0][column]", "period"), ("sort[0][direction]", "asc")]
        rows: list[dict[str, Any]] = []
        offset = 0
        while True:
            obj = self.http.get_json(ENDPOINT, [*params, ("offset", offset), ("length", _PAGE)])
            if isinstance(obj, dict) and "error" in obj and "response" not in obj:
                raise SignalError(
                    PROVIDER,
                    ENDPOINT,
                    f"the API answered an error: {obj['error']!r}",
                    "check the balancing-authority codes and the time range",
                    field="error",
                )
            resp = field_of(obj, "response", PROVIDER, ENDPOINT)
            freq = resp.get("frequency", "hourly") if isinstance(resp, dict) else "hourly"
            if freq != "hourly":
                raise SignalError(
                    PROVIDER,
                    ENDPOINT,
                    f"frequency is {freq!r}, expected 'hourly' (UTC)",
                    "check the base URL and API version",
                    field="response.frequency",
                )
            data = field_of(resp, "data", PROVIDER, ENDPOINT, " 'response'")
            if not isinstance(data, list):
                raise SignalError(
                    PROVIDER,
                    ENDPOINT,
                    "'response.data' is not a list",
                    "check the base URL and API version",
                    field="response.data",
                )
            total = number(resp.get("total", len(data)), PROVIDER, ENDPOINT, "response.total")
            rows.extend(data)
            offset += len(data)
            if not data or offset >= (total or 0):
                return rows

    def generation(
        self, balancing_authorities: Iterable[str], start: Any, end: Any
    ) -> dict[str, pd.DataFrame]:
        """Hourly generation by fuel for slots starting in ``[start, end]`` (both included).

        Returns
        -------
        dict of str -> pandas.DataFrame
            For each authority (in the order given), generation by fuel [MWh per hour =
            MW], indexed by the UTC start of the hour (``time``), columns fuels.

        Raises
        ------
        SignalError
            Bad answers (missing fields, unknown fuel code, another unit, a bad period or
            number) or an authority without any row in the range.
        """
        bas = [str(b) for b in balancing_authorities]
        t0 = as_utc(start, PROVIDER, ENDPOINT, "start")
        t1 = as_utc(end, PROVIDER, ENDPOINT, "end")
        if t1 < t0:
            raise SignalError(
                PROVIDER,
                ENDPOINT,
                f"end {t1:%Y-%m-%dT%H} is before start {t0:%Y-%m-%dT%H}",
                "give start <= end",
            )
        rows = self._rows(bas, t0 + timedelta(hours=1), t1 + timedelta(hours=1))
        return self._frames(rows, bas, (t0, t1))

    def _frames(
        self, rows: list[dict[str, Any]], bas: list[str], window: tuple[datetime, datetime] | None
    ) -> dict[str, pd.DataFrame]:
        acc: dict[str, dict[pd.Timestamp, dict[str, float]]] = {b: {} for b in bas}
        seen: dict[str, dict[pd.Timestamp, int]] = {b: {} for b in bas}
        for row in rows:
            ba = str(field_of(row, "respondent", PROVIDER, ENDPOINT, " 'response.data' item"))
            if ba not in acc:
                continue
            code = str(field_of(row, "fueltype", PROVIDER, ENDPOINT, " 'response.data' item"))
            if code not in self.code_to_fuel:
                raise SignalError(
                    PROVIDER,
                    ENDPOINT,
                    f"unknown fuel type code {code!r} ({row.get('type-name', '?')}) for {ba!r}",
                    "map it with fueltype_map={code: fuel or None}",
                    field="fueltype",
                )
            units = row.get("value-units", _UNITS)
            if units != _UNITS:
                raise SignalError(
                    PROVIDER,
                    ENDPOINT,
                    f"value-units is {units!r}, expected {_UNITS!r}",
                    "use the electricity/rto/fuel-type-data route",
                    field="value-units",
                )
            period = field_of(row, "period", PROVIDER, ENDPOINT, " 'response.data' item")
            try:
                t = pd.Timestamp(
                    datetime.strptime(str(period), "%Y-%m-%dT%H").replace(tzinfo=UTC)
                ) - pd.Timedelta(hours=1)
            except ValueError:
                raise SignalError(
                    PROVIDER,
                    ENDPOINT,
                    f"period {period!r} is not an hourly UTC stamp 'YYYY-MM-DDTHH'",
                    "ask with frequency=hourly (not local-hourly)",
                    field="period",
                ) from None
            if window is not None and not window[0] <= t <= window[1]:
                continue
            v = number(row.get("value"), PROVIDER, ENDPOINT, "value", allow_none=True)
            seen[ba][t] = seen[ba].get(t, 0) + 1
            fuel = self.code_to_fuel[code]
            if fuel is None:
                continue  # storage: moves energy in time, not generation
            hour = acc[ba].setdefault(t, {})
            hour[fuel] = hour.get(fuel, 0.0) + (v or 0.0)
        out: dict[str, pd.DataFrame] = {}
        for ba in bas:
            if not seen[ba]:
                rng = (
                    ""
                    if window is None
                    else f" for slots {window[0]:%Y-%m-%dT%H}..{window[1]:%Y-%m-%dT%H} UTC"
                )
                raise SignalError(
                    PROVIDER,
                    ENDPOINT,
                    f"no rows for balancing authority {ba!r}{rng}",
                    "check the code (e.g. 'ERCO', 'PJM', "
                    "'CISO') and that EIA has published those hours (it lags "
                    "about an hour)",
                    field="respondent",
                )
            times = sorted(seen[ba])
            df = pd.DataFrame(
                [acc[ba].get(t, {}) for t in times], index=pd.DatetimeIndex(times, name="time")
            ).fillna(0.0)
            df.attrs["reported_codes"] = [seen[ba][t] for t in times]
            df.attrs["balancing_authority"] = ba
            out[ba] = df
        return out

    # ------------------------------------------------------------------ signals
    def _signals(self, gen: dict[str, pd.DataFrame]) -> GridSignals:
        ci: dict[str, pd.Series] = {}
        ew: dict[str, pd.Series] = {}
        for ba, g in gen.items():
            if g.shape[1] == 0:
                g = g.assign(other=0.0)
            try:
                res = grid_intensity(
                    g, self.factors, hydro_water_l_per_kwh=self.hydro_water_l_per_kwh, on_zero="nan"
                )
            except ScenarioError as exc:
                raise SignalError(
                    PROVIDER,
                    ENDPOINT,
                    f"balancing authority {ba!r}: {exc}",
                    "pass factors covering every fuel, or fueltype_map",
                ) from exc
            nan = res["carbon_intensity"].isna().to_numpy()
            if nan.any():
                t = res.index[int(np.flatnonzero(nan)[0])]
                raise SignalError(
                    PROVIDER,
                    ENDPOINT,
                    f"total generation of {ba!r} is 0 MWh "
                    f"in the hour starting {t:%Y-%m-%d %H:%M} UTC (after "
                    "clipping negative values), so it has no intensity",
                    "ask for another hour",
                    field="value",
                )
            ci[ba] = res["carbon_intensity"]
            ew[ba] = res["ewif"]
        ci_df, ew_df = pd.DataFrame(ci), pd.DataFrame(ew)
        for df, unit in ((ci_df, "kg CO2/kWh"), (ew_df, "L/kWh")):
            df.index.name = "time"
            df.columns.name = "balancing_authority"
            df.attrs["unit"] = unit
            df.attrs["source"] = "EIA API v2 electricity/rto/fuel-type-data"
        return GridSignals(ci_df, ew_df)

    def intensity(self, balancing_authorities: Iterable[str], start: Any, end: Any) -> GridSignals:
        """Carbon intensity [kg CO2/kWh] and EWIF [L/kWh] for slots starting in ``[start,
        end]``, each (time, balancing authority); hours an authority lacks are NaN."""
        return self._signals(self.generation(balancing_authorities, start, end))

    def latest(
        self, balancing_authorities: Iterable[str], *, lookback_hours: int = 48, now: Any = None
    ) -> dict[str, tuple[pd.Timestamp, float, float]]:
        """The most recent complete hour of each authority: ``{ba: (slot start, carbon
        intensity [kg CO2/kWh], EWIF [L/kWh])}``.

        "Complete": the latest hour in the last ``lookback_hours`` whose number of
        reported fuel codes is the most seen in that window (EIA publishes fuels of the
        newest hour at different times).
        """
        bas = [str(b) for b in balancing_authorities]
        t_now = datetime.now(UTC) if now is None else as_utc(now, PROVIDER, ENDPOINT, "now")
        rows = self._rows(bas, t_now - timedelta(hours=lookback_hours), None)
        gen = self._frames(rows, bas, None)
        out: dict[str, tuple[pd.Timestamp, float, float]] = {}
        for ba, g in gen.items():
            counts = np.asarray(g.attrs["reported_codes"])
            last = int(np.flatnonzero(counts == counts.max())[-1])
            sig = self._signals({ba: g.iloc[[last]]})
            out[ba] = (
                g.index[last],
                float(sig.carbon_intensity[ba].iloc[0]),
                float(sig.ewif[ba].iloc[0]),
            )
        return out
