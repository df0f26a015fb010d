"""Reader of the Azure LLM inference traces 2023 and a stated way to spread demand over regions.

The traces (Patel et al., "Splitwise", ISCA 2024; CC-BY 4.0) list one request per row:
``TIMESTAMP`` (e.g. ``2023-11-16 18:17:03.9799600``), ``ContextTokens`` (prompt length)
and ``GeneratedTokens`` (output length). The published files state no time zone; eqglb
reads the stamps as UTC (pass ``tz`` to say otherwise).

:func:`azure_arrivals` counts requests per slot of any length. The traces carry no user
region, so per-region demand is a modelling choice; :func:`spread_over_regions` makes
one explicit: time-zone-shifted, weighted copies of one arrival profile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from eqglb.io._common import (
    DataFormatError,
    PathLike,
    column_name,
    parse_numbers,
    parse_times,
    read_table,
    require_columns,
)
from eqglb.scenario import ScenarioError

__all__ = ["MAX_TOKENS", "azure_arrivals", "read_azure_trace", "spread_over_regions"]

_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
#: Largest token count of one request accepted [tokens]: 2^53, the largest integer a
#: float64 holds exactly; per-slot sums of such counts still fit a 64-bit integer for
#: up to 1023 requests per slot (checked in :func:`azure_arrivals`).
MAX_TOKENS = 2**53


def read_azure_trace(path: PathLike, *, tz: str = "UTC") -> pd.DataFrame:
    """Read one Azure LLM inference trace.

    Parameters
    ----------
    path : path-like
        ``AzureLLMInferenceTrace_code.csv``, ``..._conv.csv`` or a file of the same layout.
    tz : str
        Time zone of the stamps (the files state none; default UTC).

    Returns
    -------
    pandas.DataFrame
        One row per request, in file order: ``time`` (UTC), ``context_tokens`` and
        ``generated_tokens`` [tokens], ``line`` (1-based line in the file).

    Raises
    ------
    DataFormatError
        Missing column, unparsable stamp, a token count that is not a non-negative
        whole number or is above :data:`MAX_TOKENS`, or stamps going backwards.
    """
    table = read_table(path, what="Azure LLM trace")
    require_columns(table, list(_COLUMNS), what="Azure LLM trace")
    if len(table.frame) == 0:
        raise DataFormatError(
            table.path, "no request rows", "give a trace with data rows", line=table.header_line
        )
    times = parse_times(table, "TIMESTAMP", ("%Y-%m-%d %H:%M:%S.%f", "ISO8601"), tz=tz)
    ctx = parse_numbers(table, "ContextTokens", max_abs=None)
    gen = parse_numbers(table, "GeneratedTokens", max_abs=None)
    for name, v in (("ContextTokens", ctx), ("GeneratedTokens", gen)):
        bad = (v < 0) | (v != np.round(v))
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise DataFormatError(
                table.path,
                f"token count {v[r]:g} is not a whole number >= 0",
                "give token counts as non-negative integers",
                line=table.line_of(r),
                column=name,
            )
        big = np.flatnonzero(v > MAX_TOKENS)
        if big.size:
            r = int(big[0])
            cell = str(table.frame[column_name(table, name)].iloc[r]).strip()
            raise DataFormatError(
                table.path,
                f"token count {cell} is too large (above {MAX_TOKENS:,} = 2^53, "
                "the largest count held exactly; larger ones would wrap around in 64-bit "
                "sums)",
                "check the value: a request has far fewer tokens",
                line=table.line_of(r),
                column=name,
            )
    back = np.flatnonzero(np.diff(times.as_unit("ns").asi8) < 0)
    if back.size:
        r = int(back[0]) + 1
        raise DataFormatError(
            table.path,
            f"time {times[r]} is earlier than the row before",
            "sort the trace by TIMESTAMP",
            line=table.line_of(r),
            column="TIMESTAMP",
        )
    out = pd.DataFrame(
        {
            "time": times,
            "context_tokens": ctx.astype(np.int64),
            "generated_tokens": gen.astype(np.int64),
            "line": table.lines,
        }
    )
    out.attrs["path"] = str(table.path)
    return out


def azure_arrivals(
    trace: PathLike | pd.DataFrame,
    slot: str | pd.Timedelta = "1h",
    *,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    tz: str = "UTC",
) -> pd.DataFrame:
    """Requests and tokens per time slot.

    Slots are ``[t, t + slot)`` aligned to multiples of ``slot`` since midnight UTC
    (``floor``); the first and last slots of a trace may be partly covered, and are
    counted as they are.

    Parameters
    ----------
    trace : path-like or pandas.DataFrame
        A trace file or the output of :func:`read_azure_trace`.
    slot : str or Timedelta
        Slot length, e.g. ``"1min"``, ``"15min"``, ``"1h"``.
    start, end : time or None
        First and last slot start (UTC) of the output; requests outside are dropped
        (their number is in ``attrs["dropped"]``). Default: the slots of the first and
        last request.
    tz : str
        Time zone of the stamps when reading a file.

    Returns
    -------
    pandas.DataFrame
        Indexed by slot start (``time``, UTC): ``requests`` [requests/slot],
        ``context_tokens`` and ``generated_tokens`` [tokens/slot] (sums), and
        ``mean_context_tokens``, ``mean_generated_tokens`` [tokens/request] (NaN in a
        slot without requests). ``attrs`` hold the trace-wide means
        ``mean_context_tokens`` and ``mean_generated_tokens`` [tokens/request].
    """
    df = read_azure_trace(trace, tz=tz) if not isinstance(trace, pd.DataFrame) else trace
    try:
        step = pd.Timedelta(slot)
    except ValueError as exc:
        raise ScenarioError(f"slot {slot!r} is not a duration; give e.g. '1min' or '1h'") from exc
    if step <= pd.Timedelta(0):
        raise ScenarioError(f"slot {slot!r} must be a positive duration")
    t = pd.DatetimeIndex(df["time"])
    t = t.tz_localize("UTC") if t.tz is None else t.tz_convert("UTC")
    slots = t.floor(step)
    t0 = slots.min() if start is None else _utc(start).floor(step)
    t1 = slots.max() if end is None else _utc(end).floor(step)
    if t1 < t0:
        raise ScenarioError(f"end {t1} is before start {t0}; give end >= start")
    index = pd.date_range(t0, t1, freq=step, name="time")
    inside = (slots >= t0) & (slots <= t1)
    g = pd.DataFrame(
        {
            "slot": slots[inside],
            "context_tokens": df["context_tokens"].to_numpy()[inside],
            "generated_tokens": df["generated_tokens"].to_numpy()[inside],
        }
    )
    for col in ("context_tokens", "generated_tokens"):
        # the sums below are int64: refuse a total that would wrap around
        if float(np.sum(g[col].to_numpy(dtype=float))) >= 2.0**63:
            raise ScenarioError(
                f"{df.attrs.get('path', 'trace')}: the {col} sum to more than 2^63 - 1, "
                "which 64-bit counts cannot hold; check the trace for implausibly large "
                "token counts"
            )
    agg = g.groupby("slot").agg(
        requests=("context_tokens", "size"),
        context_tokens=("context_tokens", "sum"),
        generated_tokens=("generated_tokens", "sum"),
    )
    out = agg.reindex(index, fill_value=0).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = out["requests"].to_numpy(dtype=float)
        out["mean_context_tokens"] = np.where(
            n > 0, out["context_tokens"] / np.where(n > 0, n, 1), np.nan
        )
        out["mean_generated_tokens"] = np.where(
            n > 0, out["generated_tokens"] / np.where(n > 0, n, 1), np.nan
        )
    out.index.name = "time"
    out.attrs.update(
        slot=str(step),
        dropped=int((~inside).sum()),
        mean_context_tokens=float(df["context_tokens"].mean()),
        mean_generated_tokens=float(df["generated_tokens"].mean()),
        source=df.attrs.get("path", "Azure LLM inference trace 2023"),
    )
    return out


def spread_over_regions(
    profile: pd.Series,
    regions: Sequence[str],
    *,
    utc_offsets: Mapping[str, float] | Sequence[float] | None = None,
    weights: Mapping[str, float] | Sequence[float] | None = None,
) -> pd.DataFrame:
    """Per-region demand as time-zone-shifted, weighted copies of one arrival profile.

    The profile is read as the demand seen at *local* time: region j at UTC offset o_j
    [h] sees, at UTC time t, the profile's value at t + o_j. On the profile's own index
    (regular, step dt) this is a circular shift by o_j / dt slots:

    ``demand[t, j] = w_j * profile[(t + o_j / dt) mod T]``

    so a profile covering whole days keeps its daily pattern (the last hours wrap to the
    start). Weights are used as given (not renormalised).

    Parameters
    ----------
    profile : pandas.Series
        Arrivals per slot on a regular time index [requests/slot], e.g. a diurnal
        profile or a multi-day trace.
    regions : sequence of str
        Region names (output columns).
    utc_offsets : mapping region -> hours, sequence of hours, or None
        UTC offset of each region [h] (e.g. -6 for Texas in winter, +9 for Japan); each
        must be a whole multiple of the profile's step. Default 0 for all (no shift).
    weights : mapping region -> float, sequence of float, or None
        Share of the profile each region gets [-], >= 0. Default ``1 / len(regions)``
        each, so that with no shifts the regions sum to the profile.

    Returns
    -------
    pandas.DataFrame
        (time, region) demand [requests/slot] on the profile's index.

    Raises
    ------
    ScenarioError
        Irregular or too short profile, NaN or negative values, an offset that is not a
        multiple of the step, negative weights, or lengths that do not match ``regions``.
    """
    regions = [str(r) for r in regions]
    J = len(regions)
    if J == 0:
        raise ScenarioError("regions is empty; give at least one region name")
    if len(set(regions)) != J:
        raise ScenarioError(f"region names repeat in {regions}; give unique names")
    if not isinstance(profile, pd.Series) or not isinstance(profile.index, pd.DatetimeIndex):
        raise ScenarioError(
            "profile must be a pandas Series on a DatetimeIndex "
            "[requests/slot]; e.g. azure_arrivals(...)['requests']"
        )
    vals = profile.to_numpy(dtype=float)
    if len(vals) < 2:
        raise ScenarioError("profile needs at least 2 slots to define its step")
    if not np.isfinite(vals).all() or (vals < 0).any():
        k = int(np.flatnonzero(~np.isfinite(vals) | (vals < 0))[0])
        raise ScenarioError(
            f"profile value {vals[k]!r} at {profile.index[k]} is NaN, inf or "
            "negative; give arrivals >= 0"
        )
    d = np.diff(profile.index.as_unit("ns").asi8)
    if (d != d[0]).any() or d[0] <= 0:
        raise ScenarioError(
            "profile index is not regular (one fixed step, increasing); resample it first"
        )
    step_h = d[0] / 3.6e12

    def per_region(
        x: Mapping[str, float] | Sequence[float] | None, name: str, default: float
    ) -> np.ndarray:
        if x is None:
            return np.full(J, default)
        if isinstance(x, Mapping):
            miss = [r for r in regions if r not in x]
            if miss:
                raise ScenarioError(
                    f"{name} has no value for region(s) {miss}; give one per region"
                )
            return np.array([float(x[r]) for r in regions])
        arr = np.asarray(list(x), dtype=float)
        if arr.shape != (J,):
            raise ScenarioError(f"{name} has {arr.size} values; expected one per region ({J})")
        return arr

    offs = per_region(utc_offsets, "utc_offsets", 0.0)
    w = per_region(weights, "weights", 1.0 / J)
    if not np.isfinite(w).all() or (w < 0).any():
        k = int(np.flatnonzero(~np.isfinite(w) | (w < 0))[0])
        raise ScenarioError(f"weight of region {regions[k]!r} is {w[k]!r}; give weights >= 0")
    shifts = offs / step_h
    if not np.allclose(shifts, np.round(shifts)):
        k = int(np.flatnonzero(~np.isclose(shifts, np.round(shifts)))[0])
        raise ScenarioError(
            f"UTC offset {offs[k]:g} h of region {regions[k]!r} is not a multiple "
            f"of the profile step ({step_h:g} h); resample the profile finer"
        )
    cols = {r: w[j] * np.roll(vals, -int(round(shifts[j]))) for j, r in enumerate(regions)}
    out = pd.DataFrame(cols, index=profile.index)
    out.columns.name = "region"
    out.attrs.update(
        rule="demand[t, j] = w_j * profile[(t + o_j) mod T] (circular shift)",
        utc_offsets=dict(zip(regions, offs.tolist(), strict=True)),
        weights=dict(zip(regions, w.tolist(), strict=True)),
    )
    return out


def _utc(t: str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
