"""Tables, files and figures from Evaluations.

Everything here reads :class:`eqglb.simulate.Evaluation` objects (one per policy) and never
recomputes a cost: the numbers are those of the evaluator.

* :func:`summary_frame` -- one row per policy with the headline numbers in base units
  (USD, kg CO2, L, -); the rich table, the Markdown report and ``metrics.json`` all use it
  or the evaluations directly.
* :func:`comparison_table` / :func:`render_table` -- a rich comparison table, with the
  energy-cost overhead against a named baseline policy and a flag for inaccurate or
  infeasible solves.
* :func:`metrics_dict` / :func:`write_metrics_json` -- the ``metrics.json`` mapping
  policy -> costs, per-region vectors keyed by name, summary statistics, overheads,
  solver status.
* :func:`region_frame` / :func:`write_region_csv` -- long table of regional costs.
* :func:`write_dispatch_parquet` -- long table of the dispatches (via ``Dispatch.to_frame``).
* :func:`plot_regional_bars` -- grouped bars per region (matplotlib, imported lazily).
* :func:`write_markdown_report` -- a short Markdown report.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from eqglb._json import json_ready, write_json
from eqglb.burdens import BURDENS, further_burdens
from eqglb.simulate import Evaluation, overheads

if TYPE_CHECKING:
    from rich.table import Table

    from eqglb.costs import Objective
    from eqglb.scenario import Dispatch, Scenario

__all__ = [
    "COSTS",
    "comparison_table",
    "comparison_tables",
    "flag_reason",
    "headline_lines",
    "metrics_dict",
    "plot_regional_bars",
    "region_frame",
    "render_table",
    "switches_table",
    "summary_frame",
    "write_dispatch_parquet",
    "write_markdown_report",
    "write_metrics_json",
    "write_region_csv",
]


def _file_key(name: str) -> str:
    """Name of a burden in files: ``carbon_kg``, ``water_l``, ``quality_loss``, ``health_usd``."""
    b = BURDENS[name]
    if b.side == "region":
        return "quality_loss"
    unit = {"kg CO2": "kg", "L": "l"}.get(b.unit, b.unit.lower().replace(" ", "_"))
    return f"{name}_{unit}"


#: Regional costs, one per burden (:mod:`eqglb.burdens`): (Evaluation attribute, summary
#: key, name in files, located at, unit). Burdens beyond carbon, water and quality appear
#: where an evaluation reports them.
COSTS: tuple[tuple[str, str, str, str, str], ...] = tuple(
    (b.name, b.name, _file_key(b.name), b.side, b.unit)
    for b in sorted(BURDENS.values(), key=lambda b: b.side == "region")
)


# --------------------------------------------------------------------------- helpers
def _as_mapping(evals: Mapping[str, Evaluation] | Iterable[Evaluation]) -> dict[str, Evaluation]:
    """Policy name -> Evaluation, keeping order; duplicate names raise ValueError."""
    if isinstance(evals, Mapping):
        out = dict(evals)
    else:
        out = {}
        for ev in evals:
            if ev.policy in out:
                raise ValueError(
                    f"two evaluations are named {ev.policy!r}; give each policy "
                    "a distinct name (pass a mapping name -> Evaluation)"
                )
            out[ev.policy] = ev
    if not out:
        raise ValueError("no evaluations to report; run at least one policy")
    return out


def _quality_unit(ev: Evaluation) -> str:
    """Unit of the quality-loss vector: average per request [-] or total [requests]."""
    spec = ev.objective_spec
    return "-" if spec is None or spec.social_average else "requests"


def flag_reason(ev: Evaluation) -> str:
    """Why an evaluation is flagged ("" when it is not): solver status and/or violation."""
    parts = []
    if ev.info is not None and not ev.info.ok:
        parts.append(str(ev.info.status))
    if not ev.feasibility.ok():
        f = ev.feasibility
        worst = max(
            ("demand", f.demand),
            ("capacity", f.capacity),
            ("routing", f.routing),
            ("negative", f.negative),
            key=lambda kv: kv[1],
        )
        parts.append(f"infeasible ({worst[0]} {worst[1]:.2g})")
    return ", ".join(parts)


def _scale_unit(max_value: float, small: str, big: str, factor: float) -> tuple[float, str]:
    """(divisor, unit): switch to the big unit when values reach 10 000 small units."""
    return (factor, big) if abs(max_value) >= 1e4 else (1.0, small)


# --------------------------------------------------------------------------- summary
def summary_frame(
    evals: Mapping[str, Evaluation] | Iterable[Evaluation], baseline: str | None = "energy"
) -> pd.DataFrame:
    """Headline numbers, one row per policy (index ``policy``), in base units.

    Columns
    -------
    objective_usd, energy_cost_usd : [USD]
    energy_cost_overhead_pct : energy cost versus ``baseline`` [%] (NaN without baseline)
    carbon_total_kg, carbon_max_kg : [kg CO2]; carbon_max_over_mean, carbon_jain [-]
    water_total_l, water_max_l : [L]; water_max_over_mean, water_jain [-]
    quality_loss_mean : request-weighted mean quality loss [-]
    quality_loss_max : worst region [-] (or [requests] with total quality loss)
    quality_loss_max_over_mean, quality_loss_jain : [-]
    <burden>_total_<unit>, <burden>_max_<unit>, <burden>_max_over_mean, <burden>_jain :
        the same for every further burden all rows report (health: ``health_total_usd``)
    flagged : bool; flag : reason ("" when not flagged)
    """
    d = _as_mapping(evals)
    base = d.get(baseline) if baseline is not None else None
    extra = further_burdens(d.values())
    rows = []
    for name, ev in d.items():
        s = ev.summary
        over = overheads(ev, base)["energy_cost"] if base is not None else math.nan
        more: dict[str, Any] = {}
        for k in extra:
            key = _file_key(k)
            unit = key.split("_", 1)[1]
            more[f"{k}_total_{unit}"] = s[k]["total"]
            more[f"{k}_max_{unit}"] = s[k]["max"]
            more[f"{k}_max_over_mean"] = s[k]["max_over_mean"]
            more[f"{k}_jain"] = s[k]["jain"]
        rows.append(
            {
                "policy": name,
                "objective_usd": math.nan if ev.objective is None else ev.objective,
                "energy_cost_usd": ev.energy_cost,
                "energy_cost_overhead_pct": over,
                "carbon_total_kg": s["carbon"]["total"],
                "carbon_max_kg": s["carbon"]["max"],
                "carbon_max_over_mean": s["carbon"]["max_over_mean"],
                "carbon_jain": s["carbon"]["jain"],
                "water_total_l": s["water"]["total"],
                "water_max_l": s["water"]["max"],
                "water_max_over_mean": s["water"]["max_over_mean"],
                "water_jain": s["water"]["jain"],
                "quality_loss_mean": s["totals"]["mean_quality_loss"],
                "quality_loss_max": s["social"]["max"],
                "quality_loss_max_over_mean": s["social"]["max_over_mean"],
                "quality_loss_jain": s["social"]["jain"],
                **more,
                "flagged": ev.flagged,
                "flag": flag_reason(ev),
            }
        )
    return pd.DataFrame(rows).set_index("policy")


# --------------------------------------------------------------------------- rich table
def _fmt(x: float, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    ax = abs(x)
    if ax >= 1e12 or ax < 1e-3:
        return f"{x:.{digits - 1}e}"
    # `digits` significant digits, never an exponent; thousands separated
    decimals = max(0, digits - 1 - math.floor(math.log10(ax)))
    return f"{x:,.{decimals}f}"


def _pct(x: float) -> str:
    if math.isnan(x):
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x:+.1f}%"


def comparison_table(
    evals: Mapping[str, Evaluation] | Iterable[Evaluation],
    baseline: str | None = "energy",
    *,
    title: str | None = None,
) -> Table:
    """Rich table comparing policies (rows) on cost, footprints, quality and fairness.

    Carbon is shown in [kg] or [t] and water in [L] or [m3], whichever keeps the numbers
    short (the unit is in the header). ``max/mean`` is the peak-to-average ratio over
    data centres (carbon, water) or regions (quality loss); Jain's index is given for
    carbon / water / quality loss (1 = perfectly even). When any row is flagged (solver not
    cleanly optimal, or the dispatch violates a constraint) a ``flag`` column gives the
    reason and flagged rows are red.
    """
    from rich.markup import escape
    from rich.table import Table

    df = summary_frame(evals, baseline)
    cdiv, cunit = _scale_unit(float(df["carbon_total_kg"].abs().max()), "kg", "t", 1e3)
    wdiv, wunit = _scale_unit(float(df["water_total_l"].abs().max()), "L", "m3", 1e3)
    q_unit = _quality_unit(next(iter(_as_mapping(evals).values())))
    has_base = baseline is not None and baseline in df.index
    caption = (
        "C: carbon per data centre, W: water per data centre, Q: quality loss per "
        "user region; max/mean: peak-to-average ratio; Jain: 1 = perfectly even"
    )
    tab = Table(
        title=title,
        title_justify="left",
        header_style="bold",
        caption=caption,
        caption_justify="left",
    )
    tab.add_column("policy", style="bold", no_wrap=True)
    heads = [
        "objective\n[USD]",
        "energy\n[USD]",
        f"vs {baseline if has_base else 'baseline'}\n[%]",
        f"C total\n[{cunit}]",
        f"C max\n[{cunit}]",
        "C max/\nmean",
        f"W total\n[{wunit}]",
        f"W max\n[{wunit}]",
        "W max/\nmean",
        "Q mean\n[-]",
        f"Q max\n[{q_unit}]",
        "Q max/\nmean",
    ]
    for h in heads:
        tab.add_column(escape(h), justify="right", no_wrap=True)
    tab.add_column("Jain\nC/W/Q", justify="right", no_wrap=True)
    any_flag = bool(df["flagged"].any())
    if any_flag:
        tab.add_column("flag", style="red")
    for name, r in df.iterrows():
        tab.add_row(
            escape(str(name)),
            _fmt(r["objective_usd"]),
            _fmt(r["energy_cost_usd"]),
            _pct(r["energy_cost_overhead_pct"]) if has_base else "-",
            _fmt(r["carbon_total_kg"] / cdiv),
            _fmt(r["carbon_max_kg"] / cdiv),
            _fmt(r["carbon_max_over_mean"], 3),
            _fmt(r["water_total_l"] / wdiv),
            _fmt(r["water_max_l"] / wdiv),
            _fmt(r["water_max_over_mean"], 3),
            _fmt(r["quality_loss_mean"], 3),
            _fmt(r["quality_loss_max"], 3),
            _fmt(r["quality_loss_max_over_mean"], 3),
            f"{r['carbon_jain']:.2f}/{r['water_jain']:.2f}/{r['quality_loss_jain']:.2f}",
            *([escape(r["flag"])] if any_flag else []),
            style="red" if r["flagged"] else None,
        )
    return tab


def _status_cell(ev: Evaluation) -> tuple[str, str]:
    """(status, gap) cells: the certified gap of exact rows, "-" for heuristics."""
    if ev.info is None:
        return "-", "-"
    gap = ev.info.gap
    if gap is None:
        return str(ev.info.status), "-"
    return str(ev.info.status), ("0" if abs(gap) < 1e-15 else f"{gap:.0e}")


def comparison_tables(
    evals: Mapping[str, Evaluation] | Iterable[Evaluation],
    objective: Objective,
    *,
    scenario: Scenario | None = None,
    dispatches: Mapping[str, Dispatch] | None = None,
    reference: str | None = "equitable",
    model_rule: str | None = None,
    wide: bool = False,
) -> list[Table]:
    """The comparison as two tables that fit 100 columns (one with ``wide``).

    1. *objective*: the scored objective [USD] and its split into energy, quality, carbon
       and water terms [USD], the change against ``reference`` [%] (for online rows: the
       gap to hindsight), the solve status and certified gap;
    2. *burdens*: worst and total carbon [kg or t] and water [L or m3] per data centre,
       worst and mean quality loss per region, Jain's index, the model mix [% of
       requests, smallest to largest model as listed in the scenario].
    """
    from rich.markup import escape
    from rich.table import Table

    from eqglb.comparison import model_mix, term_split

    d = _as_mapping(evals)
    df = summary_frame(d, None)
    has_ref = reference is not None and reference in d
    ref_obj = d[reference].objective if has_ref and reference is not None else None
    cdiv, cunit = _scale_unit(float(df["carbon_total_kg"].abs().max()), "kg", "t", 1e3)
    wdiv, wunit = _scale_unit(float(df["water_total_l"].abs().max()), "L", "m3", 1e3)
    q_unit = _quality_unit(next(iter(d.values())))
    # a burden beyond carbon, water and quality gets a column when it is priced (or with
    # --wide); it is always in metrics.json, regions.csv and the HTML report
    extra = further_burdens(d.values(), priced_by=None if wide else objective)
    # within 100 columns an extra burden (or the movement, with a switching cost) takes the
    # place of Jain's index (kept in --wide, metrics.json and report.md)
    moves = objective.switching_cost > 0  # the switching term and the movement are shown
    jain = wide or not (extra or moves)
    priced = [k for k, _t in objective.active() if k not in ("social", "carbon", "water")]
    if moves:
        priced.append("switching")  # the switching cost's term [USD]
    heads1 = [
        "objective",
        f"vs {reference if has_ref and not priced else 'ref'}\n[%]",
        "energy",
        "quality",
        "carbon",
        "water",
        *priced,
        "status",
        "gap",
    ]
    heads2 = [
        f"C max\n[{cunit}]",
        f"C total\n[{cunit}]",
        f"W max\n[{wunit}]",
        f"W total\n[{wunit}]",
        f"Q max\n[{q_unit}]",
        "Q mean\n[-]",
        *(["Jain\nC/W/Q"] if jain else []),
        *(f"{BURDENS[k].symbol} max\n[{BURDENS[k].unit}]" for k in extra),
        *(["moved\n[req]"] if moves else []),
        "mix\n[%]",
    ]
    rows1: list[list[str]] = []
    rows2: list[list[str]] = []
    styles: list[str | None] = []
    for name, ev in d.items():
        split = term_split(ev, objective)
        status, gap = _status_cell(ev)
        vs = "-"
        if has_ref and ref_obj and ev.objective is not None and name != reference:
            vs = _pct(100.0 * (ev.objective - ref_obj) / abs(ref_obj))
        rows1.append(
            [
                escape(name),
                _fmt(math.nan if ev.objective is None else ev.objective),
                vs,
                _fmt(split["energy"]),
                _fmt(split["quality"]),
                _fmt(split["carbon"]),
                _fmt(split["water"]),
                *(_fmt(split.get(k, 0.0)) for k in priced),
                escape(status),
                gap,
            ]
        )
        r = df.loc[name]
        mix = "-"
        if scenario is not None and dispatches is not None and name in dispatches:
            mix = "/".join(f"{100 * v:.0f}" for v in model_mix(scenario, dispatches[name]).values())
        rows2.append(
            [
                escape(name),
                _fmt(r["carbon_max_kg"] / cdiv),
                _fmt(r["carbon_total_kg"] / cdiv),
                _fmt(r["water_max_l"] / wdiv),
                _fmt(r["water_total_l"] / wdiv),
                _fmt(r["quality_loss_max"], 3),
                _fmt(r["quality_loss_mean"], 3),
                *(
                    [f"{r['carbon_jain']:.2f}/{r['water_jain']:.2f}/{r['quality_loss_jain']:.2f}"]
                    if jain
                    else []
                ),
                *(_fmt(r[f"{k}_max_{_file_key(k).split('_', 1)[1]}"]) for k in extra),
                *([_fmt(float(ev.summary["movement"]["requests"]))] if moves else []),
                mix,
            ]
        )
        styles.append("red" if ev.flagged else None)
    rule = f"; model rule {model_rule}" if model_rule else ""
    title1 = f"objective [USD] = energy + quality + carbon + water{''.join(' + ' + k for k in priced)}{rule}"
    title2 = (
        "burdens: carbon and water per data centre, quality loss per region; mix: % of "
        "requests per model"
    )
    caption = (
        "Jain: 1 = perfectly even (carbon/water/quality)"
        if jain
        else "Jain's index: see --wide or metrics.json"
    )

    def table(title: str, heads: list[str], rows: list[list[str]], cap: str | None) -> Table:
        t = Table(
            title=title,
            title_justify="left",
            header_style="bold",
            caption=cap,
            caption_justify="left",
        )
        t.add_column("policy", style="bold", no_wrap=True)
        for h in heads:
            t.add_column(escape(h), justify="right", no_wrap=True)
        for row, st in zip(rows, styles, strict=True):
            t.add_row(*row, style=st)
        return t

    if wide:
        return [
            table(
                title1,
                heads1 + heads2,
                [a + b[1:] for a, b in zip(rows1, rows2, strict=True)],
                caption,
            )
        ]
    return [table(title1, heads1, rows1, None), table(title2, heads2, rows2, caption)]


def headline_lines(
    effect: Mapping[str, Any] | None, shares: Mapping[str, float] | None = None, q_label: str = "q"
) -> list[str]:
    """Plain sentences for the equity effect, the price of fairness and levelling down."""
    lines: list[str] = []
    if shares:
        lines.append(
            "terms of the equitable objective: "
            + ", ".join(f"{k} {100 * v:.0f}%" for k, v in shares.items())
        )
    if not effect:
        return lines
    w = effect["worst"]
    e, b = effect["equitable"], effect["oblivious"]

    def ch(key: str, label: str, unit: str, digits: int = 4) -> str:
        v = w[key]
        return (
            f"{label} {_fmt(v['oblivious'], digits)} -> {_fmt(v['equitable'], digits)}"
            f"{unit} ({_pct(v['change_pct'])})"
        )

    lines.append(
        f"equity effect ({e} at {q_label} vs {b} at q = 1, same weights): "
        + "; ".join(
            [
                ch("carbon_max_kg", "worst-DC carbon", " kg"),
                ch("water_max_l", "worst-DC water", " L"),
                ch("quality_loss_max", "worst-region quality loss", "", 3),
            ]
        )
    )
    pof = effect["price_of_fairness"]
    v = pof["q1_objective_usd"]
    text = (
        f"price of fairness: {_pct(pof['pct'])} in the equity-oblivious objective "
        f"({_fmt(v['oblivious'])} -> {_fmt(v['equitable'])} USD)"
    )
    if "cost_only" in effect:
        c = effect["cost_only"]
        text += (
            f"; energy cost {_fmt(effect['energy_cost_usd']['equitable'])} USD vs the "
            f"true cost-only optimum {_fmt(c['energy_cost_usd'])} USD "
            f"({_pct(c['equitable_vs_cost_only_pct'])})"
        )
    lines.append(text)
    lev = effect["levelling"]
    if lev["regions_worse"]:
        m = lev["mean_quality_loss"]
        kind = (
            "levelling down" if lev["levelling_down"] else "redistribution (the mean does not rise)"
        )
        lines.append(
            f"{kind}: {len(lev['regions_worse'])} of {lev['n_regions']} regions get "
            f"a higher quality loss; mean quality loss {_fmt(m['oblivious'], 3)} -> "
            f"{_fmt(m['equitable'], 3)}"
        )
    return lines


def switches_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """Which regulariser moves which burden (:func:`eqglb.comparison.switches`)."""
    from rich.table import Table

    t = Table(
        title="equity on one term at a time (others at q = 1, same weights)",
        title_justify="left",
        header_style="bold",
    )
    for h in ("equity on", "C max [kg]", "W max [L]", "Q max [-]", "energy [USD]", "status"):
        t.add_column(h, justify="left" if h in ("equity on", "status") else "right", no_wrap=True)
    for r in rows:
        t.add_row(
            str(r["equity_on"]),
            _fmt(r["carbon_max_kg"]),
            _fmt(r["water_max_l"]),
            _fmt(r["quality_loss_max"], 3),
            _fmt(r["energy_cost_usd"]),
            str(r["status"]),
        )
    return t


def render_table(
    evals: Mapping[str, Evaluation] | Iterable[Evaluation],
    baseline: str | None = "energy",
    *,
    width: int = 160,
    title: str | None = None,
) -> str:
    """The comparison table as plain text (no colour codes), ``width`` characters wide."""
    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, force_terminal=False).print(
        comparison_table(evals, baseline, title=title)
    )
    return buf.getvalue()


# --------------------------------------------------------------------------- metrics.json
def metrics_dict(
    evals: Mapping[str, Evaluation] | Iterable[Evaluation], baseline: str | None = "energy"
) -> dict[str, dict[str, Any]]:
    """JSON-ready mapping policy -> metrics.

    Each entry holds ``objective`` and ``energy_cost`` [USD]; ``totals`` (energy_cost_usd,
    carbon_kg, water_l, mean_quality_loss, requests); per-region vectors keyed by name:
    ``carbon_kg`` and ``water_l`` by data centre, ``quality_loss`` by region; ``summary``
    (per cost: total, max, mean, max_over_mean, lq_norm, jain, gini); ``overheads_pct``
    versus ``baseline`` [%] (None when the baseline was not run); ``solve`` (status,
    solver, solve_time_s, ...), ``feasibility``, ``flagged`` and ``flag``; ``units``.
    Non-finite numbers (e.g. max/mean of an all-zero vector) are written as null.
    """
    d = _as_mapping(evals)
    base = d.get(baseline) if baseline is not None else None
    out: dict[str, dict[str, Any]] = {}
    for name, ev in d.items():
        entry = ev.to_dict()
        entry["policy"] = name
        t = ev.summary["totals"]
        entry["totals"] = {
            "energy_cost_usd": t["energy_cost"],
            "carbon_kg": t["carbon"],
            "water_l": t["water"],
            **{_file_key(k): t[k] for k in ev.burdens if k not in ("social", "carbon", "water")},
            "mean_quality_loss": t["mean_quality_loss"],
            "requests": t["requests"],
        }
        entry["summary"] = {k: v for k, v in ev.summary.items() if k != "totals"}
        entry["baseline"] = baseline if base is not None else None
        entry["overheads_pct"] = overheads(ev, base) if base is not None else None
        entry["flag"] = flag_reason(ev)
        entry["wall_time_s"] = ev.extra.get("wall_time_s")
        entry["units"] = {
            "objective": "USD",
            "energy_cost": "USD",
            "carbon_kg": "kg CO2",
            "water_l": "L",
            **{
                _file_key(k): BURDENS[k].unit
                for k in ev.burdens
                if k not in ("social", "carbon", "water")
            },
            "quality_loss": _quality_unit(ev),
            "overheads_pct": "%",
        }
        out[name] = json_ready(entry, "none")
    return out


def write_metrics_json(
    evals: Mapping[str, Evaluation] | Iterable[Evaluation],
    path: str | Path,
    baseline: str | None = "energy",
    *,
    provenance: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write strict JSON (no NaN) to ``path``; returns the path.

    Layout: ``{"provenance": ..., "policies": metrics_dict(...), **extra}`` (``extra``:
    e.g. ``headline``, ``frontier``, ``switches``).
    """
    path = Path(path)
    doc = {
        "provenance": dict(provenance or {}),
        "policies": metrics_dict(evals, baseline),
        **json_ready(dict(extra or {}), "none"),
    }
    return write_json(path, doc, nonfinite="keep", indent=2)


