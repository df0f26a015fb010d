"""Shared CSV helpers for the real-data loaders: read, parse, check, and fail loudly.

Every loader in :mod:`eqglb.io` reads text files through :func:`read_table` so that each
data row keeps the 1-based line number it has in the file. Any defect found later (an
unparsable time stamp, a bad number, a duplicated or missing hour) is reported with a
:class:`DataFormatError` naming the file, the line, the column and the fix.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eqglb.scenario import ScenarioError

__all__ = [
    "MAX_BYTES",
    "MAX_LINES",
    "MAX_MAGNITUDE",
    "TIME_RANGE",
    "DataFormatError",
    "Places",
    "Table",
    "check_regular",
    "first_out_of_range",
    "parse_numbers",
    "parse_times",
    "read_table",
    "column_name",
    "require_columns",
    "split_unit",
    "text_column",
]

PathLike = str | os.PathLike[str]

#: Largest (decompressed) size of one text file read [bytes]: beyond it a file is refused
#: before it is parsed, so that a small compressed "bomb" cannot exhaust memory.
MAX_BYTES = 1 << 30
#: Largest number of lines (header, data, blank and comment lines) of one text file.
MAX_LINES = 20_000_000

#: Largest magnitude of a number read [unit of its column]: beyond it the products of the
#: cost model (demand x energy x intensity, their squares and norms) can overflow float64.
MAX_MAGNITUDE = 1e15

#: Compression of a file, from the end of its name (as pandas infers it).
_COMPRESSION = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zip": "zip", ".zst": "zstd"}
_CHUNK = 1 << 20  # bytes decompressed per step [bytes]

#: Cell texts that mean "no value" in the formats read here (IEM writes ``M``).
MISSING_TOKENS = ("", "M", "NA", "NaN", "nan", "null", "NULL", "None")


class DataFormatError(ScenarioError):
    """A data file is malformed.

    The message names the file, the 1-based line number in the file (when known), the
    column (when known), what is wrong and how to fix it. The same facts are kept as
    attributes ``path``, ``line``, ``column``.
    """

    def __init__(
        self,
        path: PathLike,
        problem: str,
        fix: str,
        *,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = str(path)
        self.line = line
        self.column = column
        where = self.path
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {problem}; {fix}")


def compression_of(path: PathLike) -> str | None:
    """The compression named by the end of the file name (``.gz``, ``.bz2``, ``.xz``,
    ``.zip``, ``.zst``), or None for a plain file."""
    low = str(path).lower()
    return next((c for suffix, c in _COMPRESSION.items() if low.endswith(suffix)), None)


def read_bytes_limited(
    path: PathLike,
    fail: Callable[[str, str], Exception],
    *,
    max_bytes: int = MAX_BYTES,
    max_lines: int | None = MAX_LINES,
    what: str = "file",
) -> bytes:
    """The content of a plain or compressed file, refusing it past a size or line cap.

    Compressed files (by name: ``.gz``, ``.bz2``, ``.xz``, ``.zip`` with one member,
    ``.zst``) are decompressed step by step, so a small file that would decompress to
    gigabytes is refused after at most ``max_bytes`` [bytes] (or ``max_lines`` lines) are
    produced, not after memory is exhausted.

    Parameters
    ----------
    path : path-like
        The file.
    fail : callable
        ``fail(problem, fix)`` builds the exception raised (it names the file).
    max_bytes : int
        Largest decompressed size accepted [bytes].
    max_lines : int or None
        Largest number of line breaks accepted (None: no cap).
    what : str
        What the file is, for messages.

    Raises
    ------
    Exception
        What ``fail`` returns: the file is unreadable, not a valid file of its
        compression, truncated, or over a cap.
    """
    p = Path(path)
    comp = compression_of(p)
    label = {
        "gzip": "gzip (.gz)",
        "bzip2": "bzip2 (.bz2)",
        "xz": "xz (.xz)",
        "zip": "zip (.zip)",
        "zstd": "zstandard (.zst)",
    }.get(comp or "", "")

    def over(size: str) -> Exception:
        return fail(
            f"{what} is larger than the cap of {size}" + (" once decompressed" if comp else ""),
            "give a smaller file (split it or cut the horizon), or raise the cap "
            "(max_bytes / max_rows) if the file is genuine",
        )

    try:
        if comp is None:
            size = p.stat().st_size
            if size > max_bytes:
                raise over(f"{max_bytes:,} bytes (it has {size:,})")
            stream: Any = open(p, "rb")  # noqa: SIM115 - closed below
        elif comp == "gzip":
            stream = gzip.open(p, "rb")
        elif comp == "bzip2":
            stream = bz2.open(p, "rb")
        elif comp == "xz":
            stream = lzma.open(p, "rb")
        elif comp == "zip":
            with zipfile.ZipFile(p) as zf:
                members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) != 1:
                raise fail(
                    f"zip archive holds {len(members)} files ({[m.filename for m in members][:5]})",
                    "put exactly one CSV file in the .zip archive",
                )
            zf = zipfile.ZipFile(p)
            stream = _ClosingMember(zf, zf.open(members[0]))
        else:
            try:
                import zstandard
            except ImportError:
                raise fail(
                    "reading .zst files needs the zstandard package",
                    "install it (pip install zstandard) or recompress the file with gzip",
                ) from None
            raw = open(p, "rb")  # noqa: SIM115 - closed with the reader
            stream = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        with stream:
            chunks: list[bytes] = []
            total = lines = 0
            while True:
                b = stream.read(_CHUNK)
                if not b:
                    break
                total += len(b)
                if total > max_bytes:
                    raise over(f"{max_bytes:,} bytes")
                if max_lines is not None:
                    lines += b.count(b"\n")
                    if lines > max_lines:
                        raise fail(
                            f"{what} has more than {max_lines:,} lines"
                            + (" once decompressed" if comp else ""),
                            "give a smaller file (split it or cut the horizon), or "
                            "raise the cap (max_rows) if the file is genuine",
                        )
                chunks.append(b)
        return b"".join(chunks)
    except EOFError as exc:
        raise fail(
            f"{label} file is truncated ({exc})",
            "the file was cut short (e.g. an incomplete download or copy): fetch or write it again",
        ) from None
    except (
        zipfile.BadZipFile,
        zlib.error,
        lzma.LZMAError,
        NotImplementedError,
        RuntimeError,
    ) as exc:
        raise fail(
            f"not a valid {label} file ({type(exc).__name__}: {exc})",
            f"give a {label} file, or drop the {p.suffix} ending if it is plain text",
        ) from None
    except OSError as exc:
        if exc.errno is None and comp is not None:  # a bad stream, e.g. BadGzipFile
            raise fail(
                f"not a valid {label} file ({type(exc).__name__}: {exc})",
                f"give a {label} file, or drop the {p.suffix} ending if it is plain text",
            ) from None
        raise fail(
            f"cannot read {what} ({type(exc).__name__}: {exc})", "check that it is a readable file"
        ) from None
    except Exception as exc:
        if type(exc).__module__.startswith("zstd"):  # zstandard.ZstdError
            raise fail(f"not a valid {label} file ({exc})", "give a zstandard file") from None
        raise


class _ClosingMember(io.RawIOBase):
    """A zip member that closes its archive with it."""

    def __init__(self, zf: zipfile.ZipFile, member: Any) -> None:
        self._zf, self._member = zf, member

    def read(self, n: int = -1) -> bytes:
        return self._member.read(n)

    def close(self) -> None:
        try:
            self._member.close()
            self._zf.close()
        finally:
            super().close()


@dataclass(frozen=True)
class Table:
    """A CSV file read as text.

    Attributes
    ----------
    path : pathlib.Path
        The file.
    frame : pandas.DataFrame
        All cells as strings (leading spaces dropped; use :func:`text_column` for fully
        stripped text); columns are the header names with surrounding whitespace removed.
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


