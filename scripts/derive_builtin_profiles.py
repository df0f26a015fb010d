"""Derive the compact statistics behind eqglb's built-in scenario from the egl-2022 data.

Reads the hourly signals released with the eGLB study (Li, Yang, Wierman, Ren, "Towards
Environmentally Equitable AI via Geographical Load Balancing", arXiv 2307.05494; data
under the MIT licence) from ``../shared/data/egl-2022`` beside the project checkout and
writes ``src/eqglb/data/builtin_profiles.csv``: per site and signal, the hour-of-day (UTC)
mean, the standard deviation of the residual around it, the observed min/max and the
lag-1 autocorrelation (AR(1) coefficient) of the standardised residual, plus the
hour-of-day profile of the ``AI_workload`` power trace normalised to mean 1.
No hourly value is copied; :mod:`eqglb.builtin` synthesises fresh series from these
statistics.

Run from the repository root::

    python scripts/derive_builtin_profiles.py [--data-dir DIR] [--out FILE]

The output is deterministic: running it again on the same data gives the same bytes
(a test checks this).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from eqglb.scenario import ScenarioError

#: Repository root (this file lives in ``<root>/scripts``).
ROOT = Path(__file__).resolve().parents[1]
#: Default location of the shared egl-2022 data beside the checkout.
DEFAULT_DATA_DIR = ROOT / ".." / "shared" / "data" / "egl-2022"
#: Default output file inside the package.
DEFAULT_OUT = ROOT / "src" / "eqglb" / "data" / "builtin_profiles.csv"

#: Sites in the study's order: (name used by eqglb, file-name stem; the files spell
#: Belgium as "Belguim").
SITES: tuple[tuple[str, str], ...] = (
    ("Texas", "Texas"),
    ("Virginia", "Virginia"),
    ("Georgia", "Georgia"),
    ("Nevada", "Nevada"),
    ("Germany", "Germany"),
    ("Belgium", "Belguim"),
    ("Netherlands", "Netherlands"),
    ("Denmark", "Denmark"),
    ("Japan", "Japan"),
    ("Singapore", "Singapore"),
)

#: Common horizon of all files: 2022-09-22 00:00 .. 2022-10-11 00:00 UTC (README).
HORIZON = 457
FIRST_STAMP = pd.Timestamp("2022-09-22 00:00")

#: signal -> (folder, file suffix, value column, factor to eqglb's unit, eqglb unit)
SIGNALS: dict[str, tuple[str, str, str, float, str]] = {
    "price": ("price", "_Price.csv", "Price (USD/MWh)", 1e-3, "USD/kWh"),
    "carbon_intensity": ("carbon", "_carbon.csv", "Carbon (kg/kWh)", 1.0, "kg/kWh"),
    "water": ("water", "_water.csv", " WUE (L/kWh)", 1.0, "L/kWh"),
}
WORKLOAD = ("AI_workload.csv", "Power (Watt)")

COLUMNS = ["signal", "site", "hour_utc", "mean", "resid_std", "min", "max", "ar1", "unit"]
FLOAT_FORMAT = "%.6g"

HEADER = """\
# eqglb built-in scenario profiles (derived statistics, not data copies).
# Source: egl-2022 hourly signals released with Li, Yang, Wierman, Ren, "Towards
#   Environmentally Equitable AI via Geographical Load Balancing", arXiv 2307.05494
#   (ACM e-Energy 2024); MIT licence. Window 2022-09-22 00:00 .. 2022-10-11 00:00 UTC (457 h).
# Derivation: scripts/derive_builtin_profiles.py. Per (signal, site, hour of day UTC):
#   mean = hour-of-day mean; resid_std = sample std of value - mean over that hour;
#   min/max = observed range over the window; ar1 = lag-1 autocorrelation of the
#   standardised residual (same value on every hour of a site). Units in column `unit`
#   (price converted from USD/MWh). signal "workload": AI_workload power trace
#   (BLOOM-176B inference API) divided by the mean of its hour-of-day means (mean 1).
# See PROVENANCE.md.
"""


def _read(path: Path, column: str) -> pd.Series:
    """Read one egl-2022 file as an hourly series over the common horizon [file unit]."""
    if not path.is_file():
        raise ScenarioError(
            f"{path}: file not found; put the egl-2022 data in "
            f"{DEFAULT_DATA_DIR} or pass --data-dir"
        )
    frame = pd.read_csv(path)
    for col in ("Time (UTC)", column):
        if col not in frame.columns:
            raise ScenarioError(f"{path}: missing column {col!r}; found {list(frame.columns)}")
    if len(frame) < HORIZON:
        raise ScenarioError(
            f"{path}: {len(frame)} rows; need at least {HORIZON} hourly rows "
            "(2022-09-22 00 .. 2022-10-11 00 UTC)"
        )
    frame = frame.iloc[:HORIZON]
    stamps = pd.to_datetime(frame["Time (UTC)"], format="%Y-%m-%d %H")
    expected = pd.date_range(FIRST_STAMP, periods=HORIZON, freq="h")
    bad = np.flatnonzero(stamps.to_numpy() != expected.to_numpy())
    if bad.size:
        row = int(bad[0])
        raise ScenarioError(
            f"{path}: row {row + 2} has time {frame['Time (UTC)'].iloc[row]!r}; "
            f"expected {expected[row]:%Y-%m-%d %H} (hourly from 2022-09-22 00)"
        )
    values = pd.to_numeric(frame[column], errors="coerce")
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise ScenarioError(f"{path}: column {column!r} row {row + 2} is not a number; fix it")
    return pd.Series(values.to_numpy(float), index=pd.DatetimeIndex(stamps))


def hourly_stats(series: pd.Series) -> pd.DataFrame:
    """Hour-of-day statistics of one hourly series.

    Parameters
    ----------
    series : pandas.Series
        Hourly values indexed by UTC time [any unit].

    Returns
    -------
    pandas.DataFrame
        24 rows (hour_utc 0..23) with ``mean`` [unit], ``resid_std`` [unit] (sample std of
        the residual value - mean[hour]), ``min``/``max`` [unit] over the series and
        ``ar1`` [-], the lag-1 autocorrelation of the residual standardised by
        ``resid_std`` of its hour (0 where the residual is constant).
    """
    hour = series.index.hour
    groups = series.groupby(hour)
    mean = groups.mean().reindex(range(24))
    resid = series - mean.to_numpy()[hour]
    std = resid.groupby(hour).std(ddof=1).reindex(range(24)).fillna(0.0)
    scale = std.to_numpy()[hour]
    z = np.divide(resid.to_numpy(), scale, out=np.zeros(len(series)), where=scale > 0)
    if np.std(z[1:]) > 0 and np.std(z[:-1]) > 0:
        ar1 = float(np.corrcoef(z[1:], z[:-1])[0, 1])
    else:
        ar1 = 0.0
    return pd.DataFrame(
        {
            "hour_utc": np.arange(24),
            "mean": mean.to_numpy(),
            "resid_std": std.to_numpy(),
            "min": float(series.min()),
            "max": float(series.max()),
            "ar1": ar1,
        }
    )


def derive_profiles(data_dir: Path | str = DEFAULT_DATA_DIR) -> pd.DataFrame:
    """Derive the built-in profile table from the egl-2022 folder.

    Parameters
    ----------
    data_dir : path
        Folder holding ``AI_workload.csv`` and the ``price``, ``carbon``, ``water``
        sub-folders of egl-2022.

    Returns
    -------
    pandas.DataFrame
        Long table with columns ``signal, site, hour_utc, mean, resid_std, min, max, ar1,
        unit``: 3 signals x 10 sites x 24 hours, then 24 rows of ``workload`` (site ``all``,
        unit ``1`` = normalised to mean 1). Units: price [USD/kWh], carbon_intensity
        [kg CO2/kWh], water [L/kWh, on-site + off-site combined].
    """
    data_dir = Path(data_dir)
    parts = []
    for signal, (folder, suffix, column, factor, unit) in SIGNALS.items():
        for site, stem in SITES:
            series = _read(data_dir / folder / f"{stem}{suffix}", column) * factor
            stats = hourly_stats(series)
            stats.insert(0, "site", site)
            stats.insert(0, "signal", signal)
            stats["unit"] = unit
            parts.append(stats)
    power = _read(data_dir / WORKLOAD[0], WORKLOAD[1])
    norm = float(power.groupby(power.index.hour).mean().mean())
    stats = hourly_stats(power / norm)
    stats.insert(0, "site", "all")
    stats.insert(0, "signal", "workload")
    stats["unit"] = "1"
    parts.append(stats)
    return pd.concat(parts, ignore_index=True)[COLUMNS]


def render_csv(table: pd.DataFrame) -> str:
    """The exact text of ``builtin_profiles.csv``: comment header + CSV (6 significant digits)."""
    return HEADER + table.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n")


def main(argv: list[str] | None = None) -> int:
    """Command line: derive the table and write it; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="egl-2022 folder (default: ../shared/data/egl-2022)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output CSV")
    args = parser.parse_args(argv)
    try:
        text = render_csv(derive_profiles(args.data_dir))
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
