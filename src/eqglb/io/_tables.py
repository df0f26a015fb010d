"""The tables of a scenario folder (CSV or Parquet), read with the line of every row.

:mod:`eqglb.io.scenario_format` reads its time series, routing and latency tables through
:func:`read_table` and the checks here, so that every defect (an unparsable time stamp, a
bad number, a missing or unknown column, a gap in time) is a :class:`ScenarioFormatError`
naming the file, the line (1-based, the header is line 1) or Parquet row, the column and
the fix.
"""

from __future__ import annotations

import difflib
import io
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from eqglb.io._common import MAX_MAGNITUDE, TIME_RANGE, first_out_of_range, read_bytes_limited
from eqglb.scenario import ScenarioError

#: Name of the TOML file of a scenario folder.
SCENARIO_FILE = "scenario.toml"
#: Default cap on the (decompressed) size of one table or of scenario.toml [bytes].
MAX_TABLE_BYTES = 256 * 2**20
#: Default cap on the rows of one table [rows] (a year of 1-minute slots is 525,600).
MAX_TABLE_ROWS = 1_000_000
_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
#: The routing table's "all names" cell.
WILDCARD = "*"


class ScenarioFormatError(ScenarioError):
    """A scenario file is malformed or holds an invalid value.

    The message names the file, the line (or Parquet row), the column, what is wrong and
    the fix; the same facts are attributes.

    Attributes
    ----------
    file : str or None
        Path of the offending file as given by the user.
    line : int or None
        1-based line (CSV/TOML, the header is line 1) or row (Parquet) of the problem.
    column : str, int or None
        Column name (tables) or 1-based character column (TOML syntax errors).
    column_number : int or None
        1-based position of a named column.
    field : str or None
        Scenario field, or dotted key of scenario.toml (``"datacenter.1.pue"``).
    coordinate : dict dim -> int
        Position of the offending value (``{"time": 5, "datacenter": 0}``), when known.
    problem, fix : str
        What is wrong, and how to fix it (``fix`` may be None when the problem says it).
    """

    def __init__(
        self,
        problem: str,
        *,
        fix: str | None = None,
        file: str | None = None,
        line: int | None = None,
        column: str | int | None = None,
        column_number: int | None = None,
        line_word: str = "line",
        field: str | None = None,
        coordinate: Mapping[str, int] | None = None,
    ) -> None:
        self.problem, self.file, self.line, self.column = problem, file, line, column
        self.column_number = column_number
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
        text = f"{problem}; {fix}" if fix else problem
        super().__init__(
            f"{', '.join(loc)}: {text}" if loc else text,
            field=field,
            coordinate=coordinate,
            fix=fix,
        )


def suggest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass
class Table:
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


def read_table(
    path: Path,
    label: str,
    missing: Callable[[str], ScenarioFormatError],
    *,
    max_bytes: int = MAX_TABLE_BYTES,
    max_rows: int = MAX_TABLE_ROWS,
    field: str | None = None,
) -> Table:
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
        return Table(label, header, body.reset_index(drop=True), lines, csv=True)
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
    return Table(label, header, frame, np.arange(1, len(frame) + 1), csv=False)


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


def layout(
    tb: Table,
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
            near = suggest(k, list(pos))
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
                f"{suggest(h, names)}; known {dim}s: {list(names)}; rename the "
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


def numbers(tb: Table, col: int) -> np.ndarray:
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


def _bounded(tb: Table, col: int, vals: np.ndarray, text: pd.Series | None = None) -> np.ndarray:
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


def times(tb: Table, col: int) -> pd.DatetimeIndex:
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
    tb: Table, t: pd.DatetimeIndex, col: int, text: pd.Series | None = None
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


def check_reference_time(tb: Table, t: pd.DatetimeIndex, col: int) -> None:
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


def check_same_time(
    tb: Table, t: pd.DatetimeIndex, col: int, ref: Table, ref_t: pd.DatetimeIndex
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


def names_column(
    tb: Table, col: int, known: list[str], dim: str, wildcard: bool
) -> list[np.ndarray]:
    """Per row, the indices the cell names ('*' = all when ``wildcard``)."""
    out: list[np.ndarray] = []
    idx = {n: i for i, n in enumerate(known)}
    for row, v in enumerate(tb.cells[col].tolist()):
        cell = "" if v is None else str(v).strip()
        if wildcard and cell == WILDCARD:
            out.append(np.arange(len(known)))
        elif cell in idx:
            out.append(np.array([idx[cell]]))
        else:
            hint = " or '*' for all" if wildcard else ""
            if cell == "":
                raise tb.error(f"empty cell; write a {dim} name{hint}", row=row, col=col)
            raise tb.error(
                f"{cell!r} is not a {dim} of scenario.toml{suggest(cell, known)}; "
                f"known {dim}s: {known}{hint}",
                row=row,
                col=col,
            )
    return out