def read_table(
    path: PathLike,
    *,
    what: str = "data file",
    comment: str | None = "#",
    encoding: str = "utf-8-sig",
    require_rows: bool = True,
    max_bytes: int = MAX_BYTES,
    max_lines: int | None = MAX_LINES,
) -> Table:
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
    require_rows : bool
        Whether a file with a header but no data rows is an error.
    max_bytes : int
        Largest (decompressed) file size accepted [bytes] (default :data:`MAX_BYTES`).
    max_lines : int or None
        Largest number of lines accepted (default :data:`MAX_LINES`; None: no cap).

    Returns
    -------
    Table

    Raises
    ------
    DataFormatError
        The file is missing, unreadable, corrupt or truncated (compressed files, by
        name: ``.gz``, ``.bz2``, ``.xz``, ``.zip``, ``.zst``), over a size or line cap, or
        empty, or a row has a different number of fields than the header (named by line).
    """
    p = Path(path)
    if not p.is_file():
        raise DataFormatError(
            p, f"{what} not found", "check the path (and that the data folder is where expected)"
        )
    data = read_bytes_limited(
        p,
        lambda problem, fix: DataFormatError(p, problem, fix),
        max_bytes=max_bytes,
        max_lines=max_lines,
        what=what,
    )
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            p, f"cannot read {what} ({exc})", f"give a readable {encoding} text file"
        ) from None
    del data
    all_lines = text.splitlines()
    skip = " \t" + (comment[0] if comment else "")

    def keep(line: str) -> bool:
        if not line or line[0] in skip:  # fast path: most lines start with data
            st = line.strip()
            return bool(st) and not (comment is not None and st.startswith(comment))
        return True

    kept = [i for i, line in enumerate(all_lines) if keep(line)]
    body_lines = [all_lines[i] for i in kept]
    try:
        records = list(csv.reader(body_lines, skipinitialspace=True))
        if len(records) == len(body_lines):  # one record per line (no quoted line breaks)
            starts = [i + 1 for i in kept]
        else:
            reader = csv.reader(body_lines, skipinitialspace=True)
            records, starts, consumed = [], [], 0
            for rec in reader:
                starts.append(kept[consumed] + 1)
                consumed = reader.line_num
                records.append(rec)
    except csv.Error as exc:
        raise DataFormatError(
            p, f"cannot split a row into fields ({exc})", "fix the quoting of the rows"
        ) from exc
    if not records:
        raise DataFormatError(
            p,
            f"{what} is empty (no header line)",
            "give a CSV file with a header line and data rows",
        )
    raw_columns = records[0]
    n = len(raw_columns)
    for rec, line in zip(records[1:], starts[1:], strict=True):
        if len(rec) != n:
            raise DataFormatError(
                p,
                f"row has {len(rec)} fields but the header has {n}",
                "give every row one value per header column (quote values that contain commas)",
                line=line,
            )
    columns = [c.strip() for c in raw_columns]
    seen: set[str] = set()
    for c in columns:
        if c.lower() in seen:
            raise DataFormatError(
                p,
                f"column {c!r} appears twice in the header",
                "keep one column of each name",
                line=starts[0],
            )
        seen.add(c.lower())
    if require_rows and len(records) < 2:
        raise DataFormatError(
            p,
            f"{what} has a header but no data rows",
            "give the data rows after the header",
            line=starts[0],
        )
    body = np.array(records[1:], dtype=object).reshape(len(records) - 1, n)
    frame = pd.DataFrame(body, columns=columns, dtype=object)
    return Table(
        path=p,
        frame=frame,
        lines=np.asarray(starts[1:], dtype=int),
        raw_columns=raw_columns,
        header_line=starts[0],
    )


_UNIT_RE = re.compile(r"^(?P<name>.*?)\s*\((?P<unit>[^()]*)\)\s*$")


def split_unit(column: str) -> tuple[str, str | None]:
    """Split ``'Price (USD/MWh)'`` into ``('Price', 'USD/MWh')``; no unit gives ``None``."""
    m = _UNIT_RE.match(column.strip())
    if m is None:
        return column.strip(), None
    return m.group("name").strip(), m.group("unit").strip()


def require_columns(
    table: Table, required: Sequence[str], *, what: str = "data file", fix: str | None = None
) -> None:
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
                    table.path,
                    f"unit mismatch: column {c!r} is in {u2!r}, expected {unit!r}",
                    f"convert the column to {unit} and name it {col!r}",
                    line=table.header_line,
                    column=c,
                )
        raise DataFormatError(
            table.path,
            f"{what} has no column {col!r} (columns found: {list(table.frame.columns)})",
            fix or f"give the file a {col!r} column as in the published format",
            line=table.header_line,
        )


def column_name(table: Table, column: str) -> str:
    """The table's spelling of ``column`` (matched case-insensitively)."""
    low = {c.lower(): c for c in table.frame.columns}
    try:
        return low[column.lower()]
    except KeyError:
        raise DataFormatError(
            table.path,
            f"no column {column!r}",
            f"give the file a {column!r} column",
            line=table.header_line,
        ) from None


