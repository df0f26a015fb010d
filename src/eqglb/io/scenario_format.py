"""The eqglb scenario folder format: ``scenario.toml`` plus CSV or Parquet time series.

A scenario folder holds one ``scenario.toml`` (names, constants, units, file references)
and wide tables for the time series (a ``time`` column plus one column per data centre or
region). The full specification, with a worked example, is ``docs/scenario-format.md``;
``examples/scenario_small/`` is a complete folder.

:func:`read_scenario` turns a folder into a validated :class:`eqglb.scenario.Scenario`,
converting every declared unit into the canonical unit of the model (USD/kWh, kg CO2/kWh,
L/kWh, kWh/request, requests/slot). :func:`write_scenario` writes a Scenario back in
canonical units; ``read_scenario(write_scenario(sc, d))`` gives back equal arrays.

Malformed files raise :class:`ScenarioFormatError` (a :class:`~eqglb.scenario.ScenarioError`)
naming the file, the line (1-based, the header is line 1) or Parquet row, the column and
the fix. Values that parse but are invalid (NaN, negative, infeasible demand) are judged by
the Scenario constructor; its message is re-raised prefixed with the file and line they
came from.
"""

from __future__ import annotations

import difflib
import io
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tomli_w

from eqglb.io._common import (
    MAX_MAGNITUDE,
    TIME_RANGE,
    first_out_of_range,
    read_bytes_limited,
)
from eqglb.scenario import Scenario, ScenarioError

__all__ = [
    "FORMAT_VERSION",
    "MAX_MAGNITUDE",
    "MAX_TABLE_BYTES",
    "MAX_TABLE_ROWS",
    "MAX_TOML_DEPTH",
    "SCENARIO_FILE",
    "UNITS",
    "ScenarioFormatError",
    "convert_unit",
    "read_scenario",
    "write_scenario",
]

#: Version of the folder format this module reads and writes.
FORMAT_VERSION = 1
#: Name of the TOML file of a scenario folder.
SCENARIO_FILE = "scenario.toml"
#: Default cap on the (decompressed) size of one table or of scenario.toml [bytes].
MAX_TABLE_BYTES = 256 * 2**20
#: Default cap on the rows of one table [rows] (a year of 1-minute slots is 525,600).
MAX_TABLE_ROWS = 1_000_000
#: Deepest nesting of arrays and tables accepted in scenario.toml [levels].
MAX_TOML_DEPTH = 32

_GALLON_L = 3.785411784  # US liquid gallon [L]

# label -> (multiplier, divisor) to the canonical unit (first entry); kept as a ratio so
# that e.g. 3.6 Wh reads as 3.6 / 1000 = 0.0036 kWh exactly as a user would write it
_UNIT_RATIOS: dict[str, dict[str, tuple[float, float]]] = {
    "demand": {"requests/slot": (1, 1), "requests": (1, 1)},
    "price": {"USD/kWh": (1, 1), "USD/MWh": (1, 1e3), "$/kWh": (1, 1), "$/MWh": (1, 1e3)},
    "carbon_intensity": {
        "kg/kWh": (1, 1),
        "g/kWh": (1, 1e3),
        "t/MWh": (1, 1),
        "kg/MWh": (1, 1e3),
        "lb/MWh": (0.45359237, 1e3),
    },
    "wue": {"L/kWh": (1, 1), "gal/MWh": (_GALLON_L, 1e3), "L/MWh": (1, 1e3), "m3/MWh": (1, 1)},
    "ewif": {"L/kWh": (1, 1), "gal/MWh": (_GALLON_L, 1e3), "L/MWh": (1, 1e3), "m3/MWh": (1, 1)},
    "pue": {"-": (1, 1), "1": (1, 1)},
    "capacity_shared": {"units/slot": (1, 1), "units": (1, 1)},
    "capacity_per_model": {"requests/slot": (1, 1), "requests": (1, 1)},
    "energy_per_request": {
        "kWh": (1, 1),
        "Wh": (1, 1e3),
        "MJ": (1, 3.6),
        "kJ": (1, 3.6e3),
        "J": (1, 3.6e6),
        "kWh/request": (1, 1),
        "Wh/request": (1, 1e3),
        "kJ/request": (1, 3.6e3),
        "J/request": (1, 3.6e6),
    },
    "latency": {"ms": (1, 1), "s": (1e3, 1)},
}

#: Accepted unit labels per quantity: label -> factor to the canonical unit (first entry).
#: Labels are matched ignoring case, spaces and a "CO2"/"CO2e"/"CO2eq" tag.
UNITS: dict[str, dict[str, float]] = {
    q: {lab: m / d for lab, (m, d) in table.items()} for q, table in _UNIT_RATIOS.items()
}

_REQUIRED_SERIES = ("demand", "price", "carbon_intensity", "wue", "ewif")
_OPTIONAL_SERIES = ("pue", "capacity")
_SERIES_DIM = {
    "demand": "region",
    "price": "datacenter",
    "carbon_intensity": "datacenter",
    "wue": "datacenter",
    "ewif": "datacenter",
    "pue": "datacenter",
    "capacity": "datacenter",
}
_TOP_KEYS = (
    "format_version",
    "name",
    "description",
    "capacity_mode",
    "timeseries",
    "routing",
    "latency",
    "datacenter",
    "region",
    "model",
    "attrs",
)
_ENTITY_KEYS = {
    "datacenter": ("name", "pue", "capacity", "lat", "lon"),
    "region": ("name", "home", "lat", "lon", "rtt_slo_ms", "rtt_budget_ms"),
    "model": ("name", "energy_per_request", "energy_unit", "capacity_per_request", "quality_loss"),
}
_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_WILDCARD = "*"


