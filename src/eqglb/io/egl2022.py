"""Reader of the eGLB study's public hourly signals (``data/egl-2022``) and its setup.

The folder (released with "Towards Environmentally Equitable AI via Geographical Load
Balancing", Li, Yang, Wierman, Ren; arXiv 2307.05494, e-Energy 2024; MIT licence) holds

- ``AI_workload.csv``: ``Time (UTC)``, ``Power (Watt)``: GPU power of a BLOOM-176B
  inference deployment [W], hourly;
- ``price/<Site>_Price.csv``: ``Time (UTC)``, ``Price (USD/MWh)`` [USD/MWh];
- ``carbon/<Site>_carbon.csv``: ``Time (UTC)``, ``Carbon (kg/kWh)`` [kg CO2/kWh];
- ``water/<Site>_water.csv``: ``Time (UTC)``, `` WUE (L/kWh)`` (leading space in the real
  files) [L/kWh], on-site plus off-site water per kWh.

Sites in the study's order: Texas, Virginia, Georgia, Nevada, Germany, Belgium,
Netherlands, Denmark, Japan, Singapore (file names spell Belgium ``Belguim``). Time stamps
look like ``2022-09-22 00`` (UTC, start of the hour); all files start at the same hour and
the common horizon is their first 457 rows.

How the study's setup maps onto eqglb units (:func:`load_egl2022`):

- one AI model ``"BLOOM-176B"`` with quality loss 0;
- one *request* is 1 MWh of IT load: ``energy_per_request = 1000`` [kWh/request],
  ``capacity_per_request = 1`` [units/request]; each data centre has capacity 1 MW, i.e.
  ``capacity = 1`` [units/slot] (one 1-hour slot);
- demand of every gateway in hour t: ``Power_t / 2708`` [MW of IT load = requests/slot],
  the same series at all 10 gateways; gateway j is co-located with data centre j
  (``home``);
- ``price = USD/MWh / 1000`` [USD/kWh]; ``carbon_intensity`` as in the files [kg/kWh];
- the water files give on-site + off-site water per kWh in one number, so it goes into
  ``wue`` [L/kWh] and ``ewif`` is 0; with ``pue = 1`` (the study has no PUE factor) the
  water cost ``(wue + pue * ewif) * energy`` equals the study's ``water * load``;
- full connectivity, or the study's partial-connectivity mask (:data:`PARTIAL_MASK`).

Then energy cost [USD] = the study's sum of price [USD/MWh] x load [MWh], carbon [kg] =
1000 x the study's tonnes, water [L] = 1000 x the study's m3.
"""

from __future__ import annotations

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
)
from eqglb.scenario import Scenario, ScenarioError

__all__ = [
    "HORIZON",
    "MODEL",
    "PARTIAL_MASK",
    "PEAK_POWER_W",
    "SITES",
    "egl2022_files",
    "load_egl2022",
    "read_egl2022_signals",
]

#: Sites in the study's order (data centre i and gateway i share the site).
SITES: tuple[str, ...] = (
    "Texas",
    "Virginia",
    "Georgia",
    "Nevada",
    "Germany",
    "Belgium",
    "Netherlands",
    "Denmark",
    "Japan",
    "Singapore",
)
#: Spelling of site names in the file names.
_FILE_SITE = {"Belgium": "Belguim"}
#: Number of hourly rows common to all files (2022-09-22 00:00 .. 2022-10-11 00:00 UTC).
HORIZON = 457
#: Peak of the workload trace [W]; demand = Power / PEAK_POWER_W [MW].
PEAK_POWER_W = 2708.0
#: The AI model of the study.
MODEL = "BLOOM-176B"

#: Partial connectivity of the study: rows = data centre, columns = gateway (site order).
PARTIAL_MASK = np.array(
    [
        [1, 1, 1, 1, 0, 0, 0, 0, 0, 0],  # TX
        [1, 1, 1, 1, 1, 1, 1, 1, 0, 0],  # VA
        [1, 1, 1, 1, 1, 1, 1, 1, 0, 0],  # GA
        [1, 1, 1, 1, 0, 0, 0, 0, 1, 1],  # NV
        [0, 1, 1, 0, 1, 1, 1, 1, 0, 0],  # DE
        [0, 1, 1, 0, 1, 1, 1, 1, 0, 0],  # BE
        [0, 1, 1, 0, 1, 1, 1, 1, 0, 0],  # NL
        [0, 1, 1, 0, 1, 1, 1, 1, 0, 0],  # DK
        [0, 0, 0, 1, 0, 0, 0, 0, 1, 1],  # JP
        [0, 0, 0, 1, 0, 0, 0, 0, 1, 1],  # SG
    ],
    dtype=bool,
)
PARTIAL_MASK.setflags(write=False)

_TIME_COL = "Time (UTC)"
_TIME_FMT = "%Y-%m-%d %H"
#: signal -> (sub-folder, file-name suffix, value column with unit)
_SIGNALS = {
    "price": ("price", "_Price.csv", "Price (USD/MWh)"),
    "carbon": ("carbon", "_carbon.csv", "Carbon (kg/kWh)"),
    "water": ("water", "_water.csv", "WUE (L/kWh)"),
}
_WORKLOAD = ("AI_workload.csv", "Power (Watt)")