def text_column(table: Table, column: str, rows: np.ndarray | None = None) -> np.ndarray:
    """Cells of a column (optionally only ``rows``) as stripped strings (object array)."""
    values = table.frame[column_name(table, column)].to_numpy()
    if rows is not None:
        values = values[np.asarray(rows)]
    return np.array([v.strip() for v in values], dtype=object)


def parse_times(
    table: Table,
    column: str,
    formats: str | Sequence[str],
    *,
    tz: str = "UTC",
    rows: np.ndarray | None = None,
) -> pd.DatetimeIndex:
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
        Naming the first line whose stamp is empty, does not parse or lies outside
        :data:`TIME_RANGE`.
    """
    idx = np.arange(len(table.frame)) if rows is None else np.asarray(rows)
    values = text_column(table, column, idx)
    if isinstance(formats, str):
        formats = [formats]
    empty = np.array([v == "" for v in values], dtype=bool)
    if empty.any():
        r = int(idx[np.flatnonzero(empty)[0]])
        raise DataFormatError(
            table.path,
            "time stamp is empty",
            "fill in the time stamp or drop the row",
            line=table.line_of(r),
            column=column,
        )
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
            table.path,
            f"time stamp {values[first_bad]!r} does not parse",
            f"write it in the file's format ({' or '.join(repr(f) for f in formats)})",
            line=table.line_of(r),
            column=column,
        )
    out_of_range = first_out_of_range(best)
    if out_of_range is not None:
        r = int(idx[out_of_range])
        raise DataFormatError(
            table.path,
            f"time stamp {values[out_of_range]!r} is outside the supported "
            f"range {TIME_RANGE[0]:%Y-%m-%d} .. {TIME_RANGE[1]:%Y-%m-%d}",
            "check the year of the stamp",
            line=table.line_of(r),
            column=column,
        )
    if best.tz is None:
        best = best.tz_localize(tz)
    return best.tz_convert("UTC")


#: Earliest and latest time stamps accepted (those of 64-bit nanosecond times, which
#: the time arithmetic of pandas needs) [UTC].
TIME_RANGE = (pd.Timestamp("1677-09-22"), pd.Timestamp("2262-04-10"))


def first_out_of_range(times: pd.DatetimeIndex) -> int | None:
    """Position of the first stamp outside :data:`TIME_RANGE`, or None."""
    naive = times.tz_convert(None) if times.tz is not None else times
    bad = (naive < TIME_RANGE[0]) | (naive > TIME_RANGE[1])
    hit = np.flatnonzero(np.asarray(bad))
    return int(hit[0]) if hit.size else None


def parse_numbers(
    table: Table,
    column: str,
    *,
    rows: np.ndarray | None = None,
    thousands: bool = False,
    missing: Iterable[str] = (),
    allow_missing: bool = False,
    max_abs: float | None = MAX_MAGNITUDE,
) -> np.ndarray:
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
    max_abs : float or None
        Largest magnitude accepted [unit of the column] (default :data:`MAX_MAGNITUDE`):
        larger values overflow the products of the cost model; None: no cap.

    Raises
    ------
    DataFormatError
        Naming the first line whose cell is not a number (or is missing when not allowed,
        or is infinite or beyond ``max_abs``).
    """
    idx = np.arange(len(table.frame)) if rows is None else np.asarray(rows)
    raw = table.frame[column_name(table, column)].to_numpy()[idx]
    text = [v.replace(",", "") for v in raw] if thousands else raw
    vals = pd.to_numeric(pd.Series(text, dtype=object), errors="coerce").to_numpy(dtype=float)
    # only cells that are not numbers need a closer look: missing tokens or bad text
    tokens = {"", *missing}
    miss = np.zeros(len(vals), dtype=bool)
    nan_at = np.flatnonzero(np.isnan(vals))
    for kk in nan_at:
        k = int(kk)
        cell = raw[k].strip()
        if cell in tokens:
            miss[k] = True
        elif cell.lower() != "nan":
            raise DataFormatError(
                table.path,
                f"value {cell!r} is not a number",
                "write a plain decimal number"
                + (" (or leave it empty if missing)" if allow_missing else ""),
                line=table.line_of(int(idx[k])),
                column=column,
            )
        else:
            miss[k] = True
    inf = np.flatnonzero(np.isinf(vals))
    if inf.size:
        k = int(inf[0])
        raise DataFormatError(
            table.path,
            f"value {raw[k].strip()!r} is not finite",
            "write a finite number",
            line=table.line_of(int(idx[k])),
            column=column,
        )
    if max_abs is not None:
        big = np.flatnonzero(np.abs(np.nan_to_num(vals)) > max_abs)
        if big.size:
            k = int(big[0])
            raise DataFormatError(
                table.path,
                f"value {raw[k].strip()!r} is beyond the supported magnitude {max_abs:g}",
                "check the value and its unit (it would overflow the cost model)",
                line=table.line_of(int(idx[k])),
                column=column,
            )
    if miss.any() and not allow_missing:
        k = int(np.flatnonzero(miss)[0])
        raise DataFormatError(
            table.path,
            f"value is missing ({raw[k]!r})",
            "fill it in (this loader needs every value)",
            line=table.line_of(int(idx[k])),
            column=column,
        )
    return vals