# --------------------------------------------------------------------------- regional CSV
def region_frame(evals: Mapping[str, Evaluation] | Iterable[Evaluation]) -> pd.DataFrame:
    """Long table of regional costs: columns policy, cost, region_or_datacenter, value, unit.

    ``cost`` is ``carbon`` [kg CO2] and ``water`` [L] per data centre, and
    ``quality_loss`` per user region ([-] average per request, or [requests] in total).
    """
    rows = []
    for name, ev in _as_mapping(evals).items():
        for attr, _key, _file, _where, unit in COSTS:
            if attr not in ("carbon", "water", "social") and attr not in ev.burdens:
                continue
            if attr == "social":
                unit, label = _quality_unit(ev), "quality_loss"
            else:
                label = attr
            for place, value in getattr(ev, attr).items():
                rows.append((name, label, place, float(value), unit))
    return pd.DataFrame(rows, columns=["policy", "cost", "region_or_datacenter", "value", "unit"])


def write_region_csv(
    evals: Mapping[str, Evaluation] | Iterable[Evaluation], path: str | Path
) -> pd.DataFrame:
    """Write :func:`region_frame` to ``path`` (CSV, no index); returns the frame."""
    df = region_frame(evals)
    df.to_csv(path, index=False, float_format="%.10g")
    return df


