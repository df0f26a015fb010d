"""Online policies with a switching cost and a change limit on the built-in scenario
(docs/switching.md, "Online"): movement, energy cost and objective per setting.

    python benchmarks/bench_online_switching.py [--days 2] [--score 1e-6]

Every row is scored with the same objective, the defaults' at q = 2 with a switching cost
of ``--score`` USD per request moved, whatever the policy priced when deciding.
"""

from __future__ import annotations

import argparse
import time

from eqglb.builtin import builtin_scenario
from eqglb.defaults import build_objective
from eqglb.online import OnlineDMD, RecedingHorizon, simulate_online
from eqglb.simulate import evaluate


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--score", type=float, default=1e-6, help="USD per request moved")
    args = ap.parse_args(argv)
    sc = builtin_scenario(days=args.days)
    base = build_objective(sc, q="2")
    score = base.replace(switching_cost=args.score)
    rows = [("online", sw, None) for sw in (0.0, 1e-7, 1e-6, 1e-5, 1e-4)]
    rows += [("online", 0.0, L) for L in (0.2, 0.05, 0.0)]
    rows += [("receding", sw, None) for sw in (0.0, 1e-6, 1e-5)]
    print(
        f"{'policy':9} {'switching':>9} {'limit':>5} {'moved':>11} {'max slot':>9} "
        f"{'energy':>8} {'objective':>9} {'over':>4} {'time':>6}"
    )
    print(
        f"{'':9} {'[USD/req]':>9} {'[-]':>5} {'[requests]':>11} {'[req]':>9} {'[USD]':>8} "
        f"{'[USD]':>9} {'[#]':>4} {'[s]':>6}"
    )
    for name, sw, L in rows:
        obj = base.replace(switching_cost=sw)
        pol = (
            OnlineDMD(objective=obj, max_change=L)
            if name == "online"
            else RecedingHorizon(obj, window=6)
        )
        t0 = time.perf_counter()
        d = simulate_online(sc, pol)
        dt = time.perf_counter() - t0
        ev = evaluate(sc, d, score)
        mv = ev.summary["movement"]
        over = pol.run_stats().get("change_limit", {}).get("slots_over", 0)
        print(
            f"{name:9} {sw:9.0e} {'-' if L is None else f'{L:.2f}':>5} "
            f"{mv['requests']:11,.0f} {mv['max_slot']:9,.0f} {ev.energy_cost:8.2f} "
            f"{ev.objective:9.2f} {over:4d} {dt:6.2f}"
        )


if __name__ == "__main__":
    main()
