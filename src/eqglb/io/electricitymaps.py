"""Reader of Electricity Maps hourly carbon-intensity CSV exports.

Electricity Maps publishes hourly history per zone as CSV (data portal downloads). Two
header layouts are in circulation; both are accepted (names compared case-insensitively):

- ``Datetime (UTC), Country, Zone Name, Zone Id, Carbon Intensity gCO₂eq/kWh (direct),
  Carbon Intensity gCO₂eq/kWh (LCA), Low Carbon Percentage, Renewable Percentage,
  Data Source, Data Estimated, Data Estimation Method`` (older exports);
- ``Datetime (UTC), Country, Zone name, Zone id, Carbon intensity gCO₂eq/kWh (direct),
  Carbon intensity gCO₂eq/kWh (Life cycle), Carbon-free energy percentage (CFE%),
  Renewable energy percentage (RE%), Data source, Data estimated, Data estimation method``
  (newer exports).

``Datetime (UTC)`` is the start of the hour (e.g. ``2022-09-22 00:00:00``). Intensities
are in g CO2-eq/kWh and are returned in kg CO2-eq/kWh (divided by 1000). ``direct``
counts combustion only; ``lifecycle`` (``LCA`` / ``Life cycle``) adds upstream emissions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from eqglb.io._common import (
    DataFormatError,
    PathLike,
    Places,
    Table,
    check_regular,
    parse_numbers,
    parse_times,
    read_table,
    require_columns,
    text_column,
)
from eqglb.scenario import ScenarioError

__all__ = ["load_electricitymaps"]

TIME_COL = "Datetime (UTC)"
ZONE_COL = "Zone Id"
_CI_RE = re.compile(r"^carbon intensity\s+(?P<unit>\S+)\s*\((?P<kind>[^)]*)\)$", re.IGNORECASE)
_KINDS = {"direct": ("direct",), "lifecycle": ("lca", "life cycle", "lifecycle")}


def _ci_column(table: Table, kind: str) -> str:
    """Find the carbon-intensity column of ``kind`` and check its unit label."""
    for c in table.frame.columns:
        m = _CI_RE.match(c)
        if m is None or m.group("kind").strip().lower() not in _KINDS[kind]:
            continue
        unit = m.group("unit").replace("₂", "2").lower()
        if unit not in ("gco2eq/kwh", "gco2e/kwh"):
            raise DataFormatError(
                table.path,
                f"unit mismatch: column {c!r} is in {m.group('unit')!r}, expected gCO₂eq/kWh",
                "give the intensity in gCO₂eq/kWh as Electricity Maps exports it",
                line=table.header_line,
                column=c,
            )
        return c
    label = "(direct)" if kind == "direct" else "(LCA) or (Life cycle)"
    raise DataFormatError(
        table.path,
        f"no 'Carbon Intensity gCO₂eq/kWh {label}' column (columns found: "
        f"{list(table.frame.columns)})",
        "give an Electricity Maps hourly export (or choose the other kind)",
        line=table.header_line,
    )


def load_electricitymaps(
    paths: PathLike | Sequence[PathLike],
    *,
    kind: str = "direct",
    zones: Iterable[str] | None = None,
    allow_estimated: bool = True,
) -> pd.DataFrame:
    """Hourly grid carbon intensity per zone from Electricity Maps CSV exports.

    Parameters
    ----------
    paths : path-like or sequence of path-like
        One or more exports (often one file per zone and year); rows of one zone are
        concatenated in file order.
    kind : {"direct", "lifecycle"}
        Direct (operational) or life-cycle (LCA) intensity.
    zones : iterable of str or None
        ``Zone Id`` values to keep (e.g. ``["DE", "US-TEX-ERCO"]``), in output order;
        default all, in order of first appearance.
    allow_estimated : bool
        Whether rows flagged ``Data Estimated = true`` are accepted; if not, the first
        one raises.

    Returns
    -------
    pandas.DataFrame
        (time, zone) carbon intensity [kg CO2-eq/kWh], indexed by the UTC start of the
        hour; columns are zone ids.

    Raises
    ------
    DataFormatError
        Missing columns, a unit label other than gCO₂eq/kWh, an unparsable time stamp or
        number, a missing value, a duplicated or missing hour within a zone, an
        estimated row when not allowed, or a requested zone that is absent.
    """
    if kind not in _KINDS:
        raise ScenarioError(f"kind={kind!r}; use 'direct' or 'lifecycle'")
    if isinstance(paths, (str, bytes)) or not isinstance(paths, Sequence):
        paths = [paths]  # type: ignore[list-item]
    wanted = None if zones is None else [str(z) for z in zones]
    parts: dict[str, list[tuple[pd.Series, Places]]] = {}
    for path in paths:
        table = read_table(path, what="Electricity Maps export")
        require_columns(table, [TIME_COL, ZONE_COL], what="Electricity Maps export")
        ci_col = _ci_column(table, kind)
        zone_vals = text_column(table, ZONE_COL)
        est_col = {c.lower(): c for c in table.frame.columns}.get("data estimated")
        est_all = None if est_col is None else text_column(table, est_col)
        for z in pd.unique(zone_vals):
            if wanted is not None and z not in wanted:
                continue
            rows = np.flatnonzero(zone_vals == z)
            if not allow_estimated and est_all is not None:
                flagged = np.flatnonzero(np.char.lower(est_all[rows].astype(str)) == "true")
                if flagged.size:
                    raise DataFormatError(
                        table.path,
                        f"zone {z!r} has an estimated value",
                        "pass allow_estimated=True or use measured data only",
                        line=table.line_of(int(rows[flagged[0]])),
                        column=est_col,
                    )
            times = parse_times(table, TIME_COL, ("%Y-%m-%d %H:%M:%S", "ISO8601"), rows=rows)
            vals = parse_numbers(table, ci_col, rows=rows) / 1000.0
            neg = np.flatnonzero(vals < 0)
            if neg.size:
                raise DataFormatError(
                    table.path,
                    f"negative carbon intensity for zone {z!r}",
                    "give intensities >= 0",
                    line=table.line_of(int(rows[neg[0]])),
                    column=ci_col,
                )
            parts.setdefault(str(z), []).append(
                (pd.Series(vals, index=times), Places.of(table, rows))
            )
    if wanted is not None:
        absent = [z for z in wanted if z not in parts]
        if absent:
            raise DataFormatError(
                ", ".join(str(p) for p in paths),
                f"zone(s) {absent} not found",
                "check the 'Zone Id' values (e.g. 'DE', 'US-CAL-CISO')",
            )
    out: dict[str, pd.Series] = {}
    for z in wanted if wanted is not None else list(parts):
        series = pd.concat([s for s, _ in parts[z]])
        places = Places.concat([pl for _, pl in parts[z]])
        check_regular(
            places, pd.DatetimeIndex(series.index), step="1h", column=TIME_COL, label=f"zone {z!r}"
        )
        out[z] = series
    df = pd.DataFrame(out)
    df.index.name = "time"
    df.columns.name = "zone"
    df.attrs.update(unit="kg CO2-eq/kWh", kind=kind, source="Electricity Maps")
    return df