# --------------------------------------------------------------------------- dispatch
def write_dispatch_parquet(
    dispatches: Mapping[str, Dispatch] | Iterable[Dispatch],
    scenario: Scenario,
    path: str | Path,
    *,
    nonzero: bool = True,
) -> pd.DataFrame:
    """Write the dispatches as one long Parquet table; returns the frame.

    Columns: ``policy``, ``time`` (UTC), ``datacenter``, ``region``, ``model``,
    ``requests`` [requests/slot]; only positive flows unless ``nonzero=False``.
    """
    if isinstance(dispatches, Mapping):
        items = list(dispatches.items())
    else:
        items = [(dp.policy, dp) for dp in dispatches]
    if not items:
        raise ValueError("no dispatches to write; run at least one policy")
    names = [n for n, _ in items]
    frames = []
    for name, dp in items:
        f = dp.to_frame(scenario, nonzero=nonzero)
        f.insert(0, "policy", pd.Categorical([name] * len(f), categories=names))
        frames.append(f)
    df = pd.concat(frames, ignore_index=True)
    df.to_parquet(path, index=False)
    return df


# --------------------------------------------------------------------------- figures
def new_figure(who: str, size: tuple[float, float]) -> Any:
    """A matplotlib Figure on the Agg canvas (no pyplot, no display) of ``size`` [inch].

    Raises ImportError naming the ``plot`` extra when matplotlib is missing; ``who`` names
    the caller in that message.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # optional plotting dependency
        raise ImportError(
            f"{who} needs matplotlib, eqglb's plot extra; "
            "install it with `pip install 'eqglb[plot]'`"
        ) from exc
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_regional_bars(
    evals: Mapping[str, Evaluation] | Iterable[Evaluation],
    path_dir: str | Path,
    *,
    prefix: str = "regional_",
    dpi: int = 120,
    provenance: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Grouped bar charts of carbon, water (per data centre) and quality loss (per region).

    One PNG per cost in ``path_dir`` (created if missing): ``{prefix}carbon.png``,
    ``{prefix}water.png``, ``{prefix}quality_loss.png``; one group per region, one bar per
    policy. Units are in the axis labels. Returns the paths written. ``provenance``
    (:func:`eqglb.comparison.provenance`) is stored in each PNG's ``Description`` text
    chunk as JSON, with the eqglb version as ``Software``.

    Raises
    ------
    ImportError
        If matplotlib is not installed (``pip install 'eqglb[plot]'``).
    """
    d = _as_mapping(evals)
    out_dir = Path(path_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    first = next(iter(d.values()))
    carbon_max = max(max(ev.carbon.values(), default=0.0) for ev in d.values())
    water_max = max(max(ev.water.values(), default=0.0) for ev in d.values())
    cdiv, cunit = _scale_unit(carbon_max, "kg CO2", "t CO2", 1e3)
    wdiv, wunit = _scale_unit(water_max, "L", "m$^3$", 1e3)
    q_unit = _quality_unit(first)
    specs = [
        ("carbon", "carbon", f"carbon [{cunit}]", "data centre", cdiv),
        ("water", "water", f"water consumption [{wunit}]", "data centre", wdiv),
        (
            "social",
            "quality_loss",
            "average quality loss per request [-]"
            if q_unit == "-"
            else "total quality loss [requests]",
            "user region",
            1.0,
        ),
    ]
    paths = []
    n_pol = len(d)
    for attr, fname, ylabel, xlabel, div in specs:
        places = list(getattr(first, attr))
        x = np.arange(len(places))
        width = 0.8 / n_pol
        # about 0.12 inch per bar, within 6 .. 14 inches
        fig_w = min(14.0, max(6.0, 1.5 + 0.12 * len(places) * (n_pol + 1)))
        fig = new_figure("plot_regional_bars", (fig_w, 4.2))
        ax = fig.add_subplot()
        for p, (name, ev) in enumerate(d.items()):
            vals = np.array([getattr(ev, attr).get(pl, np.nan) for pl in places]) / div
            ax.bar(x + (p - (n_pol - 1) / 2) * width, vals, width, label=name)
        ax.set_xticks(
            x,
            places,
            rotation=30 if len(places) > 5 else 0,
            ha="right" if len(places) > 5 else "center",
        )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{fname.replace('_', ' ')} per {xlabel}")
        ax.legend(fontsize="small", ncols=min(n_pol, 4), loc="best")
        ax.grid(axis="y", alpha=0.3)
        path = out_dir / f"{prefix}{fname}.png"
        meta = None
        if provenance is not None:
            from eqglb import __version__

            meta = {
                "Software": f"eqglb {__version__}",
                "Description": json.dumps(json_ready(dict(provenance), "none")),
            }
        fig.savefig(path, dpi=dpi, metadata=meta)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- markdown
def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    def esc(s: str) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(esc(h) for h in header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _rtt_lines(d: Mapping[str, Evaluation]) -> list[str]:
    """ "RTT mean/worst" lines [ms] when the scenario carries an RTT SLO or budget."""
    lats: dict[str, Any] = {n: ev.summary.get("latency") for n, ev in d.items()}
    if not any(la and ("rtt_slo_ms" in la or "rtt_budget_ms" in la) for la in lats.values()):
        return []
    out = [
        "RTT mean/worst [ms] (largest regional demand-weighted mean / largest RTT of a "
        "route used; SLO violations [requests], budget excess [ms x requests]):",
        "",
    ]
    for name, la in lats.items():
        if not la:
            continue
        means = [v for v in la["mean_rtt_ms"].values() if v is not None]
        worst = [v for v in la["worst_rtt_ms"].values() if v is not None]
        out.append(
            f"- {name}: {_fmt(max(means, default=math.nan), 4)} / "
            f"{_fmt(max(worst, default=math.nan), 4)}; SLO violations "
            f"{_fmt(la.get('slo_violation_total', 0.0), 4)}, budget excess "
            f"{_fmt(la.get('budget_excess_total', 0.0), 4)}"
        )
    return out + [""]


def write_markdown_report(
    evals: Mapping[str, Evaluation] | Iterable[Evaluation],
    path: str | Path,
    *,
    baseline: str | None = "energy",
    title: str = "eqglb policy comparison",
    scenario: Scenario | None = None,
    objective: Objective | None = None,
    figures: Sequence[str | Path] = (),
    notes: Sequence[str] = (),
    provenance: Mapping[str, Any] | None = None,
    dispatches: Mapping[str, Dispatch] | None = None,
) -> Path:
    """Write a short Markdown report: scenario, objective, headline table, per-region tables.

    Parameters
    ----------
    evals : mapping name -> Evaluation, or evaluations
    path : str or Path
        Markdown file to write.
    baseline : str or None
        Policy the overheads [%] are measured against.
    scenario : Scenario, optional
        Adds its name, sizes, time span and description.
    objective : Objective, optional
        Adds the objective the policies were scored with.
    figures : paths
        Images to link, relative to the report's folder where possible.
    notes : str
        Extra paragraphs (the headline sentences) placed after the headline table.
    provenance : mapping, optional
        What produced the result (:func:`eqglb.comparison.provenance`), as a list.
    dispatches : mapping, optional
        Adds the model mix of each policy.
    """
    d = _as_mapping(evals)
    path = Path(path)
    df = summary_frame(d, baseline)
    has_base = baseline is not None and baseline in df.index
    parts = [f"# {title}", ""]
    if scenario is not None:
        T, N, J, K = scenario.shape
        parts += [
            f"Scenario **{scenario.name}**: {N} data centres, {J} user regions, {K} models, "
            f"{T} slots of {scenario.slot_hours:g} h from {scenario.time[0]:%Y-%m-%d %H:%M} "
            f"to {scenario.time[-1]:%Y-%m-%d %H:%M} UTC; "
            f"{float(np.asarray(scenario.demand).sum()):,.0f} requests in total.",
            "",
        ]
        if scenario.description:
            parts += [scenario.description.strip(), ""]
    if objective is not None:
        parts += [
            f"Objective [USD]: `{objective.describe()}` (mu_carbon in USD/kg CO2, "
            "mu_water in USD/L, mu_social in USD per unit of quality loss).",
            "",
        ]
    parts += ["## Headline numbers", ""]
    header = [
        "policy",
        "objective [USD]",
        "energy cost [USD]",
        f"energy vs {baseline}" if has_base else "energy vs baseline",
        "carbon total [kg]",
        "carbon max [kg]",
        "carbon max/mean",
        "water total [L]",
        "water max [L]",
        "water max/mean",
        "quality loss mean [-]",
        "quality loss max",
        "quality max/mean",
        "flag",
    ]
    rows = []
    for name, r in df.iterrows():
        rows.append(
            [
                str(name),
                _fmt(r["objective_usd"], 6),
                _fmt(r["energy_cost_usd"], 6),
                _pct(r["energy_cost_overhead_pct"]) if has_base else "-",
                _fmt(r["carbon_total_kg"], 5),
                _fmt(r["carbon_max_kg"], 5),
                _fmt(r["carbon_max_over_mean"], 3),
                _fmt(r["water_total_l"], 5),
                _fmt(r["water_max_l"], 5),
                _fmt(r["water_max_over_mean"], 3),
                _fmt(r["quality_loss_mean"], 3),
                _fmt(r["quality_loss_max"], 3),
                _fmt(r["quality_loss_max_over_mean"], 3),
                r["flag"] or "",
            ]
        )
    parts += [_md_table(header, rows), ""]
    if has_base:
        parts += [
            f"Overheads are changes versus the **{baseline}** policy [%]; negative "
            "numbers are reductions.",
            "",
        ]
    if objective is not None:
        from eqglb.comparison import model_mix, term_split

        split_rows = []
        for name, ev in d.items():
            sp = term_split(ev, objective)
            st, gap = _status_cell(ev)
            mix = "-"
            if scenario is not None and dispatches is not None and name in dispatches:
                mix = "/".join(
                    f"{100 * v:.0f}" for v in model_mix(scenario, dispatches[name]).values()
                )
            split_rows.append(
                [
                    name,
                    *(_fmt(sp[k], 5) for k in ("energy", "quality", "carbon", "water")),
                    st,
                    gap,
                    mix,
                ]
            )
        parts += [
            "## Objective split and certificates",
            "",
            _md_table(
                [
                    "policy",
                    "energy [USD]",
                    "quality [USD]",
                    "carbon [USD]",
                    "water [USD]",
                    "status",
                    "certified gap",
                    "model mix [% of requests]",
                ],
                split_rows,
            ),
            "",
        ]
    parts += _rtt_lines(d)
    for note in notes:
        parts += [note, ""]
    if provenance:
        parts += ["## Provenance", ""]
        for key, value in provenance.items():
            parts.append(f"- **{key}**: `{json.dumps(json_ready(value, 'none'))}`")
        parts.append("")
    flagged = [n for n, r in df.iterrows() if r["flagged"]]
    if flagged:
        parts += [
            "**Flagged** (solver not cleanly optimal or constraints violated; treat "
            "their numbers with care): " + ", ".join(f"{n} ({df.loc[n, 'flag']})" for n in flagged),
            "",
        ]
    reg = region_frame(d)
    for cost, label in (
        ("carbon", "Carbon per data centre [kg CO2]"),
        ("water", "Water per data centre [L]"),
        ("quality_loss", "Quality loss per user region"),
    ):
        sub = reg[reg["cost"] == cost].pivot(
            index="region_or_datacenter", columns="policy", values="value"
        )
        sub = sub.reindex(
            index=list(dict.fromkeys(reg.loc[reg["cost"] == cost, "region_or_datacenter"])),
            columns=list(d),
        )
        parts += [
            f"## {label}",
            "",
            _md_table(
                ["", *sub.columns],
                [
                    [str(i), *(_fmt(v, 4) for v in row)]
                    for i, row in zip(sub.index, sub.to_numpy(), strict=True)
                ],
            ),
            "",
        ]
    if figures:
        parts += ["## Figures", ""]
        for fig in figures:
            fp = Path(fig)
            try:
                rel = fp.resolve().relative_to(path.resolve().parent)
            except ValueError:
                rel = fp
            parts += [f"![{fp.stem.replace('_', ' ')}]({rel.as_posix()})", ""]
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
