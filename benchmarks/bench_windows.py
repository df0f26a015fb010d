"""Horizon-free online routing: a year of slots in 30-day fairness windows.

Runs the online policy (DMD) with ``window = 30 days`` over the built-in scenario extended
to 365 days (8,760 hourly slots), and compares each window's worst data centre's carbon and
water, worst region's quality loss and objective with that window's hindsight optimum
(the certified ``equitable`` solve of the window alone, same objective). Prints one row per
window and the worst ratio per figure; ``--json`` writes them.

    python benchmarks/bench_windows.py [--days 365] [--window-days 30] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from eqglb.builtin import builtin_scenario
from eqglb.defaults import build_objective
from eqglb.online import OnlineDMD, simulate_online
from eqglb.policies import make_policy
from eqglb.scenario import Dispatch
from eqglb.simulate import evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--window-days", type=int, default=30)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    sc = builtin_scenario(days=a.days)
    W = 24 * a.window_days
    # weights of one window (the quality weight scales with the window's demand)
    obj = build_objective(sc.slice_time(0, W))
    t0 = time.perf_counter()
    d = simulate_online(sc, OnlineDMD(objective=obj, window=W))
    online_s = time.perf_counter() - t0
    y = np.asarray(d.y)
    rows = []
    keys = (("carbon", "C max"), ("water", "W max"), ("social", "Q max"))
    print(f"online DMD over {sc.n_time} slots in {online_s:.1f} s; windows of {W} slots")
    print("window  " + "  ".join(f"{lab:>16}" for _, lab in keys) + "  objective ratio")
    for start in range(0, sc.n_time, W):
        stop = min(sc.n_time, start + W)
        if stop - start < W // 2:  # a short tail window is not a fair comparison
            break
        part = sc.slice_time(start, stop)
        ev_on = evaluate(part, Dispatch(y[start:stop], policy="online"), obj)
        ev_opt = evaluate(part, make_policy("equitable", obj).plan(part), obj)
        row = {"window": start // W, "slots": stop - start, "status": str(ev_opt.info.status)}
        for k, _ in keys:
            on, opt = max(getattr(ev_on, k).values()), max(getattr(ev_opt, k).values())
            row[f"{k}_max_online"], row[f"{k}_max_hindsight"] = on, opt
            row[f"{k}_ratio"] = on / opt if opt > 0 else float("nan")
        row["objective_ratio"] = ev_on.objective / ev_opt.objective
        rows.append(row)
        print(
            f"{row['window']:>6}  "
            + "  ".join(
                f"{row[f'{k}_max_online']:>7.4g}/{row[f'{k}_max_hindsight']:<7.4g}" for k, _ in keys
            )
            + f"  {row['objective_ratio']:.3f}"
        )
    worst = {f"{k}_ratio": max(r[f"{k}_ratio"] for r in rows) for k, _ in keys}
    worst["objective_ratio"] = max(r["objective_ratio"] for r in rows)
    print(
        "worst ratio online / hindsight per window: "
        + ", ".join(f"{k} {v:.3f}" for k, v in worst.items())
    )
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(
                {
                    "days": a.days,
                    "window_slots": W,
                    "online_s": online_s,
                    "rows": rows,
                    "worst": worst,
                },
                fh,
                indent=1,
            )


if __name__ == "__main__":
    main()