class ScenarioFormatError(ScenarioError):
    """A scenario file is malformed or holds an invalid value.

    The message names the file, the line (or Parquet row), the column and the fix.

    Attributes
    ----------
    file : str or None
        Path of the offending file as given by the user.
    line : int or None
        1-based line (CSV/TOML, the header is line 1) or row (Parquet) of the problem.
    column : str, int or None
        Column name (tables) or 1-based character column (TOML syntax errors).
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: str | int | None = None,
        column_number: int | None = None,
        line_word: str = "line",
    ) -> None:
        self.file, self.line, self.column = file, line, column
        loc: list[str] = []
        if file is not None:
            loc.append(str(file))
        if line is not None:
            loc.append(f"{line_word} {line}")
        if isinstance(column, str):
            loc.append(
                f"column {column_number} ({column!r})" if column_number else f"column {column!r}"
            )
        elif column is not None:
            loc.append(f"column {column}")
        super().__init__(f"{', '.join(loc)}: {message}" if loc else message)


# ---------------------------------------------------------------------------- units
def _norm_unit(label: str) -> str:
    s = re.sub(r"\s+", "", str(label)).lower()
    for tag in ("co2eq", "co2e", "co2"):
        s = s.replace(tag, "")
    return s.replace("m³", "m3")


def convert_unit(quantity: str, label: str, *, where: str = "") -> Callable[[Any], Any]:
    """Converter from values in unit ``label`` to the canonical unit of ``quantity``.

    Parameters
    ----------
    quantity : str
        A key of :data:`UNITS` (``"price"``, ``"carbon_intensity"``, ...).
    label : str
        Unit label as written by the user, e.g. ``"USD/MWh"`` or ``"g CO2/kWh"``.
    where : str
        Location prefix for the error message (file, line).

    Returns
    -------
    callable
        ``f(values) -> values * multiplier / divisor`` in the canonical unit (the first
        label of ``UNITS[quantity]``), e.g. ``convert_unit("price", "USD/MWh")(42.0)``
        is 0.042 [USD/kWh].

    Raises
    ------
    ScenarioFormatError
        If the label is unknown; the message lists the accepted labels.
    """
    table = _UNIT_RATIOS[quantity]
    if isinstance(label, str):
        want = _norm_unit(label)
        for lab, (mul, div) in table.items():
            if _norm_unit(lab) == want:
                if mul == 1 and div == 1:
                    return lambda v: v * 1.0
                if mul == 1:
                    return lambda v: v / div
                return lambda v: v * mul / div
    canon = next(iter(table))
    q = (
        quantity.removeprefix("capacity_")
        .replace("shared", "capacity")
        .replace("per_model", "capacity")
    )
    raise ScenarioFormatError(
        f"{where}unit {label!r} is not an accepted unit of {q}; use one of "
        f"{list(table)} (values are converted to {canon})"
    )


# ---------------------------------------------------------------------------- TOML helpers
class _Toml:
    """The parsed scenario.toml plus best-effort line lookups for error messages."""

    def __init__(
        self,
        text: str,
        label: str,
        *,
        allow_outside: bool = False,
        max_bytes: int = MAX_TABLE_BYTES,
        max_rows: int = MAX_TABLE_ROWS,
    ) -> None:
        self.label = label
        self.lines = text.splitlines()
        self.index: dict[str, dict[str, int]] = {}
        # how the tables it names are read (see read_scenario)
        self.allow_outside = allow_outside
        self.max_bytes = max_bytes
        self.max_rows = max_rows

    def _find(self, pattern: str, start: int = 0, stop: int | None = None) -> int | None:
        rx = re.compile(pattern)
        for n in range(start, len(self.lines) if stop is None else stop):
            if rx.match(self.lines[n]):
                return n + 1
        return None

    def _header_rx(self, dotted: Sequence[str], array: bool) -> str:
        parts = r"\s*\.\s*".join(
            rf"(?:{re.escape(p)}|\"{re.escape(p)}\"|'{re.escape(p)}')" for p in dotted
        )
        return (r"^\s*\[\[\s*" + parts + r"\s*\]\]") if array else (r"^\s*\[\s*" + parts + r"\s*\]")

    def entity_line(self, kind: str, pos: int, key: str | None = None) -> int | None:
        """Line of the ``pos``-th ``[[kind]]`` header, or of ``key`` inside it."""
        rx = re.compile(self._header_rx([kind], array=True))
        heads = [n for n, s in enumerate(self.lines) if rx.match(s)]
        if pos >= len(heads):
            return None
        head = heads[pos]
        if key is None:
            return head + 1
        nxt = next(
            (n for n in range(head + 1, len(self.lines)) if self.lines[n].lstrip().startswith("[")),
            len(self.lines),
        )
        return (
            self._find(rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\")\s*[=.]", head + 1, nxt)
            or head + 1
        )

    def named_line(self, kind: str, name: str, key: str | None = None) -> int | None:
        pos = self.index.get(kind, {}).get(name)
        return None if pos is None else self.entity_line(kind, pos, key)

    def table_line(self, *dotted: str) -> int | None:
        """Line of a ``[a.b]`` header, else of an ``a.b = ...`` or ``b = ...`` key."""
        hit = self._find(self._header_rx(dotted, array=False))
        if hit is None:
            hit = self._find(rf"^\s*{re.escape('.'.join(dotted))}\s*=")
        if hit is None:
            heads = [n for n, s in enumerate(self.lines) if s.lstrip().startswith("[")]
            start, stop = 0, (heads[0] if heads else None)
            if len(dotted) > 1:
                parent = self._find(self._header_rx(dotted[:-1], array=False))
                if parent is None:
                    return None
                start = parent
                stop = next((n for n in heads if n >= parent), None)
            hit = self._find(rf"^\s*{re.escape(dotted[-1])}\s*[=.]", start, stop)
        return hit

    def error(self, message: str, line: int | None = None) -> ScenarioFormatError:
        return ScenarioFormatError(message, file=self.label, line=line)


def _toml_number(tm: _Toml, value: Any, what: str, line: int | None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise tm.error(f"{what} is {value!r}; write a number (e.g. 1.2)", line)
    try:
        v = float(value)
    except OverflowError:  # an integer beyond float range
        v = math.inf
    if math.isfinite(v) and abs(v) > MAX_MAGNITUDE or math.isinf(v) and isinstance(value, int):
        raise tm.error(
            f"{what} is {value!r}, beyond the supported magnitude "
            f"{MAX_MAGNITUDE:g} (it would overflow the cost model); check the "
            "value and its unit",
            line,
        )
    return v


def _toml_str(tm: _Toml, value: Any, what: str, line: int | None) -> str:
    if not isinstance(value, str):
        raise tm.error(f"{what} is {value!r}; write a quoted string", line)
    return value


def _suggest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _entities(tm: _Toml, doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    raw = doc.get(kind)
    if raw is None:
        raise tm.error(f"no [[{kind}]] table; add one [[{kind}]] table with a name per {kind}")
    if isinstance(raw, dict):
        raise tm.error(
            f"[{kind}] must be an array of tables: write [[{kind}]] (double "
            f"brackets), one per {kind}",
            tm.table_line(kind),
        )
    if not isinstance(raw, list) or not raw or not all(isinstance(e, dict) for e in raw):
        raise tm.error(f"{kind} must be one or more [[{kind}]] tables", tm.table_line(kind))
    seen: dict[str, int] = {}
    for pos, ent in enumerate(raw):
        line = tm.entity_line(kind, pos)
        for key in ent:
            if key not in _ENTITY_KEYS[kind]:
                raise tm.error(
                    f"unknown key {key!r} in [[{kind}]] number {pos + 1}{_suggest(key, _ENTITY_KEYS[kind])}; "
                    f"keys of [[{kind}]] are {list(_ENTITY_KEYS[kind])}",
                    tm.entity_line(kind, pos, key),
                )
        if "name" not in ent:
            raise tm.error(f'[[{kind}]] number {pos + 1} has no name; add name = "..."', line)
        name = _toml_str(tm, ent["name"], f"{kind} name", tm.entity_line(kind, pos, "name"))
        if not name.strip():
            raise tm.error(f"[[{kind}]] number {pos + 1} has an empty name; give it a name", line)
        if name == _WILDCARD:
            raise tm.error(
                f"{kind} name '*' is reserved (it means 'all' in the routing "
                "table); choose another name",
                line,
            )
        if name in seen:
            first = tm.entity_line(kind, seen[name])
            raise tm.error(
                f"duplicate {kind} name {name!r} (first defined at line {first}); "
                f"{kind} names must be unique: rename or remove one",
                line,
            )
        seen[name] = pos
        for key in ("lat", "lon"):
            if key in ent:
                _toml_number(tm, ent[key], f"{kind} {name!r} {key}", tm.entity_line(kind, pos, key))
    tm.index[kind] = seen
    return raw


# ---------------------------------------------------------------------------- tables
@dataclass
class _Table:
    """One CSV or Parquet table: header names, raw cells, line (or row) of every row."""

    label: str
    columns: list[str]
    cells: pd.DataFrame  # positional columns 0..n-1; str (CSV) or native (Parquet)
    lines: np.ndarray  # line number (CSV, header = 1) or row number (Parquet) per row
    csv: bool

    @property
    def word(self) -> str:
        return "line" if self.csv else "row"

    def error(
        self, message: str, row: int | None = None, col: int | None = None
    ) -> ScenarioFormatError:
        line = None if row is None else int(self.lines[row])
        if row is None and col is not None and self.csv:
            line = 1  # header
        name = None if col is None else self.columns[col]
        return ScenarioFormatError(
            message,
            file=self.label,
            line=line,
            column=name,
            column_number=None if col is None else col + 1,
            line_word=self.word,
        )


def _read_table(
    path: Path,
    label: str,
    missing: Callable[[str], ScenarioFormatError],
    *,
    max_bytes: int = MAX_TABLE_BYTES,
    max_rows: int = MAX_TABLE_ROWS,
    field: str | None = None,
) -> _Table:
    kind = _table_kind(path.name)
    if kind is None:
        raise missing(
            f"file {path.name!r} has an unknown extension; use .csv, .csv.gz, .parquet or .pq"
        )
    if not path.is_file():
        raise missing(f"file {label!r} does not exist; create it or fix the file name")

    def fail(problem: str, fix: str) -> ScenarioFormatError:
        fix = fix.replace("max_rows)", "max_rows of read_scenario)").replace(
            "max_bytes / max_rows)", "max_bytes / max_rows of read_scenario)"
        )
        named = f" (the file of {field} in {SCENARIO_FILE})" if field else ""
        return ScenarioFormatError(f"{problem}{named}; {fix}", file=label)

    if kind == "csv":
        # header + max_rows data rows (+ a final line break)
        data = read_bytes_limited(
            path, fail, max_bytes=max_bytes, max_lines=max_rows + 1, what="table"
        )
        try:
            raw = pd.read_csv(
                io.BytesIO(data),
                header=None,
                dtype=str,
                na_filter=False,
                skip_blank_lines=False,
                encoding="utf-8-sig",
            )
        except pd.errors.EmptyDataError:
            raise ScenarioFormatError(
                "file is empty; it needs a header line (time, names...) and one line per row",
                file=label,
            ) from None
        except pd.errors.ParserError as exc:
            m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
            if m:
                raise ScenarioFormatError(
                    f"line has {m.group(3)} cells but the header has {m.group(1)}; remove "
                    "the extra cells (or quote cells that contain commas)",
                    file=label,
                    line=int(m.group(2)),
                ) from None
            raise ScenarioFormatError(
                f"not a readable CSV file ({exc}); check quoting and separators (comma)", file=label
            ) from None
        except UnicodeDecodeError as exc:
            raise ScenarioFormatError(
                f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8 CSV",
                file=label,
            ) from None
        header = [str(c).strip() for c in raw.iloc[0].tolist()]
        body = raw.iloc[1:].apply(lambda c: c.str.strip())
        keep = ~(body == "").all(axis=1).to_numpy()  # blank lines are skipped
        body = body.loc[keep]
        lines = np.flatnonzero(keep) + 2
        body.columns = range(len(header))
        return _Table(label, header, body.reset_index(drop=True), lines, csv=True)
    try:
        _check_parquet_size(path, fail, max_bytes, max_rows)
        frame = pd.read_parquet(path)
    except ScenarioFormatError:
        raise
    except Exception as exc:  # pyarrow raises many types for a bad file
        raise ScenarioFormatError(
            f"not a readable Parquet file ({type(exc).__name__}: "
            f"{exc}); write it with pandas.DataFrame.to_parquet",
            file=label,
        ) from None
    header = [str(c).strip() for c in frame.columns]
    frame = frame.reset_index(drop=True)
    frame.columns = range(len(header))
    return _Table(label, header, frame, np.arange(1, len(frame) + 1), csv=False)


def _check_parquet_size(
    path: Path, fail: Callable[[str, str], ScenarioFormatError], max_bytes: int, max_rows: int
) -> None:
    """Refuse a Parquet file whose metadata announce more rows or bytes than the caps."""
    import pyarrow.parquet as pq

    md = pq.ParquetFile(path).metadata
    if md.num_rows > max_rows:
        raise fail(
            f"table has {md.num_rows:,} rows, more than the cap of {max_rows:,}",
            "give a smaller table (split it or cut the horizon), or raise the cap "
            "(max_rows of read_scenario) if the file is genuine",
        )
    size = sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
    if size > max_bytes:
        raise fail(
            f"table is {size:,} bytes once decompressed, more than the cap of {max_bytes:,}",
            "give a smaller table, or raise the cap (max_bytes of "
            "read_scenario) if the file is genuine",
        )


def _table_kind(name: str) -> str | None:
    low = name.lower()
    for suffix in (".gz", ".bz2", ".xz", ".zst", ".zip"):
        if low.endswith(".csv" + suffix):
            return "csv"
    return _SUFFIXES.get(Path(low).suffix)


def _layout(
    tb: _Table,
    keys: Sequence[str],
    names: Sequence[str],
    dim: str,
    required: Sequence[str],
    alt: str = "",
) -> dict[str, int]:
    """Map key columns and names to column positions; check missing/unknown/duplicates."""
    pos: dict[str, int] = {}
    for c, h in enumerate(tb.columns):
        if not h:
            raise ScenarioFormatError(
                f"column {c + 1} has no name in the header; name it after a {dim} or remove "
                "the column",
                file=tb.label,
                line=1 if tb.csv else None,
            )
        if h in pos:
            raise tb.error(f"column name {h!r} appears twice in the header; keep one", col=c)
        pos[h] = c
    for k in keys:
        if k not in pos:
            near = _suggest(k, list(pos))
            raise ScenarioFormatError(
                f"missing column {k!r}{near}; the header must contain "
                f"{', '.join(repr(x) for x in keys)} and one column per {dim}",
                file=tb.label,
                line=1 if tb.csv else None,
            )
    for h, c in pos.items():
        if h not in keys and h not in names:
            raise tb.error(
                f"column {h!r} is not a {dim} of scenario.toml"
                f"{_suggest(h, names)}; known {dim}s: {list(names)}; rename the "
                f"column or add [[{dim}]] name = {h!r} to scenario.toml",
                col=c,
            )
    for n in required:
        if n not in pos:
            raise ScenarioFormatError(
                f"missing column for {dim} {n!r}; add a column named {n!r} with its values"
                + (alt.format(name=n) if alt else ""),
                file=tb.label,
                line=1 if tb.csv else None,
            )
    return pos


def _numbers(tb: _Table, col: int) -> np.ndarray:
    """Column ``col`` as float; empty or non-numeric cells raise naming line and column."""
    s = tb.cells[col]
    if not tb.csv and pd.api.types.is_bool_dtype(s.dtype):
        raise tb.error("column holds booleans; write numbers", col=col)
    if not tb.csv and pd.api.types.is_numeric_dtype(s.dtype):
        return _bounded(tb, col, s.to_numpy(dtype=float, na_value=np.nan))
    text = s.astype(object).map(lambda v: "" if v is None else str(v).strip())
    vals = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(vals) & (text.str.lower() != "nan").to_numpy()
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        cell = text.iloc[r]
        if cell == "":
            raise tb.error("empty cell; write a number in it", row=r, col=col)
        raise tb.error(
            f"cell {cell!r} is not a number; write a plain decimal number such "
            "as 42.5 or 1e-3 (no units or thousands separators)",
            row=r,
            col=col,
        )
    return _bounded(tb, col, vals, text)


def _bounded(tb: _Table, col: int, vals: np.ndarray, text: pd.Series | None = None) -> np.ndarray:
    """``vals``, unless a finite one is beyond :data:`MAX_MAGNITUDE` (then raise naming
    the row and column; NaN and inf are judged by the Scenario constructor)."""
    with np.errstate(invalid="ignore"):
        big = np.flatnonzero(np.isfinite(vals) & (np.abs(vals) > MAX_MAGNITUDE))
    if big.size:
        r = int(big[0])
        cell = text.iloc[r] if text is not None else repr(float(vals[r]))
        raise tb.error(
            f"cell {cell} is beyond the supported magnitude {MAX_MAGNITUDE:g} "
            "(products such as demand x energy x intensity would overflow); "
            "check the value and the unit of the table",
            row=r,
            col=col,
        )
    return vals


def _times(tb: _Table, col: int) -> pd.DatetimeIndex:
    """Column ``col`` as a UTC DatetimeIndex; unparsable cells raise naming the line."""
    s = tb.cells[col]
    if not tb.csv and pd.api.types.is_datetime64_any_dtype(s.dtype):
        t = pd.DatetimeIndex(s)
        if t.isna().any():
            r = int(np.flatnonzero(t.isna())[0])
            raise tb.error("time is missing (null); give every row a timestamp", row=r, col=col)
        t = t.tz_localize("UTC") if t.tz is None else t.tz_convert("UTC")
        return _in_range(tb, t, col)
    text = s.astype(object).map(lambda v: "" if v is None else str(v).strip())
    try:
        t = pd.DatetimeIndex(pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce"))
    except (OverflowError, ValueError):  # e.g. an offset that pushes a stamp out of range
        t = pd.DatetimeIndex([_one_time(v) for v in text])
    if t.isna().any():
        r = int(np.flatnonzero(t.isna())[0])
        raise tb.error(
            f"time {text.iloc[r]!r} is not an ISO 8601 timestamp; write e.g. "
            "2022-09-22T00:00:00Z, 2022-09-22 00:00 (taken as UTC) or "
            "2022-09-22T02:00:00+02:00",
            row=r,
            col=col,
        )
    return _in_range(tb, t, col, text)


def _one_time(v: str) -> pd.Timestamp:
    try:
        return pd.Timestamp(pd.to_datetime(v, format="ISO8601", utc=True))
    except (OverflowError, ValueError):
        return pd.NaT


def _in_range(
    tb: _Table, t: pd.DatetimeIndex, col: int, text: pd.Series | None = None
) -> pd.DatetimeIndex:
    """``t``, unless a stamp is outside :data:`eqglb.io._common.TIME_RANGE`."""
    r = first_out_of_range(t)
    if r is not None:
        cell = repr(text.iloc[r]) if text is not None else str(t[r])
        raise tb.error(
            f"time {cell} is outside the supported range "
            f"{TIME_RANGE[0]:%Y-%m-%d} .. {TIME_RANGE[1]:%Y-%m-%d} (64-bit "
            "nanosecond times); check the year",
            row=r,
            col=col,
        )
    return t


def _check_reference_time(tb: _Table, t: pd.DatetimeIndex, col: int) -> None:
    """The reference (demand) time column: non-empty, strictly increasing, fixed step."""
    if len(t) == 0:
        raise ScenarioFormatError(
            "table has a header but no rows; add one row per time slot", file=tb.label
        )
    v = t.asi8
    for r in range(1, len(t)):
        if v[r] <= v[r - 1]:
            what = "repeats" if v[r] == v[r - 1] else "is earlier than"
            raise tb.error(
                f"time {t[r]} {what} the time on {tb.word} {tb.lines[r - 1]} "
                f"({t[r - 1]}); sort the rows by time and drop duplicates",
                row=r,
                col=col,
            )
    if len(t) > 2:
        step = v[1] - v[0]
        bad = np.flatnonzero(np.diff(v) != step)
        if bad.size:
            r = int(bad[0]) + 1
            raise tb.error(
                f"time step from {tb.word} {tb.lines[r - 1]} to {tb.lines[r]} is "
                f"{_fmt_td(t[r] - t[r - 1])}, but the first step is {_fmt_td(t[1] - t[0])}; "
                "slots must have a "
                "fixed length: add the missing slots",
                row=r,
                col=col,
            )


def _fmt_td(td: pd.Timedelta) -> str:
    sec = td.total_seconds()
    for unit, size in (("h", 3600), ("min", 60)):
        if sec % size == 0:
            return f"{sec / size:g} {unit}"
    return f"{sec:g} s"


def _check_same_time(
    tb: _Table, t: pd.DatetimeIndex, col: int, ref: _Table, ref_t: pd.DatetimeIndex
) -> None:
    n = min(len(t), len(ref_t))
    diff = np.flatnonzero(t.asi8[:n] != ref_t.asi8[:n])
    if diff.size:
        r = int(diff[0])
        raise tb.error(
            f"time {t[r]} differs from {ref.label} {ref.word} {ref.lines[r]} "
            f"({ref_t[r]}); every time series must list the same slots in the "
            "same order",
            row=r,
            col=col,
        )
    if len(t) != len(ref_t):
        raise ScenarioFormatError(
            f"has {len(t)} time rows but {ref.label} has {len(ref_t)}; every time series "
            "must list the same slots",
            file=tb.label,
        )


# ---------------------------------------------------------------------------- reading
@dataclass
class _Series:
    table: _Table
    pos: dict[str, int]
    values: dict[str, np.ndarray]  # name -> (T,) in canonical units


def _series_spec(tm: _Toml, ts: dict[str, Any], key: str) -> tuple[str, Any]:
    spec = ts[key]
    line = tm.table_line("timeseries", key)
    if isinstance(spec, str):
        raise tm.error(
            f"[timeseries.{key}] must be a table with file and unit, e.g. "
            f"[timeseries.{key}] file = {spec!r} unit = ...",
            line,
        )
    if not isinstance(spec, dict):
        raise tm.error(f"[timeseries.{key}] must be a table with keys file and unit", line)
    for k in spec:
        if k not in ("file", "unit"):
            raise tm.error(
                f"unknown key {k!r} in [timeseries.{key}]; keys are 'file' and 'unit'", line
            )
    if "file" not in spec:
        raise tm.error(f'[timeseries.{key}] has no file; add file = "{key}.csv"', line)
    file = _toml_str(tm, spec["file"], f"[timeseries.{key}] file", line)
    return file, spec.get("unit")


def _open(folder: Path, display: Path, tm: _Toml, file: str, what: str, line: int | None) -> _Table:
    label = str(display / file)
    target = folder / file
    if not tm.allow_outside:
        outside = _outside(folder, file)
        if outside:
            raise tm.error(
                f"{what}: file {file!r} {outside}, outside the scenario folder; "
                "keep the tables in the folder (copy the file in and name it "
                "relative to the folder), or pass allow_outside=True to "
                "read_scenario to read files elsewhere",
                line,
            )
    return _read_table(
        target,
        label,
        lambda m: tm.error(f"{what}: {m}", line),
        max_bytes=tm.max_bytes,
        max_rows=tm.max_rows,
        field=what,
    )


def _outside(folder: Path, file: str) -> str:
    """Why ``file`` (as named in scenario.toml) lies outside ``folder``, or ''."""
    if Path(file).is_absolute() or re.match(r"^[A-Za-z]:|^[\\/]", file):
        return "is an absolute path"
    root = folder.resolve()
    lexical = Path(os.path.normpath(root / file))
    if not lexical.is_relative_to(root):
        return "climbs out with '..'"
    real = (folder / file).resolve()
    if not real.is_relative_to(root):
        return f"is (or passes through) a symbolic link to {str(real)!r}"
    return ""


def read_scenario(
    path: str | Path,
    *,
    validate_feasibility: bool = True,
    allow_outside: bool = False,
    max_rows: int = MAX_TABLE_ROWS,
    max_bytes: int = MAX_TABLE_BYTES,
) -> Scenario:
    """Read a scenario folder (``scenario.toml`` + CSV/Parquet tables) into a Scenario.

    Parameters
    ----------
    path : str or Path
        The scenario folder, or its ``scenario.toml`` file.
    validate_feasibility : bool
        Passed to :class:`~eqglb.scenario.Scenario`: check that every slot's demand can be
        served within capacity and routing.
    allow_outside : bool
        Whether scenario.toml may name tables outside the folder (absolute paths, ``..``,
        or symbolic links that lead out). Default False: such a table is refused, so a
        scenario folder cannot make eqglb read (and quote in error messages) an
        arbitrary file of the machine.
    max_rows : int
        Largest number of rows of one table [rows] (default :data:`MAX_TABLE_ROWS`).
    max_bytes : int
        Largest size of one table or of scenario.toml, once decompressed [bytes]
        (default :data:`MAX_TABLE_BYTES`). Compressed tables (``.csv.gz``, ``.bz2``,
        ``.xz``, ``.zip``, ``.zst``) are decompressed step by step and refused as soon as
        a cap is passed, so a small "decompression bomb" cannot exhaust memory.

    Returns
    -------
    Scenario
        Validated, in canonical units: demand [requests/slot], price [USD/kWh],
        carbon_intensity [kg CO2/kWh], wue and ewif [L/kWh], energy_per_request
        [kWh/request], capacity [units/slot] (shared) or [requests/slot] (per_model),
        latency [ms].

    Raises
    ------
    ScenarioFormatError
        A file is missing, malformed, corrupt or truncated, over a cap, outside the
        folder, or holds a number beyond :data:`MAX_MAGNITUDE` or a time outside
        1677-09-22 .. 2262-04-10 (message names file, line/row, column, fix).
    ScenarioError
        A value is invalid (NaN, negative, infeasible demand); the message is prefixed
        with the file and line it came from.
    """
    display = Path(path)
    if display.suffix.lower() == ".toml":
        toml_display, display = display, display.parent
    else:
        toml_display = display / SCENARIO_FILE
    folder = Path(display)
    if not folder.is_dir():
        raise ScenarioFormatError(
            f"no such scenario folder {str(display)!r}; give the folder that holds {SCENARIO_FILE}"
        )
    toml_path = Path(toml_display)
    label = str(toml_display)
    if not toml_path.is_file():
        raise ScenarioFormatError(
            f"file does not exist; a scenario folder needs a "
            f"{SCENARIO_FILE} (see docs/scenario-format.md)",
            file=label,
        )
    data = read_bytes_limited(
        toml_path,
        lambda problem, fix: ScenarioFormatError(f"{problem}; {fix}", file=label),
        max_bytes=max_bytes,
        max_lines=None,
        what=SCENARIO_FILE,
    )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScenarioFormatError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8", file=label
        ) from None
    try:
        doc = tomllib.loads(text)
    except RecursionError:
        raise ScenarioFormatError(
            f"arrays or tables are nested too deeply to read (more than {MAX_TOML_DEPTH} "
            "levels); flatten them",
            file=label,
        ) from None
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        end = re.search(r"\(at end of document\)", msg)
        what = re.sub(r"\s*\((at line \d+, column \d+|at end of document)\)", "", msg)
        line = int(m.group(1)) if m else (len(text.splitlines()) if end else None)
        raise ScenarioFormatError(
            f"TOML syntax error: {what}; fix the "
            "syntax (strings need quotes, each key once per table, [[datacenter]] tables for "
            "lists)",
            file=label,
            line=line,
            column=int(m.group(2)) if m else None,
        ) from None
    tm = _Toml(text, label, allow_outside=allow_outside, max_bytes=max_bytes, max_rows=max_rows)
    deep = _too_deep(doc)
    if deep is not None:
        raise tm.error(
            f"value {deep!r} is nested more than {MAX_TOML_DEPTH} levels deep; flatten it",
            tm.table_line(*deep.split(".")[:2]),
        )
    return _from_doc(doc, tm, folder, display, validate_feasibility)


def _too_deep(doc: dict[str, Any]) -> str | None:
    """Dotted key of the first value nested deeper than :data:`MAX_TOML_DEPTH`, or None."""
    stack: list[tuple[Any, int, str]] = [(doc, 0, "")]
    while stack:
        value, depth, key = stack.pop()
        if depth > MAX_TOML_DEPTH:
            return key
        if isinstance(value, dict):
            stack.extend((v, depth + 1, f"{key}.{k}" if key else str(k)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, depth + 1, key) for v in value)
    return None


def _from_doc(
    doc: dict[str, Any], tm: _Toml, folder: Path, display: Path, validate_feasibility: bool
) -> Scenario:
    for key in doc:
        if key not in _TOP_KEYS:
            raise tm.error(
                f"unknown top-level key {key!r}{_suggest(key, _TOP_KEYS)}; known "
                f"keys: {list(_TOP_KEYS)}",
                tm.table_line(key),
            )
    if "format_version" in doc and doc["format_version"] != FORMAT_VERSION:
        raise tm.error(
            f"format_version is {doc['format_version']!r}; this eqglb reads "
            f"format_version = {FORMAT_VERSION}",
            tm.table_line("format_version"),
        )
    name = _toml_str(tm, doc.get("name", folder.resolve().name), "name", tm.table_line("name"))
    description = _toml_str(
        tm, doc.get("description", ""), "description", tm.table_line("description")
    )
    mode = doc.get("capacity_mode", "shared")
    if mode not in ("shared", "per_model"):
        raise tm.error(
            f'capacity_mode is {mode!r}; use "shared" (one pool per datacenter, '
            '[units/slot]) or "per_model" (one pool per datacenter and model, '
            "[requests/slot])",
            tm.table_line("capacity_mode"),
        )
    dcs = _entities(tm, doc, "datacenter")
    regs = _entities(tm, doc, "region")
    mods = _entities(tm, doc, "model")
    D = [str(e["name"]) for e in dcs]
    R = [str(e["name"]) for e in regs]
    M = [str(e["name"]) for e in mods]
    N, K = len(D), len(M)

    # -- time series ------------------------------------------------------------------
    ts = doc.get("timeseries")
    if not isinstance(ts, dict):
        raise tm.error(
            "no [timeseries.*] tables; add [timeseries.demand], "
            "[timeseries.price], [timeseries.carbon_intensity], [timeseries.wue] "
            "and [timeseries.ewif], each with file and unit",
            tm.table_line("timeseries"),
        )
    for key in ts:
        if key not in _REQUIRED_SERIES + _OPTIONAL_SERIES:
            raise tm.error(
                f"unknown time series [timeseries.{key}]"
                f"{_suggest(key, _REQUIRED_SERIES + _OPTIONAL_SERIES)}; known: "
                f"{list(_REQUIRED_SERIES + _OPTIONAL_SERIES)}",
                tm.table_line("timeseries", key),
            )
    for key in _REQUIRED_SERIES:
        if key not in ts:
            raise tm.error(
                f"[timeseries.{key}] is missing; add [timeseries.{key}] with "
                f'file = "{key}.csv" and unit = "{next(iter(UNITS[key]))}"',
                tm.table_line("timeseries"),
            )

    # pue / capacity: each datacenter's value comes from exactly one place
    pue_const = {n: e["pue"] for n, e in zip(D, dcs, strict=True) if "pue" in e}
    cap_const = {n: e["capacity"] for n, e in zip(D, dcs, strict=True) if "capacity" in e}

    def wide(
        key: str,
        names: list[str],
        required: list[str],
        quantity: str,
        ref: tuple[_Table, pd.DatetimeIndex] | None,
    ) -> tuple[_Series, pd.DatetimeIndex]:
        file, unit = _series_spec(tm, ts, key)
        line = tm.table_line("timeseries", key)
        where = f"[timeseries.{key}] "
        if unit is None and quantity in ("pue", "capacity_shared"):
            unit = next(iter(UNITS[quantity]))
        if unit is None:
            raise tm.error(
                f'{where}has no unit; add unit = "{next(iter(UNITS[quantity]))}" '
                f"(accepted: {list(UNITS[quantity])})",
                line,
            )
        try:
            factor = convert_unit(quantity, unit, where=where)
        except ScenarioFormatError as exc:
            raise tm.error(str(exc), line) from None
        tb = _open(folder, display, tm, file, f"[timeseries.{key}]", line)
        alt = (
            f" or give {key} = ... in the [[datacenter]] table of {{name!r}}"
            if key in _OPTIONAL_SERIES
            else ""
        )
        pos = _layout(tb, ["time"], names, _SERIES_DIM[key], required, alt)
        t = _times(tb, pos["time"])
        if ref is None:
            _check_reference_time(tb, t, pos["time"])
        else:
            _check_same_time(tb, t, pos["time"], *ref)
        vals = {n: factor(_numbers(tb, c)) for n, c in pos.items() if n != "time"}
        return _Series(tb, pos, vals), t

    demand_s, time = wide("demand", R, R, "demand", None)
    ref = (demand_s.table, time)
    T = len(time)
    series: dict[str, _Series] = {"demand": demand_s}
    for key in ("price", "carbon_intensity", "wue", "ewif"):
        series[key], _ = wide(key, D, D, key, ref)

    demand = np.column_stack([demand_s.values[n] for n in R])

    def stack(key: str) -> np.ndarray:
        return np.column_stack([series[key].values[n] for n in D])

    # pue
    pue_tab: _Series | None = None
    if "pue" in ts:
        pue_tab, _ = wide("pue", D, [n for n in D if n not in pue_const], "pue", ref)
        both = [n for n in D if n in pue_const and n in pue_tab.values]
        if both:
            raise ScenarioFormatError(
                f"datacenter {both[0]!r} has a pue column here and pue = ... in "
                f"{tm.label} (line {tm.named_line('datacenter', both[0], 'pue')}); give "
                "each datacenter's pue in one place only",
                file=pue_tab.table.label,
                line=1 if pue_tab.table.csv else None,
            )
    pue = np.empty((T, N))
    for i, n in enumerate(D):
        if n in pue_const:
            pue[:, i] = _toml_number(
                tm, pue_const[n], f"pue of datacenter {n!r}", tm.named_line("datacenter", n, "pue")
            )
        elif pue_tab is not None:
            pue[:, i] = pue_tab.values[n]
        else:
            raise tm.error(
                f"datacenter {n!r} has no pue; add pue = 1.2 to its [[datacenter]] "
                "table or a column to [timeseries.pue]",
                tm.named_line("datacenter", n),
            )

    # capacity
    cap_tab: _Table | None = None
    cap_lines: dict[tuple[int, int], int] = {}
    cap_cols: set[str] = set()
    if mode == "shared":
        capacity = np.empty((T, N))
        if "capacity" in ts:
            s, _ = wide("capacity", D, [n for n in D if n not in cap_const], "capacity_shared", ref)
            cap_tab, cap_cols = s.table, set(s.values)
            for i, n in enumerate(D):
                if n in s.values:
                    capacity[:, i] = s.values[n]
    else:
        capacity = np.empty((T, N, K))
        if "capacity" in ts:
            cap_tab, cap_vals, cap_lines = _per_model_capacity(
                tm, ts, folder, display, D, M, [n for n in D if n not in cap_const], ref
            )
            cap_cols = set(cap_vals)
            for i, n in enumerate(D):
                if n in cap_vals:
                    capacity[:, i, :] = cap_vals[n]
    both = sorted(cap_cols & set(cap_const))
    if both and cap_tab is not None:
        raise ScenarioFormatError(
            f"datacenter {both[0]!r} has a capacity column here and capacity = ... in "
            f"{tm.label} (line {tm.named_line('datacenter', both[0], 'capacity')}); give "
            "each datacenter's capacity in one place only",
            file=cap_tab.label,
            line=1 if cap_tab.csv else None,
        )
    for i, n in enumerate(D):
        if n in cap_cols:
            continue
        line = tm.named_line("datacenter", n, "capacity")
        if n not in cap_const:
            hint = (
                "capacity = 1000.0 [units/slot]"
                if mode == "shared"
                else "capacity = { "
                + ", ".join(f"{_toml_key(m)} = 100.0" for m in M)
                + " } [requests/slot]"
            )
            raise tm.error(
                f"datacenter {n!r} has no capacity; add {hint} to its "
                "[[datacenter]] table or a column to [timeseries.capacity]",
                tm.named_line("datacenter", n),
            )
        c = cap_const[n]
        if mode == "shared":
            if isinstance(c, dict):
                raise tm.error(
                    f"capacity of datacenter {n!r} is a table, but capacity_mode "
                    'is "shared": give one number [units/slot], or set '
                    'capacity_mode = "per_model"',
                    line,
                )
            capacity[:, i] = _toml_number(tm, c, f"capacity of datacenter {n!r}", line)
        else:
            if not isinstance(c, dict):
                raise tm.error(
                    f"capacity of datacenter {n!r} is {c!r}, but capacity_mode is "
                    '"per_model": give a table of requests/slot per model, e.g. capacity = '
                    "{ " + ", ".join(f"{_toml_key(m)} = 100.0" for m in M) + " }",
                    line,
                )
            for m in c:
                if m not in M:
                    raise tm.error(
                        f"capacity of datacenter {n!r} names unknown model {m!r}"
                        f"{_suggest(m, M)}; known models: {M}",
                        line,
                    )
            for k, m in enumerate(M):
                if m not in c:
                    raise tm.error(
                        f"capacity of datacenter {n!r} has no value for model "
                        f"{m!r}; add {_toml_key(m)} = 0.0 (not hosted) or its "
                        "capacity [requests/slot]",
                        line,
                    )
                capacity[:, i, k] = _toml_number(
                    tm, c[m], f"capacity of datacenter {n!r} for model {m!r}", line
                )

    # models
    eps = np.empty((N, K))
    r = np.empty(K)
    s_loss = np.empty(K)
    for k, (m, e) in enumerate(zip(M, mods, strict=True)):
        for key in ("energy_per_request", "energy_unit", "quality_loss") + (
            ("capacity_per_request",) if mode == "shared" else ()
        ):
            if key not in e:
                raise tm.error(
                    f"model {m!r} has no {key}; add {key} = ... ({_MODEL_KEY_HELP[key]})",
                    tm.named_line("model", m),
                )
        uline = tm.named_line("model", m, "energy_unit")
        unit = _toml_str(tm, e["energy_unit"], f"energy_unit of model {m!r}", uline)
        try:
            factor = convert_unit("energy_per_request", unit, where=f"model {m!r} energy_unit: ")
        except ScenarioFormatError as exc:
            raise tm.error(str(exc), uline) from None
        eline = tm.named_line("model", m, "energy_per_request")
        ev = e["energy_per_request"]
        if isinstance(ev, dict):
            for n in ev:
                if n not in D:
                    raise tm.error(
                        f"energy_per_request of model {m!r} names unknown "
                        f"datacenter {n!r}{_suggest(n, D)}; known: {D}",
                        eline,
                    )
            for i, n in enumerate(D):
                if n not in ev:
                    raise tm.error(
                        f"energy_per_request of model {m!r} has no value for "
                        f"datacenter {n!r}; add {_toml_key(n)} = ... [{unit}]",
                        eline,
                    )
                eps[i, k] = factor(
                    _toml_number(tm, ev[n], f"energy_per_request of model {m!r} at {n!r}", eline)
                )
        else:
            eps[:, k] = factor(_toml_number(tm, ev, f"energy_per_request of model {m!r}", eline))
        r[k] = _toml_number(
            tm,
            e.get("capacity_per_request", 1.0),
            f"capacity_per_request of model {m!r}",
            tm.named_line("model", m, "capacity_per_request"),
        )
        s_loss[k] = _toml_number(
            tm,
            e["quality_loss"],
            f"quality_loss of model {m!r}",
            tm.named_line("model", m, "quality_loss"),
        )

    # regions: home
    home: list[str] | None = None
    if any("home" in e for e in regs):
        home = []
        for j, (n, e) in enumerate(zip(R, regs, strict=True)):
            if "home" not in e:
                raise tm.error(
                    f"region {n!r} has no home, but other regions do; give every "
                    "region a home datacenter or none",
                    tm.entity_line("region", j),
                )
            h = _toml_str(
                tm, e["home"], f"home of region {n!r}", tm.entity_line("region", j, "home")
            )
            if h not in D:
                raise tm.error(
                    f"home of region {n!r} is {h!r}, not a datacenter{_suggest(h, D)};"
                    f" known datacenters: {D}",
                    tm.entity_line("region", j, "home"),
                )
            home.append(h)

    # regions: latency SLOs [ms] (eqglb.slo); a region without the key has no limit
    limits: dict[str, Any] = {}
    for key in ("rtt_slo_ms", "rtt_budget_ms"):
        limits[key] = (
            None
            if not any(key in e for e in regs)
            else np.array(
                [
                    _toml_number(
                        tm, e[key], f"{key} of region {n!r}", tm.entity_line("region", j, key)
                    )
                    if key in e
                    else np.inf
                    for j, (n, e) in enumerate(zip(R, regs, strict=True))
                ]
            )
        )

    allowed, routes_tab = _routing(tm, doc, folder, display, D, R, M)
    latency, lat_tab, lat_rows = _latency(tm, doc, folder, display, D, R)

    attrs = doc.get("attrs", {})
    if not isinstance(attrs, dict):
        raise tm.error("attrs must be a table: [attrs]", tm.table_line("attrs"))
    attrs = dict(attrs)
    coords = {
        kind: {
            str(e["name"]): {k: float(e[k]) for k in ("lat", "lon") if k in e}
            for e in ents
            if "lat" in e or "lon" in e
        }
        for kind, ents in (("datacenter", dcs), ("region", regs))
    }
    coords = {k: v for k, v in coords.items() if v}
    if coords:
        attrs["coordinates"] = coords

    ctx = _Context(
        tm,
        series,
        pue_tab,
        set(pue_const),
        cap_tab,
        cap_cols,
        cap_lines,
        mode,
        routes_tab,
        lat_tab,
        lat_rows,
        M,
    )
    try:
        return Scenario(
            datacenters=tuple(D),
            regions=tuple(R),
            models=tuple(M),
            time=time,
            demand=demand,
            price=stack("price"),
            carbon_intensity=stack("carbon_intensity"),
            wue=stack("wue"),
            ewif=stack("ewif"),
            pue=pue,
            energy_per_request=eps,
            capacity_per_request=r,
            capacity=capacity,
            quality_loss=s_loss,
            allowed=allowed,
            capacity_mode=mode,
            latency=latency,
            home=None if home is None else tuple(home),
            name=name,
            description=description,
            attrs=attrs,
            validate_feasibility=validate_feasibility,
            **limits,
        )
    except ScenarioFormatError:
        raise
    except ScenarioError as exc:
        raise ctx.relocate(exc) from exc


_MODEL_KEY_HELP = {
    "energy_per_request": "IT energy per request, a number or a table per datacenter",
    "energy_unit": 'unit of energy_per_request, e.g. "Wh" or "kWh"',
    "capacity_per_request": "capacity units one request takes [units/request]",
    "quality_loss": "normalised quality loss in [0, 1], 0 for the best model",
}


def _per_model_capacity(
    tm: _Toml,
    ts: dict[str, Any],
    folder: Path,
    display: Path,
    D: list[str],
    M: list[str],
    required: list[str],
    ref: tuple[_Table, pd.DatetimeIndex],
) -> tuple[_Table, dict[str, np.ndarray], dict[tuple[int, int], int]]:
    """Read the per-model capacity table: columns time, model, one per datacenter."""
    file, unit = _series_spec(tm, ts, "capacity")
    line = tm.table_line("timeseries", "capacity")
    try:
        factor = convert_unit(
            "capacity_per_model",
            unit if unit is not None else "requests",
            where="[timeseries.capacity] ",
        )
    except ScenarioFormatError as exc:
        raise tm.error(str(exc), line) from None
    tb = _open(folder, display, tm, file, "[timeseries.capacity]", line)
    pos = _layout(
        tb,
        ["time", "model"],
        D,
        "datacenter",
        required,
        " or give capacity = {{ model = ... }} in the [[datacenter]] table of {name!r}",
    )
    t = _times(tb, pos["time"])
    ref_tb, ref_t = ref
    ti = ref_t.get_indexer(t)
    if (ti < 0).any():
        row = int(np.flatnonzero(ti < 0)[0])
        raise tb.error(
            f"time {t[row]} is not a slot of {ref_tb.label}; use the same time "
            "stamps as the demand table",
            row=row,
            col=pos["time"],
        )
    mc = pos["model"]
    names = tb.cells[mc].astype(object).map(lambda v: "" if v is None else str(v).strip())
    ki = pd.Index(M).get_indexer(names)
    if (ki < 0).any():
        row = int(np.flatnonzero(ki < 0)[0])
        n = names.iloc[row]
        raise tb.error(
            f"model {n!r} is not a model of scenario.toml{_suggest(n, M)}; known models: {M}",
            row=row,
            col=mc,
        )
    T, K = len(ref_t), len(M)
    where: dict[tuple[int, int], int] = {}
    for row, key in enumerate(zip(ti.tolist(), ki.tolist(), strict=True)):
        if key in where:
            raise tb.error(
                f"time {ref_t[key[0]]} and model {M[key[1]]!r} appear twice "
                f"(first on {tb.word} {tb.lines[where[key]]}); keep one row",
                row=row,
            )
        where[key] = row
    if len(where) < T * K:
        miss = next((a, b) for a in range(T) for b in range(K) if (a, b) not in where)
        raise ScenarioFormatError(
            f"no row for time {ref_t[miss[0]]} and model {M[miss[1]]!r}; the table needs one "
            f"row per (time, model): {T} x {K} = {T * K} rows",
            file=tb.label,
        )
    order = np.array([[where[(a, b)] for b in range(K)] for a in range(T)])  # (T, K)
    vals = {n: factor(_numbers(tb, c))[order] for n, c in pos.items() if n not in ("time", "model")}
    lines = {key: int(tb.lines[row]) for key, row in where.items()}
    return tb, vals, lines


def _names_column(
    tb: _Table, col: int, known: list[str], dim: str, wildcard: bool
) -> list[np.ndarray]:
    """Per row, the indices the cell names ('*' = all when ``wildcard``)."""
    out: list[np.ndarray] = []
    idx = {n: i for i, n in enumerate(known)}
    for row, v in enumerate(tb.cells[col].tolist()):
        cell = "" if v is None else str(v).strip()
        if wildcard and cell == _WILDCARD:
            out.append(np.arange(len(known)))
        elif cell in idx:
            out.append(np.array([idx[cell]]))
        else:
            hint = " or '*' for all" if wildcard else ""
            if cell == "":
                raise tb.error(f"empty cell; write a {dim} name{hint}", row=row, col=col)
            raise tb.error(
                f"{cell!r} is not a {dim} of scenario.toml{_suggest(cell, known)}; "
                f"known {dim}s: {known}{hint}",
                row=row,
                col=col,
            )
    return out


def _routing(
    tm: _Toml,
    doc: dict[str, Any],
    folder: Path,
    display: Path,
    D: list[str],
    R: list[str],
    M: list[str],
) -> tuple[np.ndarray | None, _Table | None]:
    spec = doc.get("routing")
    if spec is None:
        return None, None
    line = tm.table_line("routing")
    if not isinstance(spec, dict) or set(spec) != {"file"}:
        raise tm.error('[routing] must be a table with one key: file = "routes.csv"', line)
    file = _toml_str(tm, spec["file"], "[routing] file", line)
    tb = _open(folder, display, tm, file, "[routing]", line)
    keys = ["datacenter", "region", "model"]
    pos: dict[str, int] = {}
    for c, h in enumerate(tb.columns):
        if h not in keys:
            raise tb.error(
                f"unknown column {h!r}{_suggest(h, keys)}; the routing table has "
                "exactly the columns datacenter, region, model (one allowed route "
                "per line)",
                col=c,
            )
        if h in pos:
            raise tb.error(f"column name {h!r} appears twice in the header; keep one", col=c)
        pos[h] = c
    for k in keys:
        if k not in pos:
            raise ScenarioFormatError(
                f"missing column {k!r}; the header must be datacenter,region,model",
                file=tb.label,
                line=1 if tb.csv else None,
            )
    di = _names_column(tb, pos["datacenter"], D, "datacenter", True)
    ri = _names_column(tb, pos["region"], R, "region", True)
    mi = _names_column(tb, pos["model"], M, "model", True)
    allowed = np.zeros((len(D), len(R), len(M)), dtype=bool)
    for ia, ib, ic in zip(di, ri, mi, strict=True):
        allowed[np.ix_(ia, ib, ic)] = True
    return allowed, tb


def _latency(
    tm: _Toml, doc: dict[str, Any], folder: Path, display: Path, D: list[str], R: list[str]
) -> tuple[np.ndarray | None, _Table | None, dict[str, int]]:
    spec = doc.get("latency")
    if spec is None:
        return None, None, {}
    line = tm.table_line("latency")
    if not isinstance(spec, dict) or "file" not in spec or set(spec) - {"file", "unit"}:
        raise tm.error('[latency] must be a table with file = "latency.csv" and unit = "ms"', line)
    file = _toml_str(tm, spec["file"], "[latency] file", line)
    try:
        factor = convert_unit("latency", spec.get("unit", "ms"), where="[latency] ")
    except ScenarioFormatError as exc:
        raise tm.error(str(exc), line) from None
    tb = _open(folder, display, tm, file, "[latency]", line)
    pos = _layout(tb, ["datacenter"], R, "region", R)
    rows = _names_column(tb, pos["datacenter"], D, "datacenter", False)
    lat = np.full((len(D), len(R)), np.nan)
    seen: dict[int, int] = {}
    for row, a in enumerate(rows):
        i = int(a[0])
        if i in seen:
            raise tb.error(
                f"datacenter {D[i]!r} appears twice (first on {tb.word} "
                f"{tb.lines[seen[i]]}); keep one row",
                row=row,
                col=pos["datacenter"],
            )
        seen[i] = row
    for i, n in enumerate(D):
        if i not in seen:
            raise ScenarioFormatError(
                f"no row for datacenter {n!r}; add one row per datacenter", file=tb.label
            )
    order = np.array([seen[i] for i in range(len(D))])
    for j, n in enumerate(R):
        lat[:, j] = factor(_numbers(tb, pos[n]))[order]
    return lat, tb, {D[i]: int(tb.lines[row]) for i, row in seen.items()}


# ---------------------------------------------------------------------------- value errors
_Q = r"""(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")"""


def _coord(msg: str, dim: str) -> str | None:
    m = re.search(rf"{dim} {_Q}", msg)
    if not m:
        return None
    raw = m.group(1) if m.group(1) is not None else m.group(2)
    try:
        import ast

        q = "'" if m.group(1) is not None else '"'
        return str(ast.literal_eval(q + raw + q))
    except (ValueError, SyntaxError):
        return raw


@dataclass
class _Context:
    """Where each Scenario field came from, to prefix a ScenarioError with file and line."""

    tm: _Toml
    series: dict[str, _Series]
    pue_tab: _Series | None
    pue_toml: set[str]
    cap_tab: _Table | None
    cap_cols: set[str]
    cap_lines: dict[tuple[int, int], int]
    mode: str
    routes: _Table | None
    lat: _Table | None
    lat_rows: dict[str, int]
    models: list[str]

    def relocate(self, exc: ScenarioError) -> ScenarioError:
        msg = str(exc)
        var = msg.split(" ", 1)[0]
        slot_m = re.search(r"\bslot (\d+)\b", msg)
        t = int(slot_m.group(1)) if slot_m else None
        dc, reg, mod = _coord(msg, "datacenter"), _coord(msg, "region"), _coord(msg, "model")
        tm = self.tm

        def in_table(tb: _Table, line: int | None, col: str | None) -> ScenarioError:
            num = tb.columns.index(col) + 1 if col in tb.columns else None
            return ScenarioFormatError(
                f"{msg}", file=tb.label, line=line, column=col, column_number=num, line_word=tb.word
            )

        def in_toml(line: int | None) -> ScenarioError:
            return ScenarioFormatError(msg, file=tm.label, line=line)

        def slot_line(tb: _Table) -> int | None:
            return int(tb.lines[t]) if t is not None and t < len(tb.lines) else None

        if "cannot be served" in msg:
            dem = self.series["demand"].table
            cap = self.cap_tab.label if self.cap_tab is not None else tm.label
            routes = self.routes.label if self.routes is not None else "[routing] (all allowed)"
            return ScenarioFormatError(
                f"{msg} (capacity from {cap}, routes from {routes})",
                file=dem.label,
                line=slot_line(dem),
                column=reg,
                column_number=dem.columns.index(reg) + 1 if reg in dem.columns else None,
                line_word=dem.word,
            )
        if var in ("demand", "price", "carbon_intensity", "wue", "ewif"):
            tb = self.series[var].table
            return in_table(tb, slot_line(tb), reg if var == "demand" else dc)
        if var == "time":
            return in_table(
                self.series["demand"].table, slot_line(self.series["demand"].table), "time"
            )
        if var == "pue":
            if dc is not None and dc not in self.pue_toml and self.pue_tab is not None:
                return in_table(self.pue_tab.table, slot_line(self.pue_tab.table), dc)
            return in_toml(tm.named_line("datacenter", dc, "pue") if dc else None)
        if var == "capacity":
            if dc is not None and dc in self.cap_cols and self.cap_tab is not None:
                if self.mode == "per_model" and mod in self.models and t is not None:
                    line = self.cap_lines.get((t, self.models.index(mod)))
                else:
                    line = slot_line(self.cap_tab)
                return in_table(self.cap_tab, line, dc)
            return in_toml(tm.named_line("datacenter", dc, "capacity") if dc else None)
        if var in ("energy_per_request", "capacity_per_request", "quality_loss"):
            return in_toml(tm.named_line("model", mod, var) if mod else None)
        if var == "latency" and self.lat is not None:
            row = self.lat_rows.get(dc) if dc is not None else None
            return in_table(self.lat, row, reg)
        for key in ("rtt_slo_ms", "rtt_budget_ms"):  # the region's own key in the TOML
            if key in msg.split(";")[0] and reg is not None:
                return in_toml(tm.named_line("region", reg, key))
        if var == "region" and "no allowed" in msg:
            if self.routes is not None:
                return ScenarioFormatError(msg, file=self.routes.label)
        if var == "home":
            return in_toml(tm.named_line("region", reg, "home") if reg else None)
        return in_toml(None)


# ---------------------------------------------------------------------------- writing
def _toml_key(key: str) -> str:
    return tomli_w.dumps({key: 0}).rsplit(" = 0", 1)[0]


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return (
            "{ "
            + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
            + " }"
        )
    return tomli_w.dumps({"x": value}).split(" = ", 1)[1].rstrip("\n")


def _plain(value: Any) -> Any:
    """Convert attrs values to TOML-able Python objects; raise TypeError if impossible."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if value is None:
        raise TypeError("None")
    tomli_w.dumps({"x": value})  # raises TypeError for unsupported types
    return value


def _fmt_float(v: float) -> str:
    """Shortest text that reads back to the same float (integers without '.0')."""
    if math.isfinite(v) and v.is_integer() and abs(v) < 2**53:
        return str(int(v))
    return repr(v)


def _check_names(sc: Scenario) -> None:
    key_cols = {"datacenter": ("time", "model"), "region": ("time", "datacenter")}
    for dim in ("datacenter", "region", "model"):
        for n in getattr(sc, dim + "s"):
            if n != n.strip() or "\n" in n or "\r" in n:
                raise ScenarioFormatError(
                    f"{dim} name {n!r} has surrounding whitespace or a line break; the "
                    f"scenario format strips header cells: rename the {dim}"
                )
            if n == _WILDCARD or n in key_cols.get(dim, ()):
                raise ScenarioFormatError(
                    f"{dim} name {n!r} clashes with a reserved column name or the routing "
                    f"wildcard ('time', 'model', 'datacenter', '*'); rename the {dim}"
                )


def _referenced_files(folder: Path) -> list[str]:
    """Names of the files a scenario.toml in ``folder`` refers to that lie directly in the
    folder (plain names, no path; best effort). The names are those of the folder's own
    entries: a symbolic link is named, never the file it points to."""
    try:
        text = (folder / SCENARIO_FILE).read_text(encoding="utf-8-sig")
        doc = tomllib.loads(text) if len(text) <= MAX_TABLE_BYTES else {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return []
    specs = (
        list((doc.get("timeseries") or {}).values())
        if isinstance(doc.get("timeseries"), dict)
        else []
    )
    specs += [doc.get("routing"), doc.get("latency")]
    out = []
    for s in specs:
        if isinstance(s, dict) and isinstance(s.get("file"), str):
            name = s["file"]
            if name in (".", "..", SCENARIO_FILE) or "/" in name or "\\" in name:
                continue
            entry = folder / name
            if entry.is_symlink() or entry.is_file():
                out.append(name)
    return out


def _replace_file(target: Path, write: Callable[[Path], object]) -> None:
    """Write a new file at ``target`` through a temporary file in the same folder, then
    rename it over ``target``: a symbolic link at ``target`` is replaced by the new file
    (never written through), and a failed write leaves the old file as it was."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if tmp.exists() or tmp.is_symlink():
            tmp.unlink()


def write_scenario(
    scenario: Scenario, path: str | Path, *, fmt: str = "csv", overwrite: bool = False
) -> Path:
    """Write a Scenario as a scenario folder (``scenario.toml`` + tables), canonical units.

    Parameters
    ----------
    scenario : Scenario
        The scenario to write.
    path : str or Path
        Target folder. It must not exist, be empty, or (with ``overwrite=True``) hold an
        earlier scenario folder: then only ``scenario.toml`` and the tables it names are
        replaced or removed; other files are left alone (a file of a name about to be
        written that the old ``scenario.toml`` does not name is refused, not replaced).
        Files are replaced, never written through: a symbolic link in the folder is
        replaced by a new file and what it pointed to is left untouched.
    fmt : {"csv", "parquet"}
        Table format. CSV cells hold the shortest text that reads back to the same float.
    overwrite : bool
        Allow replacing an existing scenario folder.

    Returns
    -------
    Path
        The folder written.

    Raises
    ------
    ScenarioFormatError
        Unknown ``fmt``, a non-empty folder that is not a scenario folder, an existing
        scenario without ``overwrite=True``, a file in the way that the old scenario does
        not name, or names the format cannot hold.
    """
    if fmt not in ("csv", "parquet"):
        raise ScenarioFormatError(f'fmt is {fmt!r}; use "csv" or "parquet"')
    sc = scenario
    _check_names(sc)
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ScenarioFormatError(f"{str(folder)!r} is a file; give a folder path")
    old: list[str] = []
    if folder.is_dir() and any(folder.iterdir()):
        if not (folder / SCENARIO_FILE).is_file():
            raise ScenarioFormatError(
                f"folder {str(folder)!r} is not empty and holds no {SCENARIO_FILE}; write "
                "into a new or empty folder so no unrelated file is overwritten"
            )
        if not overwrite:
            raise ScenarioFormatError(
                f"folder {str(folder)!r} already holds a scenario; pass overwrite=True to "
                "replace it, or choose a new folder"
            )
        old = _referenced_files(folder)
    ext = ".csv" if fmt == "csv" else ".parquet"
    T, N, J, K = sc.shape
    D, R, M = list(sc.datacenters), list(sc.regions), list(sc.models)
    pue = np.asarray(sc.pue)
    pue_var = [i for i in range(N) if not (pue[:, i] == pue[0, i]).all()]
    cap = np.asarray(sc.capacity)
    cap_var = [i for i in range(N) if not (cap[:, i] == cap[0, i]).all()]
    allowed = np.asarray(sc.allowed_declared)  # as given; rtt_slo_ms is written per region
    stems = ["demand", "price", "carbon_intensity", "wue", "ewif"]
    stems += (["pue"] if pue_var else []) + (["capacity"] if cap_var else [])
    stems += (["routes"] if not allowed.all() else []) + (
        ["latency"] if sc.latency is not None else []
    )
    if folder.is_dir():  # nothing is written until every target is known to be free
        for name in [s + ext for s in stems]:
            entry = folder / name
            if (entry.exists() or entry.is_symlink()) and name not in old:
                raise ScenarioFormatError(
                    f"folder {str(folder)!r} holds {name!r}, which its {SCENARIO_FILE} does "
                    "not name: it is not part of the old scenario and would be replaced; "
                    "move it away or write into a new folder"
                )
            if entry.is_dir() and not entry.is_symlink():
                raise ScenarioFormatError(
                    f"{str(entry)!r} is a folder; remove it or write into a new folder"
                )
    folder.mkdir(parents=True, exist_ok=True)
    written: list[str] = []

    def emit(stem: str, frame: pd.DataFrame) -> str:
        file = stem + ext
        if fmt == "csv":
            text = frame.copy()
            for c in text.columns:
                if pd.api.types.is_float_dtype(text[c].dtype):
                    text[c] = [_fmt_float(v) for v in text[c].tolist()]
            _replace_file(
                folder / file,
                lambda p: text.to_csv(p, index=False, encoding="utf-8", lineterminator="\n"),
            )
        else:
            _replace_file(folder / file, lambda p: frame.to_parquet(p, index=False))
        written.append(file)
        return file

    def time_col() -> Any:
        if fmt == "csv":
            return [t.isoformat() for t in sc.time]
        return sc.time

    def wide(values: np.ndarray, names: list[str]) -> pd.DataFrame:
        cols: dict[str, Any] = {"time": time_col()}
        for c, n in enumerate(names):
            cols[n] = np.asarray(values[:, c], dtype=float)
        return pd.DataFrame(cols)

    series: dict[str, tuple[str, str]] = {}
    series["demand"] = (emit("demand", wide(np.asarray(sc.demand), R)), "requests/slot")
    for key, unit in (
        ("price", "USD/kWh"),
        ("carbon_intensity", "kg/kWh"),
        ("wue", "L/kWh"),
        ("ewif", "L/kWh"),
    ):
        series[key] = (emit(key, wide(np.asarray(getattr(sc, key)), D)), unit)
    if pue_var:
        series["pue"] = (emit("pue", wide(pue[:, pue_var], [D[i] for i in pue_var])), "-")
    if cap_var:
        if sc.capacity_mode == "shared":
            frame = wide(cap[:, cap_var], [D[i] for i in cap_var])
            series["capacity"] = (emit("capacity", frame), "units/slot")
        else:
            cols: dict[str, Any] = {
                "time": np.repeat(np.asarray(time_col(), dtype=object), K)
                if fmt == "csv"
                else sc.time.repeat(K),
                "model": np.tile(np.asarray(M, dtype=object), T),
            }
            for i in cap_var:
                cols[D[i]] = cap[:, i, :].reshape(-1).astype(float)
            series["capacity"] = (emit("capacity", pd.DataFrame(cols)), "requests/slot")
    routing_file = None
    if not allowed.all():
        rows = []
        for i in range(N):
            for j in range(J):
                if allowed[i, j].all():
                    rows.append((D[i], R[j], _WILDCARD))
                else:
                    rows.extend((D[i], R[j], M[k]) for k in np.flatnonzero(allowed[i, j]))
        routing_file = emit(
            "routes", pd.DataFrame(rows, columns=["datacenter", "region", "model"], dtype=object)
        )
    latency_file = None
    if sc.latency is not None:
        lat = pd.DataFrame({"datacenter": np.asarray(D, dtype=object)})
        for j, n in enumerate(R):
            lat[n] = np.asarray(sc.latency[:, j], dtype=float)
        latency_file = emit("latency", lat)

    # scenario.toml
    kv = lambda k, v: f"{_toml_key(k)} = {_toml_value(v)}"  # noqa: E731
    out = [
        f"# eqglb scenario folder, format version {FORMAT_VERSION} "
        "(see docs/scenario-format.md); values in canonical units",
        kv("format_version", FORMAT_VERSION),
        kv("name", sc.name),
        kv("description", sc.description),
        kv("capacity_mode", sc.capacity_mode),
        "",
    ]
    for key, (file, unit) in series.items():
        out += [f"[timeseries.{key}]", kv("file", file), kv("unit", unit), ""]
    if routing_file:
        out += [
            "[routing]  # allowed (datacenter, region, model) routes; '*' = all",
            kv("file", routing_file),
            "",
        ]
    if latency_file:
        out += ["[latency]", kv("file", latency_file), kv("unit", "ms"), ""]
    coords = sc.attrs.get("coordinates", {}) if isinstance(sc.attrs, Mapping) else {}
    for i, n in enumerate(D):
        out += ["[[datacenter]]", kv("name", n)]
        if i not in pue_var:
            out.append(kv("pue", float(pue[0, i])))
        if i not in cap_var:
            if sc.capacity_mode == "shared":
                out.append(kv("capacity", float(cap[0, i])) + "  # [units/slot]")
            else:
                out.append(
                    kv("capacity", {m: float(cap[0, i, k]) for k, m in enumerate(M)})
                    + "  # [requests/slot]"
                )
        out += [kv(k, v) for k, v in _coords_of(coords, "datacenter", n).items()] + [""]
    for j, n in enumerate(R):
        out += ["[[region]]", kv("name", n)]
        if sc.home is not None:
            out.append(kv("home", sc.home[j]))
        for key in ("rtt_slo_ms", "rtt_budget_ms"):
            lim = getattr(sc, key)
            if lim is not None and np.isfinite(lim[j]):
                out.append(kv(key, float(lim[j])) + "  # [ms]")
        out += [kv(k, v) for k, v in _coords_of(coords, "region", n).items()] + [""]
    eps = np.asarray(sc.energy_per_request)
    for k, m in enumerate(M):
        e = eps[:, k]
        ev: Any = float(e[0]) if (e == e[0]).all() else {n: float(e[i]) for i, n in enumerate(D)}
        out += [
            "[[model]]",
            kv("name", m),
            kv("energy_per_request", ev),
            kv("energy_unit", "kWh"),
            kv("capacity_per_request", float(sc.capacity_per_request[k])) + "  # [units/request]",
            kv("quality_loss", float(sc.quality_loss[k])),
            "",
        ]
    attrs: dict[str, Any] = {}
    skipped: list[str] = []
    for key, value in (sc.attrs or {}).items():
        if key == "coordinates":
            continue
        try:
            attrs[str(key)] = _plain(value)
        except TypeError:
            skipped.append(str(key))
    if attrs:
        out += [tomli_w.dumps({"attrs": attrs}).rstrip("\n")]
    if skipped:
        out += [f"# attrs not written (no TOML form): {', '.join(skipped)}"]
    body = "\n".join(out).rstrip("\n") + "\n"
    _replace_file(folder / SCENARIO_FILE, lambda p: p.write_text(body, encoding="utf-8"))
    for name in old:
        entry = folder / name
        if name not in written and (entry.is_symlink() or entry.is_file()):
            entry.unlink()  # a link is removed, not what it points to
    return folder


def _coords_of(coords: Any, kind: str, name: str) -> dict[str, float]:
    try:
        c = coords[kind][name]
        return {k: float(c[k]) for k in ("lat", "lon") if k in c}
    except (KeyError, TypeError, ValueError):
        return {}
