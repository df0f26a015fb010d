"""One self-contained HTML report of a policy comparison.

:func:`write_html_report` writes a single ``report.html`` that needs nothing but a browser:
the CSS is inline, every figure is an inline SVG drawn by matplotlib (the coastlines of
the maps are embedded as a raster inside the SVG to keep the file small), there is no
script and no external URL, and nothing is downloaded when it is written or opened.

The page shows, top to bottom:

* headline numbers: the policy with the lowest objective against the baseline (energy
  cost, worst data centre's carbon and water, worst region's quality loss);
* the comparison table of every policy, with solver status and certified gap;
* the price of fairness over q (when a frontier is given);
* the per-site burdens on a map of the sites (data-centre and region coordinates from the
  scenario's ``attrs``; grouped bars of every policy below it, or instead of it, saying
  so, when the scenario has no coordinates);
* dispatch per data centre and model mix over time (when dispatches are given);
* provenance (what was run, on what, with which objective).

Coastlines and land borders come from ``eqglb/data/coastline_110m.json``, derived from the
public-domain Natural Earth 1:110m countries by ``scripts/derive_coastline.py`` (see
``eqglb/data/PROVENANCE.md``). matplotlib (the ``plot`` extra) is imported only here.
"""

from __future__ import annotations

import functools
import html
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eqglb.burdens import BURDENS, further_burdens
from eqglb.report import _as_mapping, _quality_unit, flag_reason, new_figure

if TYPE_CHECKING:
    from eqglb.costs import Objective
    from eqglb.scenario import Dispatch, Scenario
    from eqglb.simulate import Evaluation

__all__ = ["FRONTIER_KEYS", "load_coastline", "site_coordinates", "write_html_report"]

#: Keys every entry of a price-of-fairness frontier must have (units in brackets):
#: q [-] (inf allowed), energy_cost [USD], objective [USD], carbon_max [kg CO2],
#: water_max [L], quality_max [-].
FRONTIER_KEYS = ("q", "energy_cost", "objective", "carbon_max", "water_max", "quality_max")

_PALETTE = (
    "#3b6fb6",
    "#e07b39",
    "#4f9d69",
    "#c44e52",
    "#8172b3",
    "#937860",
    "#da8bc3",
    "#6b6b6b",
    "#ccb974",
    "#64b5cd",
)
_LAND, _LAND_EDGE, _BORDER, _SEA = "#ebe7df", "#b9b2a5", "#d3cdc1", "#f3f7fa"


# --------------------------------------------------------------------------- data
@functools.lru_cache(maxsize=1)
def _coastline_doc() -> dict[str, Any]:
    text = resources.files("eqglb").joinpath("data/coastline_110m.json").read_text("utf-8")
    return json.loads(text)


def _decode(path: Sequence[int], scale: float) -> np.ndarray:
    xy = np.cumsum(np.asarray(path, dtype=float).reshape(-1, 2), axis=0)
    return xy / scale


def load_coastline() -> dict[str, Any]:
    """The shipped Natural Earth 1:110m outlines, decoded.

    Returns
    -------
    dict
        ``land``: list of closed rings, each an array (point, 2) of (lon, lat) [degrees];
        ``borders``: list of land-border polylines, same layout; ``source``: where the
        data came from (dataset, licence, container, SHA-256 of the source file).
    """
    doc = _coastline_doc()
    scale = float(doc["scale"])
    return {
        "land": [_decode(p, scale) for p in doc["land"]],
        "borders": [_decode(p, scale) for p in doc["borders"]],
        "source": dict(doc["source"]),
    }


def _latlon(entry: Any) -> tuple[float, float] | None:
    if isinstance(entry, Mapping) and "lat" in entry and "lon" in entry:
        lat, lon = float(entry["lat"]), float(entry["lon"])
        if math.isfinite(lat) and math.isfinite(lon):
            return lat, lon
    return None


def site_coordinates(
    scenario: Scenario,
) -> tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float]]]:
    """Coordinates (lat, lon) [degrees] of the data centres and of the user regions.

    Read from ``scenario.attrs``: ``attrs["coordinates"]`` as the scenario file format
    writes it (``{"datacenter": {name: {"lat", "lon"}}, "region": {...}}``) and
    ``attrs["sites"]`` as the built-in scenario writes it (``{name: {"lat", "lon", ...}}``,
    a site being both a data centre and a region). A region without coordinates of its own
    takes its home data centre's. Missing entries are simply absent.
    """
    attrs = scenario.attrs if isinstance(scenario.attrs, Mapping) else {}
    dcs: dict[str, tuple[float, float]] = {}
    regs: dict[str, tuple[float, float]] = {}
    sites = attrs.get("sites")
    if isinstance(sites, Mapping):
        for name, entry in sites.items():
            ll = _latlon(entry)
            if ll is not None:
                if name in scenario.datacenters:
                    dcs[name] = ll
                if name in scenario.regions:
                    regs[name] = ll
    coords = attrs.get("coordinates")
    if isinstance(coords, Mapping):
        for kind, target, names in (
            ("datacenter", dcs, scenario.datacenters),
            ("region", regs, scenario.regions),
        ):
            table = coords.get(kind)
            if isinstance(table, Mapping):
                for name, entry in table.items():
                    ll = _latlon(entry)
                    if ll is not None and name in names:
                        target[name] = ll
    if scenario.home is not None:
        for region, home in zip(scenario.regions, scenario.home, strict=True):
            if region not in regs and home in dcs:
                regs[region] = dcs[home]
    return dcs, regs


