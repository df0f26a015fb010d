"""Reader of the hourly public-health cost of electricity of four US grids in 2023.

The ``health-2023`` folder holds the data files of the public repository
Ren-Research/Health-Impact-Predictor (MIT licence), from "Predicting Public Health Impacts
of Electricity Usage" (Liu, Wu, Li, Ren; NeurIPS 2025 workshop ResponsibleFM): one file
``<GRID>_dataset.csv`` per EIA balancing authority, :data:`GRIDS` = CISO (California ISO),
ERCO (ERCOT, Texas), PJM (PJM Interconnection), TVA (Tennessee Valley Authority), each
with 8,760 hourly rows of 2023. Columns (their order differs between files):

- ``period``: the hour, e.g. ``2023-01-01T00`` (EIA's hour-ending label, UTC);
- ``Coal_percentage``, ``Natural_Gas_percentage``, ``Oil_percentage``,
  ``Nuclear_percentage``, ``Renewable_percentage``: share of the grid's generation by
  fuel, written with a ``%`` sign (e.g. ``49.36%``). A few shares are slightly negative
  (a fuel's net generation below zero, e.g. station use or pumped storage: TVA's
  renewable share reaches -9.18 %); they are kept as published;
- ``internal_health_cost``: health cost of the air pollution from the grid's generation
  that falls inside the grid's own region; ``external_health_cost``: the part carried
  downwind to other regions.

Conventions (stated, each a parameter where it matters):

- **Unit of the costs: an assumption.** The source does not state it. The annual means
  (7.8-23.6 internal, 10.0-26.6 external) match a cost in USD per MWh of electricity
  consumed (EPA's public-health benefit per kWh of avoided generation is a few cents per
  kWh), so ``unit="USD/MWh"`` is the default; pass ``unit=`` (any label
  :func:`eqglb.units.convert` accepts for ``health_cost``: ``USD/kWh``, ``USD/MWh``,
  ``cents/kWh``, ...) to read them otherwise. Costs are returned in USD/kWh, the unit of
  the Scenario field ``health_cost`` (per kWh of *facility* energy drawn from the grid).
- **Time.** ``period`` labels the *end* of each hour (EIA); eqglb slots are labelled by
  their start, so ``time = period - 1 h`` (UTC): the rows cover 2022-12-31 23:00 to
  2023-12-31 22:00 UTC. ``period="start"`` reads the labels as slot starts instead.
- **Which cost.** ``which="total"`` (default) = internal + external: all the harm the
  consumption causes, wherever the wind carries it. Equity across data-centre regions
  is the point of the burden, but leaving out the downwind part would call a grid that
  exports its pollution clean (TVA: 7.8 internal against 26.6 external). ``"internal"``
  or ``"external"`` select one part.

:func:`grid_mapping` maps data centres to the nearest grid by great-circle distance to
the grid's service-area centroid (:data:`GRID_CENTROIDS`), and :func:`health_cost_for`
lays the grids' costs out per data centre (0 where no grid is mapped: not modelled, not
zero harm), ready for ``Scenario(health_cost=...)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from eqglb.io._common import (
    DataFormatError,
    PathLike,
    Table,
    check_regular,
    parse_numbers,
    parse_times,
    read_table,
    require_columns,
    text_column,
)
from eqglb.scenario import ScenarioError
from eqglb.units import UnitError, convert

__all__ = [
    "COST_COLUMNS",
    "FUELS",
    "FUEL_COLUMNS",
    "GRIDS",
    "GRID_CENTROIDS",
    "GRID_NAMES",
    "N_HOURS",
    "SOURCE_UNIT",
    "WHICH",
    "HealthData",
    "grid_mapping",
    "health_2023_files",
    "health_cost_for",
    "load_health_2023",
    "nearest_grid",
    "read_health_2023",
]

#: The grids of the folder (EIA balancing-authority codes), in file-name spelling.
GRIDS: tuple[str, ...] = ("CISO", "ERCO", "PJM", "TVA")
#: Full names of the grids.
GRID_NAMES: Mapping[str, str] = {
    "CISO": "California ISO",
    "ERCO": "Electric Reliability Council of Texas (ERCOT)",
    "PJM": "PJM Interconnection",
    "TVA": "Tennessee Valley Authority",
}
#: Approximate centroid of each grid's service area (latitude, longitude) [degrees]: our
#: estimate from the published service-territory maps, good to about 1 degree.
#: CISO: central California (most of the state, without LADWP, SMUD and IID);
#: ERCO: central Texas (Texas without El Paso, the panhandle and the north-east);
#: PJM: south-western Pennsylvania / northern West Virginia (Chicago to New Jersey,
#: down to Virginia); TVA: central Tennessee (Tennessee with the edges of its neighbours).
GRID_CENTROIDS: Mapping[str, tuple[float, float]] = {
    "CISO": (37.2, -119.7),
    "ERCO": (31.0, -98.5),
    "PJM": (39.7, -80.3),
    "TVA": (35.6, -86.7),
}
#: Hourly rows of each file (2023, not a leap year).
N_HOURS = 8760
#: First ``period`` label of each file (hour ending 2023-01-01 00:00 UTC).
FIRST_PERIOD = pd.Timestamp("2023-01-01 00:00", tz="UTC")
#: Unit assumed for the cost columns (the source does not state it; module docstring).
SOURCE_UNIT = "USD/MWh"
#: Cost column of each part.
COST_COLUMNS: Mapping[str, str] = {
    "internal": "internal_health_cost",
    "external": "external_health_cost",
}
#: Fuel -> share column (percent of generation, with a ``%`` sign).
FUEL_COLUMNS: Mapping[str, str] = {
    "coal": "Coal_percentage",
    "natural_gas": "Natural_Gas_percentage",
    "oil": "Oil_percentage",
    "nuclear": "Nuclear_percentage",
    "renewable": "Renewable_percentage",
}
FUELS: tuple[str, ...] = tuple(FUEL_COLUMNS)
#: Accepted values of ``which``.
WHICH: tuple[str, ...] = ("total", "internal", "external")

_TIME_COL = "period"
_TIME_FMT = "%Y-%m-%dT%H"
#: Largest distance of a row's shares' sum from 100 % [percentage points]: shares are
#: rounded to 0.01 % (five of them: at most 0.025) and the files sum to 100 +- 0.02.
_SUM_TOLERANCE = 0.5


@dataclass(frozen=True)
class HealthData:
    """Hourly health cost and fuel mix of the grids read.

    Attributes
    ----------
    internal, external : pandas.DataFrame
        (time, grid) health cost [USD/kWh of electricity consumed], indexed by the UTC
        start of each hour (``time``); see the module docstring for the two parts.
    fuel_mix : pandas.DataFrame
        (time, (grid, fuel)) share of the grid's generation by fuel [-, fraction; rows
        sum to 1 within rounding], columns a MultiIndex of grid and :data:`FUELS`.
    unit : str
        Unit the cost columns were read in (default :data:`SOURCE_UNIT`, an assumption).
    files : dict
        Grid -> file read.
    """

    internal: pd.DataFrame
    external: pd.DataFrame
    fuel_mix: pd.DataFrame
    unit: str = SOURCE_UNIT
    files: Mapping[str, Path] = field(default_factory=dict)

    @property
    def grids(self) -> tuple[str, ...]:
        """The grids read, in order."""
        return tuple(str(g) for g in self.internal.columns)

    def cost(self, which: str = "total") -> pd.DataFrame:
        """(time, grid) health cost [USD/kWh] of ``which`` in :data:`WHICH`."""
        _check_which(which)
        if which == "internal":
            out = self.internal.copy()
        elif which == "external":
            out = self.external.copy()
        else:
            out = self.internal + self.external
        out.attrs = {
            "unit": "USD/kWh",
            "which": which,
            "source_unit": self.unit,
            "unit_assumed": self.unit == SOURCE_UNIT,
            "files": {g: str(p) for g, p in self.files.items()},
        }
        return out


def _check_which(which: str) -> None:
    if which not in WHICH:
        raise ScenarioError(
            f"health-2023: which is {which!r}; use 'total' (internal + external, the "
            "default), 'internal' or 'external'"
        )


def health_2023_files(folder: PathLike, grids: Iterable[str] | None = None) -> dict[str, Path]:
    """Path of each grid's file: ``{grid: folder / f"{grid}_dataset.csv"}``.

    Raises
    ------
    ScenarioError
        A grid that is not one of :data:`GRIDS`.
    """
    chosen = list(GRIDS if grids is None else grids)
    if isinstance(grids, str):
        chosen = [grids]
    unknown = [g for g in chosen if g not in GRIDS]
    if unknown or not chosen:
        raise ScenarioError(
            f"health-2023: grid(s) {unknown or chosen} unknown; choose among {list(GRIDS)}"
        )
    root = Path(folder)
    return {g: root / f"{g}_dataset.csv" for g in dict.fromkeys(chosen)}


def _percentages(table: Table, column: str) -> np.ndarray:
    """A share column written as ``49.36%`` parsed into percent [%]."""
    cells = text_column(table, column)
    no_sign = np.flatnonzero([not c.endswith("%") for c in cells])
    if no_sign.size:
        k = int(no_sign[0])
        raise DataFormatError(
            table.path,
            f"share {cells[k]!r} has no '%' sign",
            "write the share in percent with a % sign, e.g. 12.46%, as in the published files",
            line=table.line_of(k),
            column=column,
        )
    col = next(c for c in table.frame.columns if c.lower() == column.lower())
    frame = table.frame.copy()
    frame[col] = [c[:-1] for c in cells]
    values = parse_numbers(replace(table, frame=frame), column, max_abs=None)
    bad = np.flatnonzero(np.abs(values) > 100.0)
    if bad.size:
        k = int(bad[0])
        raise DataFormatError(
            table.path,
            f"share {cells[k]!r} is outside -100 % .. 100 %",
            "give the fuel's share of generation in percent",
            line=table.line_of(k),
            column=column,
        )
    return values


def _read_one(grid: str, path: Path, period: str) -> tuple[pd.DatetimeIndex, dict, dict]:
    what = f"health-2023 file of {grid}"
    table = read_table(path, what=what)
    need = [_TIME_COL, *FUEL_COLUMNS.values(), *COST_COLUMNS.values()]
    require_columns(table, need, what=what, fix="give the columns of the published file")
    labels = parse_times(table, _TIME_COL, _TIME_FMT)
    check_regular(table, labels, step="1h", column=_TIME_COL, label=f"grid {grid!r}")
    if labels[0] != FIRST_PERIOD:
        raise DataFormatError(
            path,
            f"first period is {labels[0]:%Y-%m-%dT%H}, expected 2023-01-01T00",
            "give the whole year 2023, one row per hour from 2023-01-01T00",
            line=table.line_of(0),
            column=_TIME_COL,
        )
    if len(labels) != N_HOURS:
        last = len(labels) - 1
        raise DataFormatError(
            path,
            f"{len(labels):,} hourly rows (to {labels[-1]:%Y-%m-%dT%H}), expected {N_HOURS:,} "
            "(2023-01-01T00 .. 2023-12-31T23)",
            "give the whole year 2023, one row per hour",
            line=table.line_of(last),
            column=_TIME_COL,
        )
    shares = {f: _percentages(table, col) for f, col in FUEL_COLUMNS.items()}
    total = np.sum(list(shares.values()), axis=0)
    off = np.flatnonzero(np.abs(total - 100.0) > _SUM_TOLERANCE)
    if off.size:
        k = int(off[0])
        raise DataFormatError(
            path,
            f"fuel shares sum to {total[k]:.2f} %, not 100 %",
            "check the row's shares (coal, natural gas, oil, nuclear, renewable)",
            line=table.line_of(k),
        )
    costs = {}
    for part, col in COST_COLUMNS.items():
        v = parse_numbers(table, col)
        neg = np.flatnonzero(v < 0)
        if neg.size:
            k = int(neg[0])
            raise DataFormatError(
                path,
                f"health cost {v[k]:g} is negative",
                "give a cost >= 0 (a cost of harm cannot be negative)",
                line=table.line_of(k),
                column=col,
            )
        costs[part] = v
    time = labels - pd.Timedelta(hours=1) if period == "end" else labels
    return pd.DatetimeIndex(time, name="time").as_unit("ns"), shares, costs


def read_health_2023(
    folder: PathLike,
    grids: Iterable[str] | None = None,
    *,
    unit: str = SOURCE_UNIT,
    period: str = "end",
) -> HealthData:
    """Read and check the ``health-2023`` files: both cost parts and the fuel mix.

    Parameters
    ----------
    folder : path-like
        The ``health-2023`` folder (``<GRID>_dataset.csv`` files).
    grids : iterable of str, optional
        Grids to read (default all of :data:`GRIDS`, in that order).
    unit : str
        Unit of the files' cost columns (default ``"USD/MWh"``: an assumption, the source
        does not state it; see the module docstring). Any label of
        :func:`eqglb.units.accepted_units` ``("health_cost")``.
    period : {"end", "start"}
        What ``period`` labels: the end of the hour (EIA's convention, default; slot
        start = label - 1 h) or its start.

    Returns
    -------
    HealthData
        Costs [USD/kWh] and fuel shares [-] per grid, on the UTC start of each hour.

    Raises
    ------
    DataFormatError
        A missing file, a missing column, a bad or out-of-order or missing hour, a year
        other than 2023 or a row count other than 8,760, a share without ``%`` or that
        does not parse or lies outside -100..100 %, shares not summing to 100 %, a cost
        that is not a finite number >= 0; the message names the file, line, column and fix.
    UnitError
        An unknown ``unit`` (the message lists the accepted ones).
    ScenarioError
        An unknown grid or ``period``.
    """
    if period not in ("end", "start"):
        raise ScenarioError(
            f"health-2023: period is {period!r}; use 'end' (EIA's hour-ending labels, "
            "the default) or 'start'"
        )
    try:
        factor = float(convert("health_cost", 1.0, unit))  # [USD/kWh per file unit]
    except UnitError as exc:
        raise UnitError(
            f"health-2023: unit {unit!r} of the cost columns is not accepted ({exc}); "
            f"the source does not state its unit, {SOURCE_UNIT!r} is the assumed default"
        ) from None
    files = health_2023_files(folder, grids)
    root = Path(folder)
    if not root.is_dir():
        raise DataFormatError(
            root,
            "health-2023 folder not found",
            "give the folder holding CISO_dataset.csv, ERCO_dataset.csv, PJM_dataset.csv, "
            "TVA_dataset.csv (../shared/data/health-2023)",
        )
    internal, external, mix = {}, {}, {}
    index: pd.DatetimeIndex | None = None
    for grid, path in files.items():
        time, shares, costs = _read_one(grid, path, period)
        index = time if index is None else index
        internal[grid] = costs["internal"] * factor
        external[grid] = costs["external"] * factor
        for fuel in FUELS:
            mix[(grid, fuel)] = shares[fuel] / 100.0
    assert index is not None
    cols = pd.MultiIndex.from_tuples(list(mix), names=["grid", "fuel"])
    return HealthData(
        internal=pd.DataFrame(internal, index=index).rename_axis(columns="grid"),
        external=pd.DataFrame(external, index=index).rename_axis(columns="grid"),
        fuel_mix=pd.DataFrame(np.column_stack(list(mix.values())), index=index, columns=cols),
        unit=unit,
        files=files,
    )


def load_health_2023(
    folder: PathLike,
    grids: Iterable[str] | None = None,
    *,
    unit: str = SOURCE_UNIT,
    which: str = "total",
    period: str = "end",
) -> pd.DataFrame:
    """Hourly health cost of the grids [USD/kWh of electricity consumed], (time, grid).

    ``which``: ``"total"`` (internal + external, default: all the harm the consumption
    causes, also downwind), ``"internal"`` or ``"external"``. ``unit`` is the unit of
    the files' costs (default ``"USD/MWh"``, an assumption: the source does not state
    it). The index is the UTC start of each hour (``period="end"``: label - 1 h). The
    frame's ``attrs`` record ``unit``, ``which``, ``source_unit``, ``unit_assumed`` and
    ``files``. See :func:`read_health_2023` for the checks and the fuel mix.
    """
    _check_which(which)
    return read_health_2023(folder, grids, unit=unit, period=period).cost(which)


def nearest_grid(lat: float, lon: float, grids: Iterable[str] = GRIDS) -> tuple[str, float]:
    """The grid whose service-area centroid (:data:`GRID_CENTROIDS`) is nearest.

    Returns
    -------
    (str, float)
        The grid and its great-circle distance [km].
    """
    from eqglb.latency import great_circle_km

    names = list(grids)
    lat_c = np.array([GRID_CENTROIDS[g][0] for g in names])
    lon_c = np.array([GRID_CENTROIDS[g][1] for g in names])
    km = np.asarray(great_circle_km(float(lat), float(lon), lat_c, lon_c), dtype=float)
    k = int(np.argmin(km))
    return names[k], float(km[k])


def grid_mapping(
    sites: Iterable[tuple[str, float, float]], *, max_km: float = 1000.0
) -> dict[str, str | None]:
    """Map each site ``(name, lat, lon)`` to its nearest grid, or None beyond ``max_km``.

    Beyond ``max_km`` [km] of every grid's centroid a site has no health data (e.g. a
    site outside the US): None, whose health cost :func:`health_cost_for` sets to 0
    (not modelled, not zero harm). The nearest grid is not always the one that serves
    the site (Atlanta is served by Southern Company, Reno by NV Energy): the mapping is
    an approximation the caller can override entry by entry.
    """
    out: dict[str, str | None] = {}
    for name, lat, lon in sites:
        grid, km = nearest_grid(lat, lon)
        out[str(name)] = grid if km <= max_km else None
    return out


def health_cost_for(
    datacenters: Sequence[str],
    cost: pd.DataFrame,
    mapping: Mapping[str, str | None],
) -> pd.DataFrame:
    """Health cost per data centre (time, datacenter) [USD/kWh] from a (time, grid) frame.

    Parameters
    ----------
    datacenters : sequence of str
        The scenario's data centres.
    cost : pandas.DataFrame
        (time, grid) cost [USD/kWh], e.g. :func:`load_health_2023`.
    mapping : mapping
        Data centre -> grid (a column of ``cost``) or None; a data centre left out or
        mapped to None gets 0 (not modelled: no data, not zero harm).

    Returns
    -------
    pandas.DataFrame
        Indexed like ``cost``, one column per data centre, ready for
        ``Scenario(health_cost=...)`` (aligned by name and time stamp). ``attrs`` keep
        the mapping and the cost's ``attrs``.

    Raises
    ------
    ScenarioError
        A mapped grid that is not a column of ``cost``, or a mapped data centre that is
        not among ``datacenters``.
    """
    names = [str(d) for d in datacenters]
    stray = sorted(set(mapping) - set(names))
    if stray:
        raise ScenarioError(
            f"health_cost_for: mapping names {stray}, not among the data centres {names}; "
            "map only the scenario's data centres"
        )
    out = pd.DataFrame(0.0, index=cost.index, columns=names)
    for dc in names:
        grid = mapping.get(dc)
        if grid is None:
            continue
        if grid not in cost.columns:
            raise ScenarioError(
                f"health_cost_for: data centre {dc!r} is mapped to grid {grid!r}, which "
                f"the cost frame lacks (it has {list(cost.columns)}); read that grid or "
                "map the data centre to None"
            )
        out[dc] = cost[grid].to_numpy(float)
    out.attrs = {
        **cost.attrs,
        "mapping": {d: mapping.get(d) for d in names},
        "unmapped": "health cost not modelled (no data), not zero harm",
    }
    return out
