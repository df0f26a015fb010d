"""Online policies against the hindsight optimum: gap, fairness, energy, speed.

Run from the repository root (the egl-2022 data is read from ``../shared``)::

    python benchmarks/bench_online.py                 # everything (~10 min on 2 cores)
    python benchmarks/bench_online.py --quick         # skip slow receding/year runs
    python benchmarks/bench_online.py --out DIR       # results.json, results.md, figures

Measured:

1. egl-2022 (full and partial connectivity), the study's weights: energy + 60 USD/m3 x max
   water + 1500 USD/t x max carbon (eqglb units: mu_water = 0.06 USD/L, mu_carbon =
   1.5 USD/kg, q = inf for both). Offline optimum (EquitableOffline) versus the online
   policy (defaults), MODEL.md's literal DMD (no horizon correction, explicit auxiliary
   step), a step-size sensitivity grid, and the receding-horizon policy with perfect
   forecasts (windows 24 and 48), perfect forecasts with lognormal error, and
   seasonal-naive forecasts.
2. The built-in scenario (14 days, seeds 0..2), the same weights plus the CLI's default
   quality weight, q = inf on every term.
3. Speed at 10 data centres x 10 regions x 4 models (built-in scenario, full connectivity):
   per-slot decision time (median, p90) and a full 8760-slot year.
4. Figure: cumulative carbon and water of every data centre over time, online versus
   offline, on egl-2022.

Nothing here is tuned on the fly: every policy runs with the parameters listed.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from eqglb.builtin import builtin_scenario
from eqglb.costs import Objective, coefficients
from eqglb.io.egl2022 import load_egl2022
from eqglb.online import OnlineDMD, RecedingHorizon, simulate_online
from eqglb.policies import EquitableOffline, make_policy
from eqglb.scenario import Dispatch, Scenario
from eqglb.simulate import Evaluation, evaluate

ROOT = Path(__file__).resolve().parents[1]
EGL = ROOT.parent / "shared" / "data" / "egl-2022"
STUDY = Objective(mu_carbon=1.5, mu_water=0.06, q_carbon=math.inf, q_water=math.inf)
#: Step-size grid of the sensitivity table (dimensionless eta per rule).
ETA_GRID = {"adaptive": [0.03, 0.1, 0.3], "sqrt": [0.03, 0.1, 0.3], "constant": [0.003, 0.01, 0.03]}


def _quiet_highs() -> None:
    try:
        from eqglb.cli import silence_highs_banner

        silence_highs_banner()
    except ImportError:
        pass


def row(
    name: str,
    ev: Evaluation,
    ref: Evaluation,
    energy_base: Evaluation,
    wall: float,
    d: Dispatch | None = None,
) -> dict[str, Any]:
    """Headline numbers of one run versus the offline optimum ``ref``."""
    out: dict[str, Any] = {
        "policy": name,
        "objective": ev.objective,
        "gap_pct": 100.0 * (ev.objective / ref.objective - 1.0),
        "energy_cost": ev.energy_cost,
        "energy_vs_offline_pct": 100.0 * (ev.energy_cost / ref.energy_cost - 1.0),
        "energy_vs_energy_baseline_pct": 100.0 * (ev.energy_cost / energy_base.energy_cost - 1.0),
        "feasible": ev.feasibility.ok(1e-6),
        "wall_s": wall,
    }
    for cost in ("carbon", "water", "social"):
        s = ev.summary[cost]
        out[f"{cost}_max"] = s["max"]
        out[f"{cost}_mean"] = s["mean"]
        out[f"{cost}_max_over_mean"] = s["max_over_mean"]
    if d is not None and d.info is not None:
        ex = d.info.extra
        out["decision_median_ms"] = 1e3 * ex.get("decision_time_median_s", math.nan)
        out["decision_p90_ms"] = 1e3 * ex.get("decision_time_p90_s", math.nan)
    return out


def run_online(sc: Scenario, obj: Objective, policy: Any) -> tuple[Dispatch, Evaluation, float]:
    t0 = time.perf_counter()
    d = simulate_online(sc, policy)
    wall = time.perf_counter() - t0
    return d, evaluate(sc, d, obj), wall


def study_case(
    sc: Scenario, obj: Objective, *, quick: bool, receding: bool, log: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """All policies on one scenario; returns the table and the dispatches for figures."""
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    off = EquitableOffline(obj).plan(sc)
    ref = evaluate(sc, off, obj)
    t_off = time.perf_counter() - t0
    eb = evaluate(sc, make_policy("energy", obj, model_rule="weighted").plan(sc), obj)
    rows.append(row("offline (hindsight)", ref, ref, eb, t_off))
    rows.append(row("energy baseline", eb, ref, eb, math.nan))
    log(f"  offline {ref.objective:,.2f} USD in {t_off:.1f} s")
    keep: dict[str, Any] = {"offline": off}

    def add(name: str, policy: Any) -> None:
        d, ev, wall = run_online(sc, obj, policy)
        r = row(name, ev, ref, eb, wall, d)
        rows.append(r)
        keep[name] = d
        log(f"  {name:48s} gap {r['gap_pct']:6.2f} %  ({wall:.1f} s)")

    add("online (defaults)", OnlineDMD(obj))
    add("online, no horizon correction", OnlineDMD(obj, horizon_gain=0.0))
    add(
        "MODEL.md literal DMD (explicit aux, constant)",
        OnlineDMD(obj, aux="explicit", step="constant", horizon_gain=0.0),
    )
    for step, etas in ETA_GRID.items():
        for eta in etas:
            for gain in (0.0, 1.0):
                if quick and gain == 0.0:
                    continue
                add(
                    f"online step={step} eta={eta:g} horizon_gain={gain:g}",
                    OnlineDMD(obj, step=step, eta=eta, horizon_gain=gain),
                )
    for gain in (0.3, 3.0):
        add(f"online horizon_gain={gain:g}", OnlineDMD(obj, horizon_gain=gain))
    if receding:
        add("receding w=24 perfect (oracle)", RecedingHorizon(obj, 24, "perfect"))
        add("receding w=24 seasonal-naive", RecedingHorizon(obj, 24, "seasonal"))
        if not quick:
            add("receding w=48 perfect (oracle)", RecedingHorizon(obj, 48, "perfect"))
            for err in (0.1, 0.2, 0.4):
                add(
                    f"receding w=24 perfect + error {err:g}",
                    RecedingHorizon(obj, 24, "perfect", error=err, seed=0),
                )
                add(
                    f"receding w=48 perfect + error {err:g}",
                    RecedingHorizon(obj, 48, "perfect", error=err, seed=0),
                )
    return rows, keep


def speed(log: Any, quick: bool) -> dict[str, Any]:
    """Per-slot decision time at 10 x 10 x 4 and a full 8760-slot year."""
    out: dict[str, Any] = {}
    days = 30 if quick else 365
    t0 = time.perf_counter()
    sc = builtin_scenario(days=days, seed=0)
    full = sc.replace(allowed=None, name="builtin-full-connectivity")
    out["scenario_build_s"] = time.perf_counter() - t0
    from eqglb.cli import default_mu_social

    for s in (sc, full):
        obj = Objective(
            mu_social=default_mu_social(s),
            mu_carbon=1.5,
            mu_water=0.06,
            q_social=math.inf,
            q_carbon=math.inf,
            q_water=math.inf,
        )
        pol = OnlineDMD(obj)
        t0 = time.perf_counter()
        d = simulate_online(s, pol)
        wall = time.perf_counter() - t0
        ex = d.info.extra if d.info is not None else {}
        key = "partial" if s is sc else "full"
        out[key] = {
            "slots": s.n_time,
            "shape": list(s.shape),
            "routes": int(np.asarray(s.allowed).sum()),
            "simulate_s": wall,
            "decision_median_ms": 1e3 * ex["decision_time_median_s"],
            "decision_p90_ms": 1e3 * ex["decision_time_p90_s"],
            "slot_solves": ex.get("slot_solves"),
        }
        log(
            f"  {key:8s} {s.n_time} slots x {s.shape[1:]}: {wall:.1f} s, median "
            f"{out[key]['decision_median_ms']:.2f} ms/slot"
        )
    return out


def figure(sc: Scenario, obj: Objective, dispatches: dict[str, Dispatch], path: Path) -> None:
    """Cumulative carbon and water per data centre: online (solid) vs offline (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    coef = coefficients(sc)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    colors = plt.cm.tab10(np.arange(len(sc.datacenters)))
    for ax, cost, unit, scale in (
        (axes[0], "carbon", "t CO2", 1e-3),
        (axes[1], "water", "m3", 1e-3),
    ):
        c = getattr(coef, cost)
        for name, style in (("offline", "--"), ("online (defaults)", "-")):
            y = np.asarray(dispatches[name].y)
            per_slot = np.einsum("tnk,tnk->tn", c, y.sum(axis=2))  # (time, datacenter)
            cum = np.cumsum(per_slot, axis=0) * scale
            for i, dc in enumerate(sc.datacenters):
                ax.plot(
                    sc.time,
                    cum[:, i],
                    style,
                    color=colors[i],
                    lw=1.2,
                    label=dc if style == "-" else None,
                )
        ax.set_title(f"cumulative {cost} per data centre [{unit}]")
        ax.set_ylabel(unit)
        ax.tick_params(axis="x", rotation=30)
    axes[0].legend(fontsize=7, ncol=2, title="solid: online, dashed: offline", title_fontsize=7)
    terms = [
        f"{obj.mu_carbon:g} USD/kg x max C" if obj.mu_carbon else "",
        f"{obj.mu_water:g} USD/L x max W" if obj.mu_water else "",
    ]
    fig.suptitle(
        f"{sc.name}: energy + "
        + " + ".join(t for t in terms if t)
        + " - online policy (defaults) vs hindsight optimum",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _f(x: Any, fmt: str) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# Online policies vs hindsight ({results['when']}, {results['machine']})",
        "",
        "gap: objective above the hindsight optimum; energy: energy cost versus the "
        "optimum's and the Energy baseline's; C [t CO2], W [m3], S [-]: largest regional "
        "cost and max/mean; ms: median decision time per slot; s: wall time of the run.",
        "",
    ]
    for case, rows in results["cases"].items():
        lines += [
            f"## {case}",
            "",
            "| policy | gap % | energy vs opt % | energy vs Energy % | C max | C max/mean "
            "| W max | W max/mean | S max | S max/mean | ms | s |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in rows:
            lines.append(
                f"| {r['policy']} | {r['gap_pct']:.2f} | {r['energy_vs_offline_pct']:.2f} | "
                f"{r['energy_vs_energy_baseline_pct']:.2f} | {r['carbon_max'] / 1e3:.2f} | "
                f"{_f(r['carbon_max_over_mean'], '.3f')} | {r['water_max'] / 1e3:.1f} | "
                f"{_f(r['water_max_over_mean'], '.3f')} | {_f(r['social_max'] or None, '.4f')} | "
                f"{_f(r['social_max_over_mean'], '.3f')} | "
                f"{_f(r.get('decision_median_ms', math.nan), '.2f')} | {_f(r['wall_s'], '.1f')} |"
            )
        lines.append("")
    if "speed" in results:
        lines += [
            "## speed (OnlineDMD defaults, built-in scenario)",
            "",
            "```",
            json.dumps(results["speed"], indent=1),
            "```",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "online")
    ap.add_argument("--egl", type=Path, default=EGL)
    ap.add_argument("--quick", action="store_true", help="skip the slow runs")
    ap.add_argument(
        "--only",
        choices=("egl", "builtin", "speed", "figure", "render"),
        default=None,
        help="one part; 'render' rewrites results.md from "
        "results.json, 'figure' redraws the egl-2022 figure",
    )
    args = ap.parse_args(argv)
    _quiet_highs()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only == "render":
        results = json.loads((args.out / "results.json").read_text())
        (args.out / "results.md").write_text(markdown(results))
        return 0
    if args.only == "figure":
        sc = load_egl2022(args.egl, "full")
        figure(
            sc,
            STUDY,
            {
                "offline": EquitableOffline(STUDY).plan(sc),
                "online (defaults)": simulate_online(sc, OnlineDMD(STUDY)),
            },
            args.out / "cumulative_egl2022.png",
        )
        return 0

    def log(msg: str) -> None:
        print(msg, flush=True)

    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, python {sys.version.split()[0]}",
        "cases": {},
    }
    if args.only in (None, "egl"):
        for conn in ("full", "partial"):
            sc = load_egl2022(args.egl, conn)
            log(f"egl-2022 {conn} connectivity, {sc.n_time} slots")
            rows, keep = study_case(sc, STUDY, quick=args.quick, receding=conn == "full", log=log)
            results["cases"][f"egl-2022 {conn}"] = rows
            if conn == "full":
                figure(sc, STUDY, keep, args.out / "cumulative_egl2022.png")
    if args.only in (None, "builtin"):
        from eqglb.cli import default_mu_social

        for seed in (0, 1, 2) if not args.quick else (0,):
            sc = builtin_scenario(days=14, seed=seed)
            obj = Objective(
                mu_social=default_mu_social(sc),
                mu_carbon=1.5,
                mu_water=0.06,
                q_social=math.inf,
                q_carbon=math.inf,
                q_water=math.inf,
            )
            log(f"builtin seed {seed}: {obj.describe()}")
            rows, _ = study_case(sc, obj, quick=True, receding=seed == 0, log=log)
            results["cases"][f"builtin 14 d seed {seed}"] = rows
    if args.only in (None, "speed"):
        log("speed at 10 x 10 x 4")
        results["speed"] = speed(log, args.quick)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "results.md").write_text(markdown(results))
    log(f"wrote {args.out / 'results.json'} and results.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