# --------------------------------------------------------------------------- formatting
def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(x: float | None, digits: int = 3) -> str:
    """Compact human number: thousands separators, ``digits`` significant figures."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "&ndash;"
    if math.isinf(x):
        return "&infin;" if x > 0 else "&minus;&infin;"
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 10**digits:
        s = f"{x:,.0f}"
    elif a >= 1e-3:
        decimals = max(0, digits - 1 - int(math.floor(math.log10(a))))
        s = f"{x:,.{decimals}f}"
    else:
        s = f"{x:.{digits - 1}e}"
    return s.replace("-", "&minus;")


def _pct(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or not math.isfinite(new) or not math.isfinite(old):
        return None
    if old == 0:
        return 0.0 if new == 0 else math.copysign(math.inf, new)
    return 100.0 * (new - old) / abs(old)


def _delta_html(p: float | None, lower_is_better: bool = True) -> str:
    if p is None:
        return ""
    a = abs(p)
    if math.isinf(p):
        cls = "bad" if (p > 0) == lower_is_better else "good"
        return f'<span class="delta {cls}">{"&#9650;" if p > 0 else "&#9660;"} from 0</span>'
    if a < 0.005:  # below the shown precision: no change
        return '<span class="delta flat">&plusmn;0 %</span>'
    good = (p < 0) if lower_is_better else (p > 0)
    cls = "flat" if a < 0.05 else ("good" if good else "bad")
    arrow = "&#9660;" if p < 0 else "&#9650;"
    text = f"{a:,.0f}" if a >= 100 else (f"{a:.1f}" if a >= 1 else f"{a:.2f}")
    return f'<span class="delta {cls}">{arrow} {text} %</span>'


def _q_label(q: float) -> str:
    return "\u221e" if math.isinf(q) else f"{q:g}"


def _status(ev: Evaluation) -> tuple[str, str]:
    """(label, css class) of an evaluation's solve status."""
    if ev.info is None:
        return (
            "not solved" if ev.feasibility.ok() else "infeasible",
            "st-none" if ev.feasibility.ok() else "st-bad",
        )
    status = ev.info.status
    label = str(getattr(status, "value", status))
    if not ev.feasibility.ok():
        return label + " / infeasible", "st-bad"
    low = label.lower()
    if low == "optimal":
        return label, "st-ok"
    if "gap" in low or "feasible" in low and "infeasible" not in low:
        return label, "st-warn"
    return label, "st-bad"


def _gap(ev: Evaluation) -> float | None:
    if ev.info is None:
        return None
    g = ev.info.extra.get("gap") if isinstance(ev.info.extra, Mapping) else None
    if g is None:
        g = ev.info.gap
    return None if g is None else float(g)


