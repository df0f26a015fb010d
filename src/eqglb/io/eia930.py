"""Reader of EIA-930 hourly net generation by energy source (bulk "BALANCE" CSV files).

The U.S. Energy Information Administration publishes Form EIA-930 data as six-month
files ``EIA930_BALANCE_<year>_<Jan_Jun|Jul_Dec>.csv`` with one row per balancing
authority and hour. Columns used here:

- ``Balancing Authority`` (e.g. ``ERCO``, ``PJM``);
- ``UTC Time at End of Hour`` (e.g. ``09/22/2022 1:00:00 AM``);
- ``Net Generation (MW) from <source>`` for ``Coal``, ``Natural Gas``, ``Nuclear``,
  ``All Petroleum Products``, ``Hydropower and Pumped Storage``, ``Solar``, ``Wind``,
  ``Other Fuel Sources`` and ``Unknown Fuel Sources``; each also with an
  `` (Adjusted)`` suffix in newer files. Files from July 2024 on split sources further
  (``Hydropower Excluding Pumped Storage``, ``Pumped Storage``, ``Solar with/without
  Integrated Battery Storage``, ``Geothermal``, ``Battery Storage``, ...).

Numbers may carry thousands separators (``"1,234"``); empty cells are common.

Conventions (stated, each a parameter where it matters):

- Time: the file stamps the *end* of each hour; eqglb slots are labelled by their start,
  so ``time = UTC Time at End of Hour - 1 h``.
- Source -> fuel of the factor table (:func:`eqglb.physics.fuel_factors`): coal -> coal,
  natural gas -> natural_gas, nuclear -> nuclear, all petroleum products -> oil,
  hydropower (with or without pumped storage) -> hydro, solar (any) -> solar, wind (any)
  -> wind, other, unknown and geothermal -> other. Storage-only columns (pumped storage,
  battery, other/unknown energy storage) are left out of the mix: storage moves energy
  in time rather than generating it. Negative values (e.g. net pumping inside
  ``Hydropower and Pumped Storage``) are clipped to 0 by default.
- An empty fuel cell counts as 0 MW (the authority reported nothing for that source); a
  row whose fuel cells are all empty is a missing hour.
- ``adjusted=None`` uses the `` (Adjusted)`` columns when the file has them, else the
  reported ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

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
from eqglb.physics import fuel_factors, grid_intensity
from eqglb.scenario import ScenarioError

__all__ = ["SOURCE_TO_FUEL", "GridSignals", "load_eia930", "read_eia930_generation"]

BA_COL = "Balancing Authority"
TIME_COL = "UTC Time at End of Hour"
_PREFIX = "Net Generation (MW) from "
_UNIT_RE = re.compile(r"^net generation \(([^)]*)\) from ", re.IGNORECASE)
_TIME_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M", "ISO8601")

#: EIA-930 energy source (text after ``Net Generation (MW) from ``) -> fuel of the factor
#: table; ``None`` leaves the column out of the mix (storage).
SOURCE_TO_FUEL: dict[str, str | None] = {
    "coal": "coal",
    "natural gas": "natural_gas",
    "nuclear": "nuclear",
    "all petroleum products": "oil",
    "hydropower and pumped storage": "hydro",
    "hydropower excluding pumped storage": "hydro",
    "solar": "solar",
    "solar without integrated battery storage": "solar",
    "solar with integrated battery storage": "solar",
    "solar witho integrated battery storage": "solar",  # as spelled in some EIA files
    "wind": "wind",
    "wind without integrated battery storage": "wind",
    "wind with integrated battery storage": "wind",
    "geothermal": "other",
    "other fuel sources": "other",
    "unknown fuel sources": "other",
    "pumped storage": None,
    "battery storage": None,
    "other energy storage": None,
    "unknown energy storage": None,
}


class GridSignals(NamedTuple):
    """Hourly grid signals per balancing authority.

    Attributes
    ----------
    carbon_intensity : pandas.DataFrame
        (time, balancing authority) generation-weighted carbon intensity [kg CO2/kWh].
    ewif : pandas.DataFrame
        (time, balancing authority) energy-water intensity factor [L/kWh].
    """

    carbon_intensity: pd.DataFrame
    ewif: pd.DataFrame


def _source_columns(
    table: Table, adjusted: bool | None, source_to_fuel: dict[str, str | None]
) -> dict[str, str | None]:
    """Map file column -> fuel (None = storage) for the chosen (adjusted or reported) set."""
    cols = list(table.frame.columns)
    for c in cols:
        m = _UNIT_RE.match(c)
        if m is not None and m.group(1).strip().upper() != "MW":
            raise DataFormatError(
                table.path,
                f"unit mismatch: column {c!r} is in {m.group(1)!r}, expected 'MW'",
                "convert it to MW and name it 'Net Generation (MW) from <source>'",
                line=table.header_line,
                column=c,
            )
    adj_cols = [
        c
        for c in cols
        if c.lower().startswith(_PREFIX.lower()) and c.lower().endswith("(adjusted)")
    ]
    use_adj = bool(adj_cols) if adjusted is None else adjusted
    out: dict[str, str | None] = {}
    for c in cols:
        low = c.lower()
        if not low.startswith(_PREFIX.lower()):
            continue
        is_adj = low.endswith("(adjusted)")
        if is_adj != use_adj:
            continue
        src = low[len(_PREFIX) :]
        if is_adj:
            src = src[: -len("(adjusted)")]
        src = " ".join(src.split())
        if src not in source_to_fuel:
            raise DataFormatError(
                table.path,
                f"unknown energy source column {c!r}",
                "map it with the source_map argument (source text -> fuel, or None to leave "
                "it out)",
                line=table.header_line,
                column=c,
            )
        out[c] = source_to_fuel[src]
    if not out:
        kind = "'(Adjusted)' " if use_adj else ""
        raise DataFormatError(
            table.path,
            f"no {kind}'Net Generation (MW) from <source>' columns",
            "give an EIA-930 BALANCE file with generation by energy source"
            + (" or pass adjusted=False" if use_adj else ""),
            line=table.header_line,
        )
    return out


def read_eia930_generation(
    paths: PathLike | Sequence[PathLike],
    *,
    balancing_authorities: Iterable[str] | None = None,
    adjusted: bool | None = None,
    source_map: dict[str, str | None] | None = None,
) -> dict[str, pd.DataFrame]:
    """Hourly net generation by fuel for each balancing authority.

    Parameters
    ----------
    paths : path-like or sequence of path-like
        One or more EIA-930 BALANCE CSV files (e.g. two halves of a year); rows of one
        authority are concatenated in file order.
    balancing_authorities : iterable of str or None
        Codes to keep (e.g. ``["ERCO", "PJM"]``); ``None`` keeps all.
    adjusted : bool or None
        Use the `` (Adjusted)`` columns (True), the reported ones (False), or the
        adjusted ones when present (None).
    source_map : dict or None
        Extra or replacement entries for :data:`SOURCE_TO_FUEL` (lower-case source text
        -> fuel name, or ``None`` to leave the source out).

    Returns
    -------
    dict of str -> pandas.DataFrame
        For each authority, generation by fuel [MWh per hour = MW], indexed by the UTC
        start of the hour (``time``), columns fuels (``coal``, ``natural_gas``, ...).
        ``attrs["lines"]`` (a :class:`~eqglb.io._common.Places`) holds each row's file
        and 1-based line number.

    Raises
    ------
    DataFormatError
        Missing columns, an unparsable time stamp or number, a row without any fuel
        value, a duplicated or missing hour (per authority), or a requested authority
        absent from the files.
    """
    if isinstance(paths, (str, bytes)) or not isinstance(paths, Sequence):
        paths = [paths]  # type: ignore[list-item]
    source_to_fuel = {
        **SOURCE_TO_FUEL,
        **{" ".join(k.lower().split()): v for k, v in (source_map or {}).items()},
    }
    wanted = None if balancing_authorities is None else [str(b) for b in balancing_authorities]
    pieces: dict[str, list[tuple[pd.DataFrame, Places]]] = {}
    for path in paths:
        table = read_table(path, what="EIA-930 BALANCE file")
        require_columns(table, [BA_COL, TIME_COL], what="EIA-930 BALANCE file")
        colmap = _source_columns(table, adjusted, source_to_fuel)
        ba_values = text_column(table, BA_COL)
        keep = np.ones(len(ba_values), dtype=bool) if wanted is None else np.isin(ba_values, wanted)
        rows_all = np.flatnonzero(keep)
        if rows_all.size == 0:
            continue
        # parse each column once for the whole file, then split by authority
        times_all = parse_times(table, TIME_COL, _TIME_FORMATS, rows=rows_all) - pd.Timedelta(
            hours=1
        )
        fuels_all: dict[str, np.ndarray] = {}
        seen_all = np.zeros(rows_all.size, dtype=bool)
        for col, fuel in colmap.items():
            v = parse_numbers(table, col, rows=rows_all, thousands=True, allow_missing=True)
            seen_all |= ~np.isnan(v)
            if fuel is not None:
                fuels_all[fuel] = fuels_all.get(fuel, np.zeros(rows_all.size)) + np.nan_to_num(v)
        if not seen_all.all():
            k = int(np.flatnonzero(~seen_all)[0])
            raise DataFormatError(
                table.path,
                f"hour has no generation value for balancing authority {ba_values[rows_all[k]]!r}",
                "fill the generation columns for that hour or drop the authority",
                line=table.line_of(int(rows_all[k])),
            )
        codes, names = pd.factorize(pd.Series(ba_values[rows_all]), sort=False)
        for i, ba in enumerate(names):
            pos = np.flatnonzero(codes == i)
            df = pd.DataFrame(
                {f: v[pos] for f, v in fuels_all.items()},
                index=pd.DatetimeIndex(times_all[pos], name="time"),
            )
            pieces.setdefault(str(ba), []).append((df, Places.of(table, rows_all[pos])))
    if wanted is not None:
        absent = [b for b in wanted if b not in pieces]
        if absent:
            raise DataFormatError(
                ", ".join(str(p) for p in paths),
                f"balancing authority {absent} not found",
                "check the codes in the 'Balancing Authority' column (e.g. 'ERCO', 'PJM')",
            )
    out: dict[str, pd.DataFrame] = {}
    for ba, parts in pieces.items():
        df = pd.concat([p[0] for p in parts]).fillna(0.0)
        # check the hourly sequence across all files with the file and line of each row
        lines = Places.concat([p[1] for p in parts])
        check_regular(
            lines, df.index, step="1h", column=TIME_COL, label=f"balancing authority {ba!r}"
        )
        df.attrs["lines"] = lines
        df.attrs["balancing_authority"] = ba
        out[ba] = df
    return out


def load_eia930(
    paths: PathLike | Sequence[PathLike],
    *,
    balancing_authorities: Iterable[str] | None = None,
    adjusted: bool | None = None,
    factors: pd.DataFrame | None = None,
    hydro_water_l_per_kwh: float | None = None,
    negative: str = "clip",
    source_map: dict[str, str | None] | None = None,
) -> GridSignals:
    """Hourly carbon intensity and EWIF per balancing authority from EIA-930 files.

    Parameters
    ----------
    paths : path-like or sequence of path-like
        EIA-930 BALANCE CSV file(s).
    balancing_authorities : iterable of str or None
        Authorities to keep (default all); the output columns follow this order.
    adjusted : bool or None
        See :func:`read_eia930_generation`.
    factors : pandas.DataFrame or None
        Per-fuel factors (:func:`eqglb.physics.fuel_factors`; default the eGLB values).
    hydro_water_l_per_kwh : float or None
        Water factor of hydro [L/kWh]; ``None`` keeps the table's 0 (eGLB convention).
    negative : {"clip", "raise"}
        Rule for negative generation (see :func:`eqglb.physics.grid_intensity`).
    source_map : dict or None
        See :func:`read_eia930_generation`.

    Returns
    -------
    GridSignals
        ``carbon_intensity`` [kg CO2/kWh] and ``ewif`` [L/kWh], each (time,
        balancing authority), indexed by the UTC start of the hour. Authorities that do
        not cover the same hours give NaN outside their own range.

    Raises
    ------
    DataFormatError
        File defects (see :func:`read_eia930_generation`), negative generation with
        ``negative="raise"``, or an hour whose total generation is 0 (named by line).
    """
    gen = read_eia930_generation(
        paths, balancing_authorities=balancing_authorities, adjusted=adjusted, source_map=source_map
    )
    fac = fuel_factors() if factors is None else factors
    ci: dict[str, pd.Series] = {}
    ew: dict[str, pd.Series] = {}
    order = list(gen) if balancing_authorities is None else [str(b) for b in balancing_authorities]
    for ba in order:
        g = gen[ba]
        lines = g.attrs["lines"]
        if negative == "raise" and (g.to_numpy() < 0).any():
            r, k = np.argwhere(g.to_numpy() < 0)[0]
            raise DataFormatError(
                lines[r][0],
                f"negative generation ({g.iloc[r, k]:g} MW) of fuel {g.columns[k]!r} for {ba!r}",
                "use negative='clip' or fix the value",
                line=lines[r][1],
            )
        try:
            res = grid_intensity(
                g,
                fac,
                hydro_water_l_per_kwh=hydro_water_l_per_kwh,
                negative=negative,
                on_zero="nan",
            )
        except ScenarioError as exc:
            raise ScenarioError(f"EIA-930 balancing authority {ba!r}: {exc}") from exc
        nan = res["carbon_intensity"].isna().to_numpy()
        if nan.any():
            r = int(np.flatnonzero(nan)[0])
            raise DataFormatError(
                lines[r][0],
                f"total generation of {ba!r} is 0 MW (after "
                "clipping negative values), so the hour has no intensity",
                "fill the generation of that hour or drop the authority",
                line=lines[r][1],
            )
        ci[ba] = res["carbon_intensity"]
        ew[ba] = res["ewif"]
    ci_df = pd.DataFrame(ci)
    ew_df = pd.DataFrame(ew)
    for df, unit in ((ci_df, "kg CO2/kWh"), (ew_df, "L/kWh")):
        df.index.name = "time"
        df.columns.name = "balancing_authority"
        df.attrs["unit"] = unit
        df.attrs["source"] = "EIA-930 net generation by energy source"
    return GridSignals(ci_df, ew_df)
