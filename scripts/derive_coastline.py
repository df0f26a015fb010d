"""Derive ``src/eqglb/data/coastline_110m.json`` from Natural Earth 1:110m countries.

Source: the Natural Earth 1:110m "Admin 0 - Countries" polygons (public domain) as shipped
inside the geopandas 0.14.4 wheel on PyPI (``geopandas/datasets/naturalearth_lowres/``;
geopandas 1.0 dropped the file). Only the wheel is read: it is fetched with
``python -m pip download --no-deps geopandas==0.14.4`` (or given with ``--wheel``) and opened
as a zip archive; geopandas is never installed or imported, nor is it a dependency of eqglb.

Derivation (own code, standard library only):

1. read the polygon shapefile (ESRI shape type 5) inside the wheel;
2. round every vertex to 0.01 degree (about 1 km, far finer than the 1:110m detail);
3. every polygon edge used by exactly one country ring is coast (or the antimeridian /
   south-pole cut of the source); an edge used by two countries is a land border;
4. chain coast edges into closed rings (land outlines, for filling), joining the two
   places where neighbours' coast vertices differ by one rounding step (gaps of at most
   0.05 degree), and border edges into polylines;
5. write integer hundredths of a degree, delta-encoded, as compact JSON with the source,
   its SHA-256 and the derivation recorded in the file itself.

Run from the repository root: ``python scripts/derive_coastline.py`` (add
``--wheel PATH`` to use a wheel already downloaded). ``--check`` re-derives and compares
with the shipped file byte for byte instead of writing it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections import defaultdict
from pathlib import Path

WHEEL = "geopandas==0.14.4"
MEMBER = "geopandas/datasets/naturalearth_lowres/naturalearth_lowres.shp"
OUT = Path("src/eqglb/data/coastline_110m.json")
SCALE = 100  # stored integers per degree


def fetch_wheel(dest: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), WHEEL],
        check=True,
    )
    wheels = sorted(dest.glob("geopandas-*.whl"))
    if not wheels:
        raise SystemExit(f"pip download {WHEEL} produced no wheel in {dest}")
    return wheels[0]


def read_polygons(shp: bytes) -> list[list[list[tuple[int, int]]]]:
    """Rings of every polygon record: list (record) of list (ring) of (lon, lat) [1/SCALE deg]."""
    (code,) = struct.unpack(">i", shp[:4])
    if code != 9994:
        raise ValueError("not an ESRI shapefile")
    length = struct.unpack(">i", shp[24:28])[0] * 2
    pos, records = 100, []
    while pos < length:
        _num, content = struct.unpack(">2i", shp[pos : pos + 8])
        body = shp[pos + 8 : pos + 8 + 2 * content]
        pos += 8 + 2 * content
        (kind,) = struct.unpack("<i", body[:4])
        if kind == 0:
            continue
        if kind != 5:
            raise ValueError(f"shape type {kind}, expected polygons (5)")
        nparts, npoints = struct.unpack("<2i", body[36:44])
        parts = list(struct.unpack(f"<{nparts}i", body[44 : 44 + 4 * nparts])) + [npoints]
        xy = struct.unpack(
            f"<{2 * npoints}d", body[44 + 4 * nparts : 44 + 4 * nparts + 16 * npoints]
        )
        pts = [(round(xy[2 * i] * SCALE), round(xy[2 * i + 1] * SCALE)) for i in range(npoints)]
        rings = []
        for a, b in zip(parts[:-1], parts[1:], strict=True):
            ring = [p for k, p in enumerate(pts[a:b]) if k == 0 or p != pts[a + k - 1]]
            if len(ring) >= 4:
                rings.append(ring)
        records.append(rings)
    return records


def chain(edges: list[tuple[tuple[int, int], tuple[int, int]]], directed: bool) -> list[list]:
    """Join edges into paths; closed paths end where they start."""
    nxt: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for a, b in edges:
        nxt[a].append(b)
        if not directed:
            nxt[b].append(a)

    def take(a, b):
        nxt[a].remove(b)
        if not directed:
            nxt[b].remove(a)

    paths = []
    # start where a path must start (directed: more edges out than in; undirected: odd
    # degree) so that open paths come out whole, then anywhere (closed rings)
    indeg: dict[tuple[int, int], int] = defaultdict(int)
    for _a, b in edges:
        indeg[b] += 1
    if directed:
        starts = sorted(nxt, key=lambda v: (len(nxt[v]) <= indeg[v], v))
    else:
        starts = sorted(nxt, key=lambda v: (len(nxt[v]) % 2 == 0, v))
    for s in starts:
        while nxt[s]:
            path, v = [s], s
            while nxt[v]:
                w = min(nxt[v])
                take(v, w)
                path.append(w)
                v = w
                if v == s and directed:
                    break
            paths.append(path)
    return paths


def close_gaps(paths: list[list], tol: int) -> list[list]:
    """Join open paths end-to-start across gaps of at most ``tol`` [1/SCALE deg].

    The source's neighbouring countries do not always share a vertex where their border
    meets the sea (Belgium/Netherlands, Benin/Nigeria at 1:110m): a coast path then stops
    one rounding step short of the next one. Joining them restores closed land outlines.
    """
    closed = [p for p in paths if p[0] == p[-1]]
    open_ = [p for p in paths if p[0] != p[-1]]
    while open_:
        cur = open_.pop(0)
        while cur[0] != cur[-1]:
            ex, ey = cur[-1]
            cands = [(max(abs(p[0][0] - ex), abs(p[0][1] - ey)), i) for i, p in enumerate(open_)]
            own = max(abs(cur[0][0] - ex), abs(cur[0][1] - ey))
            best = min(cands, default=(own + 1, -1))
            if own <= tol and own <= best[0]:
                cur = cur + [cur[0]]
            elif best[0] <= tol:
                cur = cur + open_.pop(best[1])
            else:
                break  # genuinely open: kept as it is (drawn, not filled)
        closed.append(cur)
    return closed


def encode(path: list[tuple[int, int]]) -> list[int]:
    out, px, py = [], 0, 0
    for x, y in path:
        out += [x - px, y - py]
        px, py = x, y
    return out


def derive(wheel: Path) -> tuple[str, dict]:
    with zipfile.ZipFile(wheel) as z:
        shp = z.read(MEMBER)
    records = read_polygons(shp)
    uses: dict[frozenset, int] = defaultdict(int)
    directed = []
    for rings in records:
        for ring in rings:
            for a, b in zip(ring[:-1], ring[1:], strict=True):
                uses[frozenset((a, b))] += 1
                directed.append((a, b))
    coast = [(a, b) for a, b in directed if uses[frozenset((a, b))] == 1]
    seen, borders = set(), []
    for a, b in directed:
        key = frozenset((a, b))
        if uses[key] >= 2 and key not in seen:
            seen.add(key)
            borders.append((a, b))
    land = [p for p in close_gaps(chain(coast, directed=True), tol=5) if len(p) >= 4]
    lines = [p for p in chain(borders, directed=False) if len(p) >= 2]
    doc = {
        "about": "Coastlines (closed land outlines) and land borders derived from Natural Earth "
        "1:110m Admin 0 Countries (public domain), read from naturalearth_lowres.shp "
        f"in the {WHEEL} wheel, by scripts/derive_coastline.py. "
        "Coordinates: integer lon/lat in 1/100 degree (WGS84), delta-encoded per path "
        "(first pair absolute, then differences). See eqglb/data/PROVENANCE.md.",
        "source": {
            "dataset": "Natural Earth 1:110m Admin 0 - Countries",
            "licence": "public domain",
            "container": WHEEL,
            "member": MEMBER,
            "sha256": hashlib.sha256(shp).hexdigest(),
        },
        "scale": SCALE,
        "land": [encode(p) for p in land],
        "borders": [encode(p) for p in lines],
    }
    text = json.dumps(doc, separators=(",", ":")) + "\n"
    stats = {
        "countries": len(records),
        "land_rings": len(land),
        "border_lines": len(lines),
        "points": sum(map(len, land)) + sum(map(len, lines)),
        "bytes": len(text.encode()),
    }
    return text, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", type=Path, help="geopandas 0.14.4 wheel already downloaded")
    ap.add_argument("--check", action="store_true", help="compare with the shipped file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        text, stats = derive(wheel)
    if args.check:
        same = OUT.read_text() == text
        print(f"{OUT}: {'identical' if same else 'DIFFERS'} ({stats})")
        raise SystemExit(0 if same else 1)
    OUT.write_text(text)
    print(f"wrote {OUT}: {stats}")


if __name__ == "__main__":
    main()