# --------------------------------------------------------------------------- figures
def _svg(fig: Any, name: str) -> str:
    """The figure as an inline <svg> element with ids made unique to this figure."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"eqglb-{name}"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "eqglb"}, dpi=150)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)

    # path coordinates to 0.1 pt (about 0.15 px on screen): halves the file
    def short(m: re.Match) -> str:
        d = re.sub(
            r"-?\d+\.\d+", lambda n: f"{float(n.group(0)):.1f}".rstrip("0").rstrip("."), m.group(1)
        )
        return ' d="' + re.sub(r"\s*([MLCQZz])\s*", r"\1", d).strip() + '"'

    text = re.sub(r'\sd="([^"]*)"', short, text)
    pre = f"{name}-"
    text = re.sub(r'\bid="', f'id="{pre}', text)
    text = re.sub(r"url\(#", f"url(#{pre}", text)
    text = re.sub(r'xlink:href="#', f'xlink:href="#{pre}', text)
    text = re.sub(r'(<svg[^>]*?)\swidth="[^"]*"\s+height="[^"]*"', r"\1", text, count=1)
    return text.replace("<svg ", f'<svg role="img" aria-label="{_esc(name)}" ', 1)


def _style_axes(ax: Any) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.spines[["left", "bottom"]].set_color("#9a9a9a")
    ax.tick_params(colors="#444444", labelsize=8)
    ax.grid(True, axis="y", color="#e6e6e6", lw=0.6)
    ax.set_axisbelow(True)


def _frontier_figure(frontier: Sequence[Mapping[str, float]]) -> Any:
    pts = sorted(frontier, key=lambda r: float(r["q"]))
    qs = [float(r["q"]) for r in pts]
    x = np.arange(len(pts))
    ref = next((r for r in pts if float(r["q"]) == 1.0), pts[0])
    fig = new_figure("the HTML report", (10.0, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    e = np.array([float(r["energy_cost"]) for r in pts])
    o = np.array([float(r["objective"]) for r in pts])
    ax1.plot(x, o, "-o", color=_PALETTE[0], lw=2, ms=5, label="objective")
    ax1.plot(x, e, "-s", color=_PALETTE[1], lw=2, ms=5, label="energy cost")
    ax1.set_ylabel("[USD]", fontsize=9)
    ax1.set_title("Cost of the plan at each q", fontsize=10, loc="left")
    ax1.legend(frameon=False, fontsize=8)
    for xi, ei in zip(x, e, strict=True):
        p = _pct(ei, float(ref["energy_cost"]))
        if p is not None and math.isfinite(p) and xi != qs.index(float(ref["q"])):
            ax1.annotate(
                f"{p:+.1f} %",
                (xi, ei),
                textcoords="offset points",
                xytext=(0, 7),
                ha="center",
                fontsize=7,
                color=_PALETTE[1],
            )
    burdens = (
        ("carbon_max", "worst data centre carbon", _PALETTE[3]),
        ("water_max", "worst data centre water", _PALETTE[0]),
        ("quality_max", "worst region quality loss", _PALETTE[4]),
    )
    for key, label, col in burdens:
        base = float(ref[key])
        rel = [100.0 * float(r[key]) / base if base else math.nan for r in pts]
        ax2.plot(x, rel, "-o", color=col, lw=2, ms=5, label=label)
    ax2.axhline(100.0, color="#9a9a9a", lw=0.8, ls="--")
    ax2.set_ylabel(f"[% of q = {_q_label(float(ref['q']))}]", fontsize=9)
    ax2.set_title("Worst burdens", fontsize=10, loc="left")
    ax2.legend(frameon=False, fontsize=8)
    for ax in (ax1, ax2):
        _style_axes(ax)
        ax.set_xticks(x, [_q_label(q) for q in qs])
        ax.set_xlabel("q of the equity norms [-]", fontsize=9)
    return fig


def _clusters(
    points: np.ndarray, box: tuple[float, float]
) -> tuple[float, float, float, float] | None:
    """Bounding box (lon0, lon1, lat0, lat1) of the densest group of >= 3 points within
    ``box`` (lon, lat) [degrees], when the whole map is much wider than it; else None."""
    if len(points) < 3 or np.ptp(points[:, 0]) < 4 * box[0]:
        return None
    best = None
    for lon, lat in points:
        near = points[
            (np.abs(points[:, 0] - lon) <= box[0] / 2) & (np.abs(points[:, 1] - lat) <= box[1] / 2)
        ]
        if len(near) >= 3 and (best is None or len(near) > len(best)):
            best = near
    if best is None:
        return None
    pad = 2.0
    lon0, lon1 = best[:, 0].min() - pad, best[:, 0].max() + pad
    lat0, lat1 = best[:, 1].min() - pad, best[:, 1].max() + pad
    # widen to about the inset's shape on paper (1.7 wide per 1 high, degrees of longitude
    # shrunk by cos(latitude)) so that the inset fills its box
    cos = max(0.2, math.cos(math.radians((lat0 + lat1) / 2)))
    want = 1.7 * (lat1 - lat0) / cos
    if lon1 - lon0 < want:
        mid = (lon0 + lon1) / 2
        lon0, lon1 = mid - want / 2, mid + want / 2
    else:
        midy, half = (lat0 + lat1) / 2, (lon1 - lon0) * cos / 1.7 / 2
        lat0, lat1 = midy - half, midy + half
    return (float(lon0), float(lon1), float(lat0), float(lat1))


def _clip_ring(ring: np.ndarray, window: tuple[float, float, float, float]) -> np.ndarray:
    """Clip a closed ring (point, 2) [degrees] to the rectangle (lon0, lon1, lat0, lat1).

    Sutherland-Hodgman against each side in turn; the result may run along the rectangle's
    sides, which lie outside the axes drawn from it. Keeps the SVG small: only what can be
    seen is written.
    """
    pts = ring
    for axis, bound, keep_above in (
        (0, window[0], True),
        (0, window[1], False),
        (1, window[2], True),
        (1, window[3], False),
    ):
        if len(pts) == 0:
            break
        inside = pts[:, axis] >= bound if keep_above else pts[:, axis] <= bound
        if inside.all():
            continue
        out = []
        prev, prev_in = pts[-1], inside[-1]
        for cur, cur_in in zip(pts, inside, strict=True):
            if cur_in != prev_in:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                out.append(prev + t * (cur - prev))
            if cur_in:
                out.append(cur)
            prev, prev_in = cur, cur_in
        pts = np.array(out).reshape(-1, 2)
    return pts


def _draw_land(ax: Any, extent: tuple[float, float, float, float]) -> None:
    from matplotlib.collections import LineCollection, PolyCollection

    coast = load_coastline()
    lon0, lon1, lat0, lat1 = extent

    def visible(a: np.ndarray) -> bool:
        return bool(
            a[:, 0].max() >= lon0
            and a[:, 0].min() <= lon1
            and a[:, 1].max() >= lat0
            and a[:, 1].min() <= lat1
        )

    margin = 0.05 * max(lon1 - lon0, lat1 - lat0)
    window = (lon0 - margin, lon1 + margin, lat0 - margin, lat1 + margin)
    land = [c for c in (_clip_ring(r, window) for r in coast["land"] if visible(r)) if len(c) >= 3]
    borders = [b for b in coast["borders"] if visible(b)]
    ax.add_collection(
        PolyCollection(land, facecolors=_LAND, edgecolors=_LAND_EDGE, linewidths=0.4, zorder=1)
    )
    ax.add_collection(LineCollection(borders, colors=_BORDER, linewidths=0.35, zorder=1.1))
    ax.set_xlim(lon0, lon1)
    ax.set_ylim(lat0, lat1)
    ax.set_aspect(1.0 / max(0.2, math.cos(math.radians((lat0 + lat1) / 2))))
    ax.set_facecolor(_SEA)
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_color("#c9d3db")


def _bubbles(
    ax: Any,
    pts: np.ndarray,
    values: np.ndarray,
    change: np.ndarray | None,
    vmax: float,
    labels: Sequence[str] | None,
    size: float,
) -> Any:
    from matplotlib.colors import TwoSlopeNorm

    area = (
        size * np.sqrt(np.clip(values, 0, None) / vmax) ** 2 + 6
        if vmax > 0
        else np.full(len(values), 12.0)
    )
    kw: dict[str, Any] = {
        "s": area,
        "edgecolors": "#333333",
        "linewidths": 0.6,
        "zorder": 3,
        "alpha": 0.9,
    }
    if change is None:
        sc = ax.scatter(pts[:, 0], pts[:, 1], c=_PALETTE[0], **kw)
    else:
        lim = max(5.0, float(np.nanmax(np.abs(change))) if np.isfinite(change).any() else 5.0)
        lim = min(lim, 100.0)
        sc = ax.scatter(
            pts[:, 0],
            pts[:, 1],
            c=np.nan_to_num(change),
            cmap="RdYlGn_r",
            norm=TwoSlopeNorm(0.0, -lim, lim),
            **kw,
        )
    if labels is not None:
        for (x, y), lab in zip(pts, labels, strict=True):
            ax.annotate(
                lab,
                (x, y),
                textcoords="offset points",
                xytext=(5, 4),
                fontsize=6.5,
                color="#333333",
                zorder=4,
            )
    return sc


def _inset_rect(
    pts: np.ndarray,
    extent: tuple[float, float, float, float],
    zoom: tuple[float, float, float, float],
) -> tuple[float, float, float, float]:
    """Where to put the zoomed inset (axes fraction): the candidate box over the fewest sites
    and away from the zoomed area itself, bottom-left first."""
    w, h = 0.26, 0.46
    fx = (pts[:, 0] - extent[0]) / (extent[1] - extent[0])
    fy = (pts[:, 1] - extent[2]) / (extent[3] - extent[2])
    zx = (
        (zoom[0] - extent[0]) / (extent[1] - extent[0]),
        (zoom[1] - extent[0]) / (extent[1] - extent[0]),
    )
    zy = (
        (zoom[2] - extent[2]) / (extent[3] - extent[2]),
        (zoom[3] - extent[2]) / (extent[3] - extent[2]),
    )
    best, best_cost = (0.005, 0.02, w, h), math.inf
    for y0 in (0.02, 0.52):
        for x0 in np.linspace(0.005, 0.995 - w, 9):
            covered = (
                (fx >= x0 - 0.03)
                & (fx <= x0 + w + 0.03)
                & (fy >= y0 - 0.05)
                & (fy <= y0 + h + 0.05)
            ).sum()
            overlap = not (x0 + w < zx[0] or x0 > zx[1] or y0 + h < zy[0] or y0 > zy[1])
            cost = covered + 100 * overlap
            if cost < best_cost:
                best, best_cost = (float(x0), y0, w, h), cost
    return best


def _map_figure(
    scenario: Scenario,
    featured: Evaluation,
    base: Evaluation | None,
    dcs: Mapping[str, tuple[float, float]],
    regs: Mapping[str, tuple[float, float]],
) -> Any:
    panels = []
    for attr, title, unit, where in (
        ("carbon", "Carbon per data centre", "kg CO2", dcs),
        ("water", "Water per data centre", "L", dcs),
        *(
            (k, f"{BURDENS[k].label.capitalize()} per data centre", BURDENS[k].unit, dcs)
            for k in further_burdens([featured])
        ),
        ("social", "Quality loss per user region", _quality_unit(featured), regs),
    ):
        names = [n for n in getattr(featured, attr) if n in where]
        if names:
            panels.append((attr, title, unit, names, where))
    allpts = np.unique(
        np.array(
            [(ll[1], ll[0]) for _, _, _, names, where in panels for ll in (where[n] for n in names)]
        ),
        axis=0,
    )
    lon0, lon1 = allpts[:, 0].min(), allpts[:, 0].max()
    lat0, lat1 = allpts[:, 1].min(), allpts[:, 1].max()
    padx = max(8.0, 0.08 * (lon1 - lon0))
    pady = max(6.0, 0.12 * (lat1 - lat0))
    extent = (
        max(-180.0, lon0 - padx),
        min(180.0, lon1 + padx),
        max(-85.0, lat0 - pady),
        min(85.0, lat1 + pady),
    )
    zoom = _clusters(allpts, (20.0, 14.0))
    fig = new_figure("the HTML report", (10.0, 3.3 * len(panels)))
    axes = np.atleast_1d(fig.subplots(len(panels), 1))
    for ax, (attr, title, unit, names, where) in zip(axes, panels, strict=True):
        vals = np.array([getattr(featured, attr)[n] for n in names])
        pts = np.array([(where[n][1], where[n][0]) for n in names])
        change = None
        if base is not None and base is not featured:
            change = np.array(
                [
                    _pct(getattr(featured, attr)[n], getattr(base, attr)[n])
                    if getattr(base, attr)[n] > 0
                    else math.nan
                    for n in names
                ],
                dtype=float,
            )
        vmax = float(vals.max()) if len(vals) else 0.0
        _draw_land(ax, extent)
        inzoom = np.zeros(len(names), bool)
        if zoom is not None:
            inzoom = (
                (pts[:, 0] >= zoom[0])
                & (pts[:, 0] <= zoom[1])
                & (pts[:, 1] >= zoom[2])
                & (pts[:, 1] <= zoom[3])
            )
        labels = (
            [("" if z else n) for n, z in zip(names, inzoom, strict=True)]
            if len(names) <= 25
            else None
        )  # beyond that, names would be a blur
        sc = _bubbles(ax, pts, vals, change, vmax, labels, 520.0)
        worst = names[int(np.argmax(vals))] if len(vals) else ""
        ax.set_title(
            f"{title} [{unit}]: worst {worst} {_num(vmax).replace('&minus;', '-')}",
            fontsize=10,
            loc="left",
        )
        if zoom is not None:
            ins = ax.inset_axes(_inset_rect(pts, extent, zoom))
            _draw_land(ins, zoom)
            ins.set_anchor("SW")
            sel = np.flatnonzero(inzoom)
            _bubbles(
                ins,
                pts[sel],
                vals[sel],
                None if change is None else change[sel],
                vmax,
                [names[i] for i in sel] if len(sel) <= 25 else None,
                520.0 * 0.6,
            )
            if change is not None:
                ins.collections[-1].set_norm(sc.norm)
                ins.collections[-1].set_cmap(sc.cmap)
            ax.indicate_inset_zoom(ins, edgecolor="#7a8a99", lw=0.6)
        if change is not None and base is not None:
            cb = fig.colorbar(sc, ax=ax, shrink=0.8, pad=0.01)
            cb.set_label(f"vs {base.policy} [%]", fontsize=8)
            cb.ax.tick_params(labelsize=7)
    return fig


def _bars_figure(d: Mapping[str, Evaluation]) -> Any:
    first = next(iter(d.values()))
    more = further_burdens(d.values())
    specs = (
        ("carbon", "carbon per data centre [kg CO2]"),
        ("water", "water per data centre [L]"),
        *((k, f"{BURDENS[k].label} per data centre [{BURDENS[k].unit}]") for k in more),
        ("social", f"quality loss per user region [{_quality_unit(first)}]"),
    )
    fig = new_figure("the HTML report", (10.0, 2.6 * len(specs)))
    axes = fig.subplots(len(specs), 1)
    width = 0.8 / len(d)
    for ax, (attr, label) in zip(axes, specs, strict=True):
        names = list(getattr(first, attr))
        x = np.arange(len(names))
        for i, (pol, ev) in enumerate(d.items()):
            vals = [getattr(ev, attr).get(n, 0.0) for n in names]
            ax.bar(
                x - 0.4 + (i + 0.5) * width,
                vals,
                width,
                label=pol,
                color=_PALETTE[i % len(_PALETTE)],
            )
        ax.set_xticks(
            x,
            names,
            fontsize=8,
            rotation=30 if len(names) > 8 else 0,
            ha="right" if len(names) > 8 else "center",
        )
        ax.set_title(label, fontsize=10, loc="left")
        _style_axes(ax)
    axes[0].legend(
        frameon=False,
        fontsize=8,
        ncols=min(len(d), 6),
        loc="lower left",
        bbox_to_anchor=(0.0, 1.12),
    )
    return fig


def _dispatch_figure(scenario: Scenario, dispatches: Mapping[str, Dispatch]) -> Any:
    import matplotlib.dates as mdates
    from matplotlib import colormaps

    n = len(dispatches)
    fig = new_figure("the HTML report", (10.0, 0.6 + 2.1 * n))
    axes = np.asarray(fig.subplots(n, 2, sharex=True, squeeze=False))
    t = scenario.time
    if t.tz is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    t = t.to_pydatetime()
    dc_cols = [_PALETTE[i % len(_PALETTE)] for i in range(len(scenario.datacenters))]
    cmap = colormaps["viridis"]
    k = len(scenario.models)
    model_cols = [cmap(0.15 + 0.7 * i / max(1, k - 1)) for i in range(k)]
    for row, (name, disp) in enumerate(dispatches.items()):
        y = np.asarray(disp.y, dtype=float)
        per_dc = y.sum(axis=(2, 3))  # (time, datacenter) [requests/slot]
        per_model = y.sum(axis=(1, 2))  # (time, model) [requests/slot]
        tot = per_model.sum(axis=1, keepdims=True)
        share = 100.0 * np.divide(per_model, tot, out=np.zeros_like(per_model), where=tot > 0)
        a1, a2 = axes[row]
        a1.stackplot(t, per_dc.T / 1e3, colors=dc_cols, labels=scenario.datacenters, lw=0)
        a2.stackplot(t, share.T, colors=model_cols, labels=scenario.models, lw=0)
        a1.set_ylabel(f"{name}\n[10$^3$ requests/slot]", fontsize=8)
        a2.set_ylabel("[% of requests]", fontsize=8)
        a2.set_ylim(0, 100)
        for ax in (a1, a2):
            _style_axes(ax)
            ax.margins(x=0)
    axes[0, 0].set_title("Requests served per data centre", fontsize=10, loc="left")
    axes[0, 1].set_title("Model mix", fontsize=10, loc="left")
    for ax in axes[-1]:
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
        ax.set_xlabel("time [UTC]", fontsize=8)
    fig.legend(
        *axes[0, 0].get_legend_handles_labels(),
        loc="outside lower left",
        ncols=min(5, len(scenario.datacenters)),
        fontsize=7,
        frameon=False,
        title="data centre",
        title_fontsize=7,
    )
    fig.legend(
        *axes[0, 1].get_legend_handles_labels(),
        loc="outside lower right",
        ncols=min(2, k),
        fontsize=7,
        frameon=False,
        title="model",
        title_fontsize=7,
    )
    return fig


# --------------------------------------------------------------------------- html
_CSS = """
:root{--ink:#1f2933;--mute:#5f6b7a;--line:#e3e7ec;--bg:#f7f8fa;--card:#fff;--acc:#3b6fb6;
--good:#2f855a;--bad:#c53030;--warn:#b7791f}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:28px 22px 60px}
header h1{font-size:28px;margin:0 0 4px;letter-spacing:-.01em}
header p{margin:2px 0;color:var(--mute)}
h2{font-size:19px;margin:40px 0 6px;padding-bottom:6px;border-bottom:1px solid var(--line)}
p.lead{color:var(--mute);margin:4px 0 14px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:14px;
margin:22px 0 6px}
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:14px 16px;
box-shadow:0 1px 2px rgba(16,24,40,.04)}
.card .k{font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:var(--mute)}
.card .v{font-size:26px;font-weight:650;margin:4px 0 2px;font-variant-numeric:tabular-nums}
.card .s{font-size:13px;color:var(--mute)}
.delta{font-weight:600;font-size:13px;white-space:nowrap}
.delta.good{color:var(--good)}.delta.bad{color:var(--bad)}.delta.flat{color:var(--mute)}
.tablewrap{overflow-x:auto;background:var(--card);border:1px solid var(--line);
border-radius:12px}
table{border-collapse:collapse;width:100%;font-size:13px;font-variant-numeric:tabular-nums}
th,td{padding:6px 8px;text-align:right;white-space:nowrap;border-bottom:1px solid var(--line)}
th{background:#fbfcfd;font-weight:600;color:var(--mute);font-size:12px;vertical-align:bottom;
white-space:normal;min-width:64px}
th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}
tr:last-child td{border-bottom:0}
tr.featured td{background:#f3f7fd}
td.bar{background-image:linear-gradient(90deg,rgba(59,111,182,.38),rgba(59,111,182,.38));
background-repeat:no-repeat;background-size:var(--w) 4px;background-position:left bottom 3px}
td.best{font-weight:700}
.pol{display:inline-block;width:10px;height:10px;border-radius:3px;margin-right:7px;
vertical-align:baseline}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600}
.st-ok{background:#e6f4ea;color:var(--good)}.st-warn{background:#fdf3e1;color:var(--warn)}
.st-bad{background:#fde8e8;color:var(--bad)}.st-none{background:#eef1f4;color:var(--mute)}
figure.fig{margin:12px 0 0;background:var(--card);border:1px solid var(--line);
border-radius:12px;padding:10px}
figure.fig svg{display:block;width:100%;height:auto}
figcaption{font-size:13px;color:var(--mute);padding:6px 6px 2px}
.note{background:#fff8e6;border:1px solid #f3e1b0;border-radius:10px;padding:8px 12px;
font-size:13.5px;margin:10px 0}
dl.prov{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;font-size:13.5px;
background:var(--card);border:1px solid var(--line);border-radius:12px;padding:12px 16px}
dl.prov dt{color:var(--mute)}dl.prov dd{margin:0;word-break:break-word}
.sub{display:block;font-size:11.5px;color:var(--mute);font-weight:400;line-height:1.3}
.sub .delta{font-size:11.5px}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
footer{margin-top:40px;font-size:12px;color:var(--mute)}
"""


def _card(key: str, value: str, sub: str) -> str:
    return (
        f'<div class="card"><div class="k">{key}</div><div class="v">{value}</div>'
        f'<div class="s">{sub}</div></div>'
    )


def _figure(name: str, svg: str, caption: str) -> str:
    return (
        f'<figure class="fig" id="fig-{name}" data-figure="{name}">{svg}'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _table(
    d: Mapping[str, Evaluation], baseline: str, featured: str, colors: Mapping[str, str]
) -> str:
    q_unit = _quality_unit(next(iter(d.values())))
    cols = (  # (header, getter, bar?, lower is better)
        ("objective<br>[USD]", lambda e: e.objective, True),
        ("energy cost<br>[USD]", lambda e: e.energy_cost, True),
        ("carbon total<br>[kg CO2]", lambda e: e.summary["carbon"]["total"], True),
        ("carbon worst DC<br>[kg CO2]", lambda e: e.summary["carbon"]["max"], True),
        ("water total<br>[L]", lambda e: e.summary["water"]["total"], True),
        ("water worst DC<br>[L]", lambda e: e.summary["water"]["max"], True),
        *(
            (
                f"{BURDENS[k].label} worst DC<br>[{BURDENS[k].unit}]",
                lambda e, k=k: e.summary[k]["max"],
                True,
            )
            for k in further_burdens(d.values())
        ),
        ("quality loss mean<br>[-]", lambda e: e.summary["totals"]["mean_quality_loss"], True),
        (f"quality loss worst region<br>[{q_unit}]", lambda e: e.summary["social"]["max"], True),
    )
    values = {name: [g(ev) for _, g, _ in cols] for name, ev in d.items()}
    tops = []
    for i in range(len(cols)):
        finite = [v[i] for v in values.values() if v[i] is not None and math.isfinite(v[i])]
        tops.append((max(finite, default=0.0), min(finite, default=0.0)))
    head = (
        "<tr><th>policy</th><th>status<br>gap [-]</th>"
        + "".join(f"<th>{h}</th>" for h, _, _ in cols)
        + "</tr>"
    )
    rows = []
    for name, ev in d.items():
        label, cls = _status(ev)
        why = flag_reason(ev)
        gap = _gap(ev)
        bound = ev.info.dual_bound if ev.info is not None else None
        title = f' title="{_esc(why)}"' if why else ""
        gap_txt = "" if gap is None else f"gap {gap:.1e}"
        if bound is not None:
            gap_txt = (
                f'<span title="certified lower bound {bound:.6g} USD">{gap_txt or "bound"}</span>'
            )
        cells = [
            f'<td><span class="pol" style="background:{colors[name]}"></span>{_esc(name)}</td>',
            f'<td><span class="badge {cls}"{title}>{_esc(label)}</span>'
            f'<span class="sub">{gap_txt or "&nbsp;"}</span></td>',
        ]
        for i, v in enumerate(values[name]):
            top, low = tops[i]
            if v is None or not math.isfinite(v):
                cells.append("<td>&ndash;</td>")
                continue
            w = 100.0 * v / top if top > 0 and v >= 0 else 0.0
            best = " best" if v == low and len(d) > 1 else ""
            delta = ""
            if name != baseline:
                delta = _delta_html(_pct(v, values[baseline][i]))
            cells.append(
                f'<td class="bar{best}" style="--w:{w:.1f}%">{_num(v, 4)}'
                f'<span class="sub">{delta or "&nbsp;"}</span></td>'
            )
        cls_row = ' class="featured"' if name == featured else ""
        rows.append(f"<tr{cls_row}>{''.join(cells)}</tr>")
    return f'<div class="tablewrap"><table>{head}{"".join(rows)}</table></div>'


def _frontier_table(frontier: Sequence[Mapping[str, float]]) -> str:
    pts = sorted(frontier, key=lambda r: float(r["q"]))
    ref = next((r for r in pts if float(r["q"]) == 1.0), pts[0])
    head = (
        "<tr><th>q</th><th>objective [USD]</th><th>energy cost [USD]</th>"
        f"<th>price of fairness<br>vs q = {_q_label(float(ref['q']))}</th>"
        "<th>carbon worst DC [kg CO2]</th><th>water worst DC [L]</th>"
        "<th>quality loss worst region [-]</th></tr>"
    )
    rows = []
    for r in pts:
        rows.append(
            f"<tr><td>{_q_label(float(r['q']))}</td><td>{_num(float(r['objective']), 4)}</td>"
            f"<td>{_num(float(r['energy_cost']), 4)}</td>"
            f"<td>{_delta_html(_pct(float(r['energy_cost']), float(ref['energy_cost'])))}</td>"
            + "".join(
                f"<td>{_num(float(r[k]), 4)} {_delta_html(_pct(float(r[k]), float(ref[k])))}</td>"
                for k in ("carbon_max", "water_max", "quality_max")
            )
            + "</tr>"
        )
    return f'<div class="tablewrap"><table>{head}{"".join(rows)}</table></div>'


def _prov_value(v: Any) -> str:
    if isinstance(v, Mapping):
        return ", ".join(f"{_esc(k)}: {_prov_value(x)}" for k, x in v.items())
    if isinstance(v, list | tuple):
        return ", ".join(_prov_value(x) for x in v)
    if isinstance(v, float):
        return _q_label(v) if math.isinf(v) else f"{v:g}"
    return f"<code>{_esc(v)}</code>" if isinstance(v, str) and len(v) > 40 else _esc(v)


def _check_frontier(frontier: Sequence[Mapping[str, Any]]) -> None:
    if not frontier:
        raise ValueError("frontier is empty; pass None to leave the price of fairness out")
    for i, r in enumerate(frontier):
        missing = [k for k in FRONTIER_KEYS if k not in r]
        if missing:
            raise ValueError(f"frontier entry {i} lacks {missing}; each needs {FRONTIER_KEYS}")


def write_html_report(
    path: str | Path,
    evals: Mapping[str, Evaluation] | Iterable[Evaluation],
    scenario: Scenario,
    *,
    objective: Objective | None = None,
    frontier: Sequence[Mapping[str, float]] | None = None,
    provenance: Mapping[str, Any] | None = None,
    baseline: str | None = None,
    dispatches: Mapping[str, Dispatch] | None = None,
) -> Path:
    """Write one self-contained ``report.html`` of a policy comparison.

    Everything is inline (CSS, SVG figures); the page has no script and no external URL.

    Parameters
    ----------
    path : str or Path
        File to write, or an existing folder (then ``report.html`` inside it).
    evals : mapping name -> Evaluation, or evaluations
        One row of the comparison per policy (costs as the evaluator computed them:
        energy cost and objective [USD], carbon [kg CO2] and water [L] per data centre,
        quality loss per region [-], solver status, dual bound and gap).
    scenario : Scenario
        The scenario they were evaluated on: names, time axis, site coordinates (see
        :func:`site_coordinates`; without any, the burdens are shown as bars and the page
        says so).
    objective : Objective, optional
        Objective the policies were scored with (shown; default: that of the first
        evaluation, if any).
    frontier : list of dict, optional
        Price of fairness over q: entries with at least :data:`FRONTIER_KEYS` -- ``q`` [-]
        (inf allowed), ``energy_cost`` [USD], ``objective`` [USD], ``carbon_max`` [kg CO2],
        ``water_max`` [L], ``quality_max`` [-]. Changes are measured against the q = 1
        entry (else the smallest q). None: the section is left out.
    provenance : mapping, optional
        Key -> value pairs shown as they are (eqglb version, command line, scenario hash,
        weights, solver, ...).
    baseline : str, optional
        Policy the changes are measured against; default ``"energy"`` when present, else
        the first policy. The headline compares the policy of lowest objective with it.
    dispatches : mapping name -> Dispatch, optional
        Dispatches ``y`` (time, datacenter, region, model) [requests/slot] to draw over
        time (requests per data centre, model mix). None: the section is left out.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ImportError
        If matplotlib (the ``plot`` extra) is missing.
    ValueError
        If there is no evaluation, ``baseline`` is not among them, or a frontier entry
        lacks a key.
    """
    d = _as_mapping(evals)
    path = Path(path)
    if path.is_dir():
        path = path / "report.html"
    if baseline is None:
        baseline = "energy" if "energy" in d else next(iter(d))
    if baseline not in d:
        raise ValueError(f"baseline {baseline!r} is not among the policies {list(d)}")
    if frontier is not None:
        _check_frontier(frontier)
    base = d[baseline]
    scored = [n for n, e in d.items() if e.objective is not None and math.isfinite(e.objective)]
    featured = min(scored, key=lambda n: float(d[n].objective or 0.0)) if scored else next(iter(d))
    fe = d[featured]
    colors = {n: _PALETTE[i % len(_PALETTE)] for i, n in enumerate(d)}
    if objective is None:
        objective = next((e.objective_spec for e in d.values() if e.objective_spec), None)
    T, N, J, K = scenario.shape
    slot_h = scenario.slot_hours
    parts: list[str] = []

    # ---- header and headline cards
    span = (
        f"{scenario.time[0]:%Y-%m-%d %H:%M} to {scenario.time[-1]:%Y-%m-%d %H:%M} UTC"
        if T
        else "no slots"
    )
    parts.append(
        f"<header><h1>eqglb: {len(d)} dispatch policies compared</h1>"
        f"<p>Scenario <b>{_esc(scenario.name)}</b>: {N} data centres, {J} user regions, "
        f"{K} models, {T} slots of {slot_h:g} h ({span}); "
        f"{_num(float(np.asarray(scenario.demand).sum()), 4)} requests.</p>"
        + (
            f"<p>Every policy is scored with <code>{_esc(objective.describe())}</code> [USD].</p>"
            if objective is not None
            else ""
        )
        + "</header>"
    )
    same = featured == baseline
    vs = "" if same else f" vs {_esc(baseline)}"
    cards = [
        _card(
            "lowest objective",
            _esc(featured),
            f"{_num(fe.objective, 4)} USD"
            + ("" if same else " " + _delta_html(_pct(fe.objective, base.objective))),
        ),
        _card(
            "energy cost",
            f"{_num(fe.energy_cost, 4)} USD",
            f"{_esc(featured)}{vs} " + _delta_html(_pct(fe.energy_cost, base.energy_cost)),
        ),
        _card(
            "worst data centre carbon",
            f"{_num(fe.summary['carbon']['max'], 3)} kg",
            f"{_esc(featured)}{vs} "
            + _delta_html(_pct(fe.summary["carbon"]["max"], base.summary["carbon"]["max"])),
        ),
        _card(
            "worst data centre water",
            f"{_num(fe.summary['water']['max'], 3)} L",
            f"{_esc(featured)}{vs} "
            + _delta_html(_pct(fe.summary["water"]["max"], base.summary["water"]["max"])),
        ),
        _card(
            "worst region quality loss",
            _num(fe.summary["social"]["max"], 3),
            f"{_esc(featured)}{vs} "
            + _delta_html(_pct(fe.summary["social"]["max"], base.summary["social"]["max"])),
        ),
    ]
    parts.append(f'<section class="cards">{"".join(cards)}</section>')

    # ---- comparison
    parts.append(
        '<h2>Comparison</h2><p class="lead">One row per policy, every number '
        "recomputed by the same evaluator; small print: change against "
        f"<b>{_esc(baseline)}</b>. The bar under a number is scaled to the column's "
        "largest value; bold marks the lowest. The gap is (objective &minus; certified "
        "lower bound) / max(1, |objective|) of the policy's own solve (hover it for "
        "the bound).</p>"
    )
    parts.append(_table(d, baseline, featured, colors))

    # ---- price of fairness
    if frontier is not None:
        fig = _frontier_figure(frontier)
        ref_q = _q_label(min((float(r["q"]) for r in frontier), key=lambda q: (q != 1.0, q)))
        parts.append(
            '<h2>Price of fairness</h2><p class="lead">The same weights solved '
            f"at each q of the equity norms; changes against q = {ref_q}.</p>"
        )
        parts.append(
            _figure(
                "frontier",
                _svg(fig, "frontier"),
                "Left: objective and energy cost [USD] of the optimal plan per "
                "q. Right: worst data centre's carbon and water, worst region's "
                "quality loss, as % of their value at the reference q.",
            )
        )
        parts.append(_frontier_table(frontier))

    # ---- burdens
    parts.append("<h2>Who bears what</h2>")
    dcs, regs = site_coordinates(scenario)
    if dcs or regs:
        parts.append(
            f'<p class="lead">Burdens of <b>{_esc(featured)}</b> at each site: '
            "bubble area is proportional to the burden"
            + (
                ""
                if same
                else f"; colour is the change against <b>{_esc(baseline)}</b> (green: lower)"
            )
            + ".</p>"
        )
        missing = [n for n in scenario.datacenters if n not in dcs] + [
            n for n in scenario.regions if n not in regs
        ]
        if missing:
            parts.append(
                f'<p class="note">No coordinates for {_esc(", ".join(missing))}: '
                "not on the map (see the bars below).</p>"
            )
        fig = _map_figure(scenario, fe, None if same else base, dcs, regs)
        parts.append(
            _figure(
                "map",
                _svg(fig, "map"),
                "Coastlines and borders: Natural Earth 1:110m (public domain).",
            )
        )
        bars_caption = "The same burdens for every policy."
    else:
        parts.append(
            '<p class="note">This scenario has no site coordinates '
            '(<code>attrs["coordinates"]</code> or <code>attrs["sites"]</code>), '
            "so the burdens are shown as bars instead of on a map.</p>"
        )
        bars_caption = "Burdens per site for every policy."
    parts.append(_figure("burdens", _svg(_bars_figure(d), "burdens"), bars_caption))

    # ---- dispatch over time
    if dispatches:
        parts.append(
            '<h2>Dispatch over time</h2><p class="lead">Where the requests are '
            "served, and by which model, slot by slot.</p>"
        )
        fig = _dispatch_figure(scenario, dispatches)
        parts.append(
            _figure(
                "dispatch",
                _svg(fig, "dispatch"),
                "Left: requests served per data centre [10<sup>3</sup> "
                "requests/slot], stacked. Right: share of requests per model "
                "[%].",
            )
        )

    # ---- provenance
    from eqglb import __version__

    prov: dict[str, Any] = {
        "eqglb version": __version__,
        "scenario": scenario.name,
        "time": span,
        "shape (T, N, J, K)": f"{T}, {N}, {J}, {K}",
    }
    if objective is not None:
        prov["objective"] = objective.describe()
    prov["baseline"] = baseline
    prov.update(dict(provenance or {}))
    src = _coastline_doc()["source"]
    prov["map data"] = (
        f"{src['dataset']} ({src['licence']}), from {src['member']} in "
        f"{src['container']}, sha256 {src['sha256'][:12]}..."
    )
    rows = "".join(f"<dt>{_esc(k)}</dt><dd>{_prov_value(v)}</dd>" for k, v in prov.items())
    parts.append(f'<h2>Provenance</h2><dl class="prov">{rows}</dl>')
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(
        f"<footer>Written by eqglb {_esc(__version__)} on {stamp}. Self-contained: "
        "no script, no external resource.</footer>"
    )

    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>eqglb report: {_esc(scenario.name)}</title>"
        f"<style>{_CSS}</style></head><body><main>{''.join(parts)}</main></body></html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
