"""The eGLB study on its public data, quickly: baselines, eGLB-Off and the equitable optimum.

Loads the eGLB study's scenario (arXiv 2307.05494: 10 data centres, 10 gateways, hourly
price [USD/kWh], carbon [kg CO2/kWh] and water [L/kWh] from 2022-09-22) with
:func:`eqglb.io.egl2022.load_egl2022`, solves the study's baselines and eGLB-Off (energy
cost + 60 USD/m3 x the worst site's water + 1500 USD/t x the worst site's carbon), then the
equitable optimum with the project defaults at q = 2, and prints one comparison table.
The full reproduction with the published figures is ``eqglb reproduce egl2022``.

Run (about 5-10 s)::

    python examples/egl2022_study.py                        # ../shared/data/egl-2022, 7 days
    python examples/egl2022_study.py --data PATH --hours 457 --out egl-study/
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "egl-2022"


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="the egl-2022 folder (default ../shared/data/egl-2022)",
    )
    ap.add_argument(
        "--hours",
        type=int,
        default=168,
        help="horizon [h] from 2022-09-22 00:00 UTC (the study: 457; default 168)",
    )
    ap.add_argument("--connectivity", choices=("full", "partial"), default="full")
    ap.add_argument("--out", type=Path, default=None, help="folder for comparison.csv (optional)")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        ap.error(
            f"--data {args.data}: not a folder; give the egl-2022 folder "
            "(AI_workload.csv, price/, carbon/, water/)"
        )
    if not 1 <= args.hours <= 457:
        ap.error(f"--hours {args.hours}: give 1 to 457 (the study's common hours)")

    import pandas as pd

    from eqglb.cli import silence_highs_banner
    from eqglb.costs import Objective
    from eqglb.defaults import build_objective
    from eqglb.io.egl2022 import load_egl2022
    from eqglb.policies import make_policy
    from eqglb.simulate import run_policy

    silence_highs_banner()
    sc = load_egl2022(args.data, connectivity=args.connectivity, horizon=args.hours)
    T, N, J, K = sc.shape
    print(
        f"{sc.name}: {N} data centres, {J} gateways, {K} model(s), {T} hourly slots "
        f"from {sc.time[0]:%Y-%m-%d %H:%M} UTC"
    )

    # eGLB-Off's objective: 1500 USD/t = 1.5 USD/kg CO2, 60 USD/m3 = 0.06 USD/L, worst site
    eglb = Objective(
        mu_carbon=1.5, mu_water=0.06, q_social=1.0, q_carbon=float("inf"), q_water=float("inf")
    )
    rows: dict[str, dict[str, float]] = {}
    for name in ("nearest", "energy", "carbon", "water", "eglb"):
        _, ev = run_policy(sc, make_policy(name, eglb), eglb)
        rows[name] = _row(ev)
    equitable = build_objective(sc, q="2")  # the project's defaults, normalised norms
    _, ev = run_policy(sc, make_policy("equitable", equitable), equitable)
    rows["equitable (q = 2, defaults)"] = _row(ev)

    table = pd.DataFrame(rows).T
    with pd.option_context(
        "display.float_format", "{:,.1f}".format, "display.width", 160, "display.max_columns", None
    ):
        print(table)
    best = min(("nearest", "energy", "carbon", "water"), key=lambda n: rows[n]["carbon_max_kg"])
    print(
        f"eGLB-Off worst-site carbon {rows['eglb']['carbon_max_kg']:,.1f} kg vs "
        f"{rows[best]['carbon_max_kg']:,.1f} kg for the best baseline ({best})"
    )
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out / "comparison.csv")
        print(f"wrote {args.out / 'comparison.csv'}")
    return rows


def _row(ev) -> dict[str, float]:
    """Objective it was scored with and energy cost [USD], worst and total site carbon
    [kg CO2] and water [L]."""
    carbon, water = list(ev.carbon.values()), list(ev.water.values())
    return {
        "objective_usd": float(ev.objective),
        "energy_cost_usd": float(ev.energy_cost),
        "carbon_max_kg": max(carbon),
        "carbon_total_kg": sum(carbon),
        "water_max_l": max(water),
        "water_total_l": sum(water),
    }


if __name__ == "__main__":
    main()
