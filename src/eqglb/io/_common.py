"""Shared CSV helpers for the real-data loaders: read, parse, check, and fail loudly.

Every loader in :mod:`eqglb.io` reads text files through :func:`read_table` so that each
data row keeps the 1-based line number it has in the file. Any defect found later (an
unparsable time stamp, a bad number, a duplicated or missing hour) is reported with a
:class:`DataFormatError` naming the file, the line, the column and the fix.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from eqglb.scenario import ScenarioError

__all__ = [
    "DataFormatError",
    "Table",
    "check_regular",
    "parse_numbers",
    "parse_times",
    "read_table",
    "require_columns",
    "split_unit",
]

PathLike = str | os.PathLike[str]

#: Cell texts that mean "no value" in the formats read here (IEM writes ``M``).
MISSING_TOKENS = ("", "M", "NA", "NaN", "nan", "null", "NULL", "None")


class DataFormatError(ScenarioError):
    """A data file is malformed.

    The message names the file, the 1-based line number in the file (when known), the
    column (when known), what is wrong and how to fix it. The same facts are kept as
    attributes ``path``, ``line``, ``column``.
    """

    def __init__(self, path: PathLike, problem: str, fix: str, *, line: int | None = None,
                 column: str | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.column = column
        where = self.path
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {problem}; {fix}")


@dataclass(frozen=True)
class Table:
    """A CSV file read as text.

    Attributes
    ----------
    path : pathlib.Path
        The file.
    frame : pandas.DataFrame
        All cells as stripped strings; columns are the header names with surrounding
        whitespace removed.
    lines : numpy.ndarray of int
        For each row of ``frame``, its 1-based line number in the file.
    raw_columns : list of str
        The header names exactly as written (e.g. ``' WUE (L/kWh)'``).
    header_line : int
        1-based line number of the header.
    """

    path: Path
    frame: pd.DataFrame
    lines: np.ndarray
    raw_columns: list[str]
    header_line: int

    def line_of(self, row: int) -> int:
        """1-based line number in the file of data row ``row`` (0-based)."""
        return int(self.lines[row])


def read_table(path: PathLike, *, what: str = "data file", comment: str | None = "#",
               encoding: str = "utf-8-sig") -> Table:
    """Read a comma-separated file into strings, keeping each row's line number.

    Parameters
    ----------
    path : str or path-like
        The CSV file.
    what : str
        What the file is (used in error messages, e.g. ``"EIA-930 BALANCE file"``).
    comment : str or None
        Lines starting with this prefix (after leading whitespace) are skipped, e.g. the
        ``#DEBUG`` lines of IEM downloads. Blank lines are always skipped.
    encoding : str
        Text encoding (``utf-8-sig`` also accepts a byte-order mark).

    Returns
    -------
    Table

    Raises
    ------
    DataFormatError
        The file is missing, unreadable, empty, or a row has more fields than the header.
    """
    p = Path(path)
    if not p.is_file():
        raise DataFormatError(p, f"{what} not found",
                              "check the path (and that the data folder is where expected)")
    try:
        text = p.read_text(encoding=encoding)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(p, f"cannot read {what} ({exc})",
                              f"give a readable {encoding} text file") from exc
    all_lines = text.splitlines()
    keep: list[int] = []
    for i, line in enumerate(all_lines):
        s = line.strip()
        if not s or (comment is not None and s.startswith(comment)):
            continue
        keep.append(i)
    if not keep:
        raise DataFormatError(p, f"{what} is empty (no header line)",
                              "give a CSV file with a header line and data rows")
    body = "\n".join(all_lines[i] for i in keep)
    try:
        frame = pd.read_csv(io.StringIO(body), dtype=str, keep_default_na=False,
                            na_filter=False, skipinitialspace=False)
    except pd.errors.ParserError as exc:
        m = re.search(r"line (\d+)", str(exc))
        line = keep[int(m.group(1)) - 1] + 1 if m and int(m.group(1)) <= len(keep) else None
        raise DataFormatError(p, f"a row does not split into the header's columns ({exc})",
                              "make every row have as many comma-separated fields as the "
                              "header (quote values that contain commas)", line=line) from exc
    raw_columns = [str(c) for c in frame.columns]
    frame.columns = [c.strip() for c in raw_columns]
    if frame.columns.duplicated().any():
        dup = frame.columns[frame.columns.duplicated()][0]
        raise DataFormatError(p, f"column {dup!r} appears twice in the header",
                              "keep one column of each name", line=keep[0] + 1)
    frame = frame.apply(lambda col: col.str.strip())
    if len(frame) == len(keep) - 1:
        lines = np.asarray(keep[1:], dtype=int) + 1
    else:  # quoted fields spanning lines: fall back to counting records after the header
        lines = keep[0] + 2 + np.arange(len(frame))
    return Table(path=p, frame=frame, lines=lines, raw_columns=raw_columns,
                 header_line=keep[0] + 1)


_UNIT_RE = re.compile(r"^(?P<name>.*?)\s*\((?P<unit>[^()]*)\)\s*$")


def split_unit(column: str) -> tuple[str, str | None]:
    """Split ``'Price (USD/MWh)'`` into ``('Price', 'USD/MWh')``; no unit gives ``None``."""
    m = _UNIT_RE.match(column.strip())
    if m is None:
        return column.strip(), None
    return m.group("name").strip(), m.group("unit").strip()


def require_columns(table: Table, required: Sequence[str], *, what: str = "data file",
                    fix: str | None = None) -> None:
    """Check that every required column is in the header, comparing names case-insensitively
    after stripping whitespace.

    A column whose name matches but whose unit in brackets differs (e.g. ``Price (EUR/MWh)``
    where ``Price (USD/MWh)`` is expected) is reported as a unit mismatch.

    Raises
    ------
    DataFormatError
        Naming the file, the header line, the missing column and the columns found.
    """
    have = {c.lower(): c for c in table.frame.columns}
    for col in required:
        if col.lower() in have:
            continue
        name, unit = split_unit(col)
        for c in table.frame.columns:
            n2, u2 = split_unit(c)
            if unit is not None and u2 is not None and n2.lower() == name.lower() and u2 != unit:
                raise DataFormatError(
                    table.path, f"unit mismatch: column {c!r} is in {u2!r}, expected {unit!r}",
                    f"convert the column to {unit} and name it {col!r}",
                    line=table.header_line, column=c)
        raise DataFormatError(
            table.path, f"{what} has no column {col!r} (columns found: {list(table.frame.columns)})",
            fix or f"give the file a {col!r} column as in the published format",
            line=table.header_line)


def _column(table: Table, column: str) -> pd.Series:
    low = {c.lower(): c for c in table.frame.columns}
    return table.frame[low[column.lower()]]


def parse_times(table: Table, column: str, formats: str | Sequence[str], *,
                tz: str = "UTC", rows: np.ndarray | None = None) -> pd.DatetimeIndex:
    """Parse a time-stamp column into a UTC :class:`pandas.DatetimeIndex`.

    Parameters
    ----------
    table : Table
    column : str
        Column name (case-insensitive).
    formats : str or sequence of str
        ``strftime`` formats tried in order (``"ISO8601"`` allowed); the first one that
        parses every non-empty cell is used.
    tz : str
        Time zone of naive stamps (stamps with an offset are converted).
    rows : array of int or None
        Parse only these rows (0-based positions in ``table.frame``).

    Raises
    ------
    DataFormatError
        Naming the first line whose stamp is empty or does not parse.
    """
    s = _column(table, column)
    idx = np.arange(len(s)) if rows is None else np.asarray(rows)
    values = s.to_numpy()[idx]
    if isinstance(formats, str):
        formats = [formats]
    empty = np.array([v == "" for v in values], dtype=bool)
    if empty.any():
        r = int(idx[np.flatnonzero(empty)[0]])
        raise DataFormatError(table.path, "time stamp is empty", "fill in the time stamp or "
                              "drop the row", line=table.line_of(r), column=column)
    best: pd.DatetimeIndex | None = None
    first_bad: int | None = None
    for fmt in formats:
        parsed = pd.to_datetime(pd.Series(values), format=fmt, errors="coerce", utc=False)
        bad = parsed.isna().to_numpy()
        if not bad.any():
            best = pd.DatetimeIndex(parsed)
            break
        fb = int(np.flatnonzero(bad)[0])
        first_bad = fb if first_bad is None else max(first_bad, fb)
    if best is None:
        assert first_bad is not None
        r = int(idx[first_bad])
        raise DataFormatError(
            table.path, f"time stamp {values[first_bad]!r} does not parse",
            f"write it in the file's format ({' or '.join(repr(f) for f in formats)})",
            line=table.line_of(r), column=column)
    if best.tz is None:
        best = best.tz_localize(tz)
    return best.tz_convert("UTC")


def parse_numbers(table: Table, column: str, *, rows: np.ndarray | None = None,
                  thousands: bool = False, missing: Iterable[str] = (),
                  allow_missing: bool = False) -> np.ndarray:
    """Parse a numeric column into floats.

    Parameters
    ----------
    table : Table
    column : str
        Column name (case-insensitive).
    rows : array of int or None
        Parse only these rows (0-based positions in ``table.frame``).
    thousands : bool
        Accept thousands separators (``"1,234"``).
    missing : iterable of str
        Cell texts that mean "no value" (returned as NaN), in addition to the empty cell.
    allow_missing : bool
        Whether missing cells are allowed; if not, the first one raises.

    Raises
    ------
    DataFormatError
        Naming the first line whose cell is not a number (or is missing when not allowed).
    """
    s = _column(table, column)
    if rows is not None:
        s = s.iloc[np.asarray(rows)]
        idx = np.asarray(rows)
    else:
        idx = np.arange(len(s))
    text = s.str.replace(",", "", regex=False) if thousands else s
    miss = text.isin(["", *missing]).to_numpy()
    vals = pd.to_numeric(text.where(~miss), errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(vals) & ~miss
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataFormatError(table.path, f"value {s.iloc[k]!r} is not a number",
                              "write a plain decimal number"
                              + (" (or leave it empty if missing)" if allow_missing else ""),
                              line=table.line_of(int(idx[k])), column=column)
    if miss.any() and not allow_missing:
        k = int(np.flatnonzero(miss)[0])
        raise DataFormatError(table.path, f"value is missing ({s.iloc[k]!r})",
                              "fill it in (this loader needs every value)",
                              line=table.line_of(int(idx[k])), column=column)
    return vals


def check_regular(where: Table | Sequence[tuple[PathLike, int]], times: pd.DatetimeIndex, *,
                  step: str | pd.Timedelta = "1h", rows: np.ndarray | None = None,
                  column: str | None = None, label: str = "") -> None:
    """Check that time stamps are sorted, unique and evenly spaced by ``step``.

    Parameters
    ----------
    where : Table or sequence of (path, line)
        Where the stamps come from: a table (with ``rows``), or for stamps gathered from
        several files, the (file, 1-based line) of each stamp.
    times : pandas.DatetimeIndex
        Parsed stamps, one per row.
    step : str or Timedelta
        Expected spacing (``"1h"`` for hourly data).
    rows : array of int or None
        Row positions in the table the stamps belong to (default all rows).
    column : str or None
        Time column name (for the message).
    label : str
        Extra context such as ``"balancing authority 'ERCO'"``.

    Raises
    ------
    DataFormatError
        Naming the line of a duplicated stamp (and the earlier line with the same stamp),
        of a stamp out of order, or the two lines around a missing slot.
    """
    step = pd.Timedelta(step)
    if isinstance(where, Table):
        table = where
        idx = np.arange(len(times)) if rows is None else np.asarray(rows)

        def loc(k: int) -> tuple[PathLike, int]:
            return table.path, table.line_of(int(idx[k]))
    else:
        places = list(where)

        def loc(k: int) -> tuple[PathLike, int]:
            return places[k]
    ctx = f" ({label})" if label else ""
    if len(times) < 2:
        return
    v = times.as_unit("ns").asi8
    dup = pd.Index(v).duplicated()
    if dup.any():
        k = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero(v == v[k])[0])
        fp, fl = loc(first)
        p, ln = loc(k)
        also = f"line {fl}" if fp == p else f"{fp} line {fl}"
        raise DataFormatError(
            p, f"duplicated time {times[k]:%Y-%m-%d %H:%M} UTC{ctx}, also on {also}",
            "keep one row per time slot", line=ln, column=column)
    d = np.diff(v)
    back = np.flatnonzero(d < 0)
    if back.size:
        k = int(back[0]) + 1
        p, ln = loc(k)
        raise DataFormatError(
            p, f"time {times[k]:%Y-%m-%d %H:%M} UTC comes after "
            f"{times[k - 1]:%Y-%m-%d %H:%M}{ctx}", "sort the rows by time", line=ln,
            column=column)
    gap = np.flatnonzero(d != step.value)
    if gap.size:
        k = int(gap[0])
        missing = pd.date_range(times[k] + step, times[k + 1] - step, freq=step)
        if len(missing) and (d[k] % step.value) == 0:
            what = (f"{len(missing)} missing slot(s) from {missing[0]:%Y-%m-%d %H:%M} UTC "
                    f"to {missing[-1]:%Y-%m-%d %H:%M} UTC{ctx}")
        else:
            what = (f"uneven step {pd.Timedelta(int(d[k]))} between "
                    f"{times[k]:%Y-%m-%d %H:%M} and {times[k + 1]:%Y-%m-%d %H:%M} UTC{ctx}, "
                    f"expected {step}")
        p0, l0 = loc(k)
        p, ln = loc(k + 1)
        before = f"line {l0}" if p0 == p else f"{p0} line {l0}"
        raise DataFormatError(
            p, f"{what} (between {before} and this line)",
            "fill the missing time slots (one row per slot) or cut the file before the gap",
            line=ln, column=column)