def egl2022_files(path: PathLike) -> dict[str, dict[str, Path]]:
    """Paths of every file of the folder.

    Returns
    -------
    dict
        ``{"workload": {"all": path}, "price": {site: path}, "carbon": {...},
        "water": {...}}`` with sites spelled as in :data:`SITES` (``Belgium``).
    """
    root = Path(path)
    out: dict[str, dict[str, Path]] = {"workload": {"all": root / _WORKLOAD[0]}}
    for sig, (sub, suffix, _) in _SIGNALS.items():
        out[sig] = {s: root / sub / f"{_FILE_SITE.get(s, s)}{suffix}" for s in SITES}
    return out


def _read_series(path: Path, value_col: str, what: str) -> tuple[pd.Series, Table]:
    """Read one two-column file into a float Series indexed by UTC hour."""
    table = read_table(path, what=what)
    require_columns(table, [_TIME_COL, value_col], what=what)
    extra = [
        c for c in table.frame.columns if c.lower() not in (_TIME_COL.lower(), value_col.lower())
    ]
    if extra:
        raise DataFormatError(
            path,
            f"unexpected column(s) {extra}",
            f"give exactly the columns {_TIME_COL!r}, {value_col!r}",
            line=table.header_line,
        )
    if len(table.frame) == 0:
        raise DataFormatError(
            path, "no data rows", "give hourly rows after the header", line=table.header_line
        )
    times = parse_times(table, _TIME_COL, _TIME_FMT)
    check_regular(table, times, step="1h", column=_TIME_COL)
    values = parse_numbers(table, value_col)
    return pd.Series(values, index=times, name=value_col), table


def read_egl2022_signals(
    path: PathLike, *, horizon: int | None = HORIZON
) -> dict[str, pd.DataFrame]:
    """Read and check every file of the egl-2022 folder, in the files' own units.

    Parameters
    ----------
    path : path-like
        The ``egl-2022`` folder.
    horizon : int or None
        Number of hourly rows kept from the common start (default 457, the study's
        horizon). ``None`` keeps the rows all files have (the shortest file's length).

    Returns
    -------
    dict of pandas.DataFrame
        Indexed by the UTC start of each hour (``time``):

        - ``"workload"``: column ``power_w`` [W];
        - ``"price"``: one column per site [USD/MWh];
        - ``"carbon"``: one column per site [kg CO2/kWh];
        - ``"water"``: one column per site, on-site + off-site [L/kWh].

        Sites are spelled as in :data:`SITES`. Each frame's ``attrs`` hold ``unit`` and
        ``files``.

    Raises
    ------
    DataFormatError
        A missing file, a bad header (wrong name or unit; the leading space of
        ``' WUE (L/kWh)'`` is accepted), an unparsable time stamp or number, a duplicated
        or missing hour, files that do not start at the same hour, or fewer rows than
        ``horizon``; the message names the file, line and fix.
    """
    files = egl2022_files(path)
    root = Path(path)
    if not root.is_dir():
        raise DataFormatError(
            root,
            "egl-2022 folder not found",
            "give the folder holding AI_workload.csv, price/, carbon/, water/",
        )
    series: dict[str, dict[str, pd.Series]] = {}
    tables: list[tuple[Path, pd.Series]] = []
    s, table = _read_series(files["workload"]["all"], _WORKLOAD[1], "egl-2022 workload file")
    if (s.to_numpy() < 0).any():
        r = int(np.flatnonzero(s.to_numpy() < 0)[0])
        raise DataFormatError(
            table.path,
            f"power is negative ({s.iloc[r]:g} W)",
            "give power >= 0 [W]",
            line=table.line_of(r),
            column=_WORKLOAD[1],
        )
    series["workload"] = {"power_w": s}
    tables.append((files["workload"]["all"], s))
    for sig, (_, _, col) in _SIGNALS.items():
        series[sig] = {}
        for site, f in files[sig].items():
            s, _ = _read_series(f, col, f"egl-2022 {sig} file")
            series[sig][site] = s
            tables.append((f, s))
    start = tables[0][1].index[0]
    for f, s in tables:
        if s.index[0] != start:
            raise DataFormatError(
                f,
                f"first hour is {s.index[0]:%Y-%m-%d %H:%M} UTC but {tables[0][0].name} "
                f"starts at {start:%Y-%m-%d %H:%M} UTC",
                "align all files at the same first hour",
                line=2,
            )
    shortest = min(len(s) for _, s in tables)
    n = shortest if horizon is None else int(horizon)
    if n < 1:
        raise ScenarioError(f"horizon is {horizon!r}; give a positive number of hours")
    for f, s in tables:
        if len(s) < n:
            raise DataFormatError(
                f,
                f"only {len(s)} hourly rows, fewer than horizon={n}",
                f"lower horizon to at most {shortest} or complete the file",
            )
    units = {"workload": "W", "price": "USD/MWh", "carbon": "kg CO2/kWh", "water": "L/kWh"}
    out: dict[str, pd.DataFrame] = {}
    for sig, cols in series.items():
        df = pd.DataFrame(
            {k: v.iloc[:n].to_numpy() for k, v in cols.items()},
            index=next(iter(cols.values())).index[:n],
        )
        df.index.name = "time"
        df.attrs["unit"] = units[sig]
        df.attrs["files"] = {k: str(v) for k, v in files[sig].items()}
        out[sig] = df
    return out


