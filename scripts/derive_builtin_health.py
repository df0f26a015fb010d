"""Derive the public-health statistics behind eqglb's built-in scenario from health-2023.

Reads the hourly public-health cost of electricity of four US grids in 2023 (CISO, ERCO,
PJM, TVA; public repository Ren-Research/Health-Impact-Predictor, MIT licence; "Predicting
Public Health Impacts of Electricity Usage", Liu, Wu, Li, Ren, NeurIPS 2025 workshop
ResponsibleFM) from ``../shared/data/health-2023`` beside the project checkout with
:func:`eqglb.io.health.read_health_2023`, and writes ``src/eqglb/data/builtin_health.csv``:
per grid, the hour-of-day (UTC, slot start) mean of the total (internal + external) health
cost [USD/kWh], the standard deviation of the residual around it, the observed min/max
over the year and the lag-1 autocorrelation of the standardised residual, computed by the
same :func:`hourly_stats` as ``scripts/derive_builtin_profiles.py``. No hourly value is
copied; :mod:`eqglb.builtin` synthesises fresh series from these statistics.

The files do not state the unit of their costs; it is read as USD/MWh (an assumption,
see :mod:`eqglb.io.health`), so the table holds USD/kWh = file value / 1000.

Run from the repository root::

    python scripts/derive_builtin_health.py [--data-dir DIR] [--out FILE]

The output is deterministic: running it again on the same data gives the same bytes
(a test checks this).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd

from eqglb.io.health import GRIDS, SOURCE_UNIT, read_health_2023
from eqglb.scenario import ScenarioError

#: Repository root (this file lives in ``<root>/scripts``).
ROOT = Path(__file__).resolve().parents[1]
#: Default location of the shared health-2023 data beside the checkout.
DEFAULT_DATA_DIR = ROOT / ".." / "shared" / "data" / "health-2023"
#: Default output file inside the package.
DEFAULT_OUT = ROOT / "src" / "eqglb" / "data" / "builtin_health.csv"

COLUMNS = ["signal", "grid", "hour_utc", "mean", "resid_std", "min", "max", "ar1", "unit"]
FLOAT_FORMAT = "%.6g"
SIGNAL = "health_cost"
UNIT = "USD/kWh"

HEADER = f"""\
# eqglb built-in scenario public-health profiles (derived statistics, not data copies).
# Source: health-2023, the data files of the public repository
#   Ren-Research/Health-Impact-Predictor (MIT licence), from Liu, Wu, Li, Ren, "Predicting
#   Public Health Impacts of Electricity Usage" (NeurIPS 2025 workshop ResponsibleFM).
#   Grids (EIA balancing authorities): {", ".join(GRIDS)}. Window: the 8,760 hours of 2023
#   (period labels 2023-01-01T00 .. 2023-12-31T23, hour ending, UTC; slot starts
#   2022-12-31 23:00 .. 2023-12-31 22:00 UTC).
# Signal health_cost = internal + external health cost (all the harm, also downwind),
#   read in {SOURCE_UNIT} (ASSUMED: the source states no unit) and divided by 1000 -> USD/kWh
#   of electricity consumed.
# Derivation: scripts/derive_builtin_health.py (hourly_stats of
#   scripts/derive_builtin_profiles.py). Per (grid, hour of day UTC of the slot start):
#   mean = hour-of-day mean; resid_std = sample std of value - mean over that hour;
#   min/max = observed range over the year; ar1 = lag-1 autocorrelation of the
#   standardised residual (same value on every hour of a grid).
# See PROVENANCE.md.
"""


def _profiles_script() -> ModuleType:
    """``scripts/derive_builtin_profiles.py`` as a module (its :func:`hourly_stats`)."""
    path = Path(__file__).resolve().parent / "derive_builtin_profiles.py"
    spec = importlib.util.spec_from_file_location("derive_builtin_profiles", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def derive_health(data_dir: Path | str = DEFAULT_DATA_DIR) -> pd.DataFrame:
    """Derive the built-in health profile table from the health-2023 folder.

    Returns
    -------
    pandas.DataFrame
        Long table with columns ``signal, grid, hour_utc, mean, resid_std, min, max, ar1,
        unit``: signal ``health_cost`` x 4 grids x 24 hours [USD/kWh, unit assumed].
    """
    hourly_stats = _profiles_script().hourly_stats
    total = read_health_2023(data_dir).cost("total")  # (time, grid) [USD/kWh]
    parts = []
    for grid in GRIDS:
        stats = hourly_stats(total[grid])
        stats.insert(0, "grid", grid)
        stats.insert(0, "signal", SIGNAL)
        stats["unit"] = UNIT
        parts.append(stats)
    return pd.concat(parts, ignore_index=True)[COLUMNS]


def render_csv(table: pd.DataFrame) -> str:
    """The exact text of ``builtin_health.csv``: comment header + CSV (6 significant digits)."""
    return HEADER + table.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n")


def main(argv: list[str] | None = None) -> int:
    """Command line: derive the table and write it; returns the exit status."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="health-2023 folder (default: ../shared/data/health-2023)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output CSV")
    args = parser.parse_args(argv)
    try:
        text = render_csv(derive_health(args.data_dir))
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