@dataclass(frozen=True)
class Places:
    """File and 1-based line of each row of data gathered from one or more tables.

    Attributes
    ----------
    paths : numpy.ndarray of object
        The file of each row.
    lines : numpy.ndarray of int
        The 1-based line number of each row in its file.
    """

    paths: np.ndarray
    lines: np.ndarray

    @classmethod
    def of(cls, table: Table, rows: np.ndarray | None = None) -> Places:
        lines = table.lines if rows is None else table.lines[np.asarray(rows)]
        return cls(np.full(len(lines), str(table.path), dtype=object), np.asarray(lines))

    @classmethod
    def concat(cls, parts: Sequence[Places]) -> Places:
        return cls(
            np.concatenate([p.paths for p in parts]), np.concatenate([p.lines for p in parts])
        )

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, k: int) -> tuple[str, int]:
        return str(self.paths[k]), int(self.lines[k])


def check_regular(
    where: Table | Places,
    times: pd.DatetimeIndex,
    *,
    step: str | pd.Timedelta = "1h",
    rows: np.ndarray | None = None,
    column: str | None = None,
    label: str = "",
) -> None:
    """Check that time stamps are sorted, unique and evenly spaced by ``step``.

    Parameters
    ----------
    where : Table or Places
        Where the stamps come from: a table (with ``rows``), or for stamps gathered from
        several files, the file and line of each stamp.
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
        places = where

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
            p,
            f"duplicated time {times[k]:%Y-%m-%d %H:%M} UTC{ctx}, also on {also}",
            "keep one row per time slot",
            line=ln,
            column=column,
        )
    d = np.diff(v)
    back = np.flatnonzero(d < 0)
    if back.size:
        k = int(back[0]) + 1
        p, ln = loc(k)
        raise DataFormatError(
            p,
            f"time {times[k]:%Y-%m-%d %H:%M} UTC comes after {times[k - 1]:%Y-%m-%d %H:%M}{ctx}",
            "sort the rows by time",
            line=ln,
            column=column,
        )
    gap = np.flatnonzero(d != step.value)
    if gap.size:
        k = int(gap[0])
        missing = pd.date_range(times[k] + step, times[k + 1] - step, freq=step)
        if len(missing) and (d[k] % step.value) == 0:
            what = (
                f"{len(missing)} missing slot(s) from {missing[0]:%Y-%m-%d %H:%M} UTC "
                f"to {missing[-1]:%Y-%m-%d %H:%M} UTC{ctx}"
            )
        else:
            what = (
                f"uneven step {pd.Timedelta(int(d[k]))} between "
                f"{times[k]:%Y-%m-%d %H:%M} and {times[k + 1]:%Y-%m-%d %H:%M} UTC{ctx}, "
                f"expected {step}"
            )
        p0, l0 = loc(k)
        p, ln = loc(k + 1)
        before = f"line {l0}" if p0 == p else f"{p0} line {l0}"
        raise DataFormatError(
            p,
            f"{what} (between {before} and this line)",
            "fill the missing time slots (one row per slot) or cut the file before the gap",
            line=ln,
            column=column,
        )