def load_egl2022(
    path: PathLike,
    connectivity: str = "full",
    horizon: int = HORIZON,
    *,
    peak_power_w: float | None = PEAK_POWER_W,
    capacity_mw: float = 1.0,
    name: str | None = None,
    validate_feasibility: bool = True,
) -> Scenario:
    """The eGLB study's scenario on its public data (10 data centres, 10 gateways).

    Parameters
    ----------
    path : path-like
        The ``egl-2022`` folder.
    connectivity : {"full", "partial"}
        ``"full"``: any gateway to any data centre; ``"partial"``: the study's mask
        :data:`PARTIAL_MASK` (rows = data centre, columns = gateway).
    horizon : int
        Number of hours from 2022-09-22 00:00 UTC (default 457, the study's horizon).
    peak_power_w : float or None
        Divisor of the workload trace [W] (default 2708, the trace peak used by the
        study); ``None`` uses the maximum of the trace over the horizon.
    capacity_mw : float
        IT capacity of every data centre [MW] = [requests/slot] (default 1).
    name : str or None
        Scenario name (default ``"egl-2022-full"`` / ``"egl-2022-partial"``).
    validate_feasibility : bool
        Passed to :class:`~eqglb.scenario.Scenario`.

    Returns
    -------
    Scenario
        ``datacenters`` and ``regions`` both :data:`SITES`; one model ``"BLOOM-176B"``;
        ``demand`` (time, region) [requests/slot = MWh of IT load per hour]; ``price``
        [USD/kWh]; ``carbon_intensity`` [kg CO2/kWh]; ``wue`` = the files' combined
        on-site + off-site water [L/kWh]; ``ewif`` = 0; ``pue`` = 1;
        ``energy_per_request`` = 1000 [kWh/request]; ``capacity_per_request`` = 1;
        ``capacity`` = ``capacity_mw`` [units/slot]; ``home`` = co-located site.

    Raises
    ------
    DataFormatError
        Any file problem (see :func:`read_egl2022_signals`).
    ScenarioError
        A bad argument.
    """
    if connectivity not in ("full", "partial"):
        raise ScenarioError(f"connectivity is {connectivity!r}; use 'full' or 'partial'")
    if not np.isfinite(capacity_mw) or capacity_mw <= 0:
        raise ScenarioError(f"capacity_mw is {capacity_mw!r}; give a capacity > 0 [MW]")
    sig = read_egl2022_signals(path, horizon=horizon)
    power = sig["workload"]["power_w"].to_numpy()
    peak = float(power.max()) if peak_power_w is None else float(peak_power_w)
    if not np.isfinite(peak) or peak <= 0:
        raise ScenarioError(f"peak_power_w is {peak_power_w!r}; give a positive power [W]")
    n_sites = len(SITES)
    demand = np.repeat((power / peak)[:, None], n_sites, axis=1)
    cols = list(SITES)
    price = sig["price"][cols].to_numpy() / 1000.0
    carbon = sig["carbon"][cols].to_numpy()
    water = sig["water"][cols].to_numpy()
    files = egl2022_files(path)
    return Scenario(
        datacenters=SITES,
        regions=SITES,
        models=(MODEL,),
        time=sig["workload"].index,
        demand=demand,
        price=price,
        carbon_intensity=carbon,
        wue=water,
        ewif=np.zeros_like(water),
        pue=np.ones(n_sites),
        energy_per_request=np.full((n_sites, 1), 1000.0),
        capacity_per_request=np.array([1.0]),
        capacity=np.full(n_sites, float(capacity_mw)),
        quality_loss=np.array([0.0]),
        allowed=PARTIAL_MASK.copy() if connectivity == "partial" else None,
        home=SITES,
        name=name or f"egl-2022-{connectivity}",
        description=(
            "eGLB study data (Li, Yang, Wierman, Ren; arXiv 2307.05494; MIT licence): 10 data "
            "centres and 10 co-located gateways, hourly from 2022-09-22 00:00 UTC. One request = "
            "1 MWh of IT load; demand = Power/2708 per gateway; capacity 1 MW; no PUE; the water "
            "files (on-site + off-site, L/kWh) are stored in wue with ewif = 0."
        ),
        attrs={
            "source": "egl-2022 (arXiv 2307.05494)",
            "path": str(Path(path)),
            "connectivity": connectivity,
            "horizon": int(len(demand)),
            "peak_power_w": peak,
            "request": "1 MWh of IT load",
            "water_convention": "wue = on-site + off-site water [L/kWh], ewif = 0",
            "files": {k: {s: str(p) for s, p in v.items()} for k, v in files.items()},
        },
        validate_feasibility=validate_feasibility,
    )
