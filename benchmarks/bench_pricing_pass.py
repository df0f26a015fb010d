"""One pricing pass of the streaming solver over the year tier against the memory floor.

    python benchmarks/bench_pricing_pass.py [--slots 8760] [--workers 2] [--reps 2]

Issue 12 asks for a pricing pass with one route class within 10x of the memory floor.
The tier is ``year`` (100 data centres x 1000 regions x 5 models, every region allowed
every data centre: one class), the objective that of ``bench_solver.py --tier year``
(q = 2 on every term). All in one process, in this order:

* **floors** (one process, one core), each the best of ``--reps``:
  ``raw``: one read of every slot's inputs (energy cost, carbon and water per request,
  demand, capacity) as the solver holds them; ``columns``: a loop over the slots that
  forms every compact route's priced cost (``CompactLP.slot_costs``, gathered at the
  5 500 compact columns) and sums it with the slot's demand and capacity, i.e. what a
  pass must at least read, in the same per-slot Python loop as the pass;
* **pass**: ``StreamingOffline`` (warm start, default blocks, ``--workers`` processes)
  run to its first certified gap; the time per pricing pass is ``pricing_time /
  passes``, and the worker CPU per slot is the pass time x workers / slots.

The ratios printed are the pass's wall time over each floor, and the workers' CPU per
slot over the floor per slot (per core). The issue's own figure for the floor (0.74 s,
measured by its author) is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_solver import MU_CARBON, MU_SOCIAL, MU_WATER, machine  # noqa: E402
from instances import TIERS, make_scenario  # noqa: E402

from eqglb.costs import Objective  # noqa: E402
from eqglb.structured import StreamingOffline  # noqa: E402
from eqglb.structured.compact import CompactLP  # noqa: E402

#: The floor stated in issue 12 for a one-class year pass [s].
ISSUE_FLOOR_S = 0.74


def floor_raw(lp: CompactLP) -> float:
    """Seconds to read every slot's inputs once (vectorised)."""
    t0 = time.perf_counter()
    acc = float(lp.energy_cost.sum()) + float(lp.demand.sum()) + float(lp.capacity.sum())
    acc += sum(float(v.sum()) for v in lp.site.values())
    dt = time.perf_counter() - t0
    assert np.isfinite(acc)
    return dt


def floor_columns(lp: CompactLP, gamma: np.ndarray) -> float:
    """Seconds to form and read every compact column's priced cost, slot by slot."""
    t0 = time.perf_counter()
    acc = 0.0
    for t in range(lp.shape[0]):
        alpha, beta = lp.slot_costs(t, gamma)
        c = np.concatenate([beta[lp.yj, lp.yk], alpha[lp.zi, lp.zk]])
        acc += float(c.sum()) + float(lp.demand[t].sum()) + float(lp.capacity[t].sum())
    dt = time.perf_counter() - t0
    assert np.isfinite(acc)
    return dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slots", type=int, default=8760, help="horizon [hourly slots]")
    ap.add_argument("--workers", type=int, default=2, help="pricing worker processes")
    ap.add_argument("--reps", type=int, default=2, help="repetitions of each floor")
    args = ap.parse_args(argv)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}")
    tier = TIERS["year"]
    sc = make_scenario(
        tier.datacenters, tier.regions, tier.models, args.slots, reach=tier.reach, seed=0
    )
    T = sc.n_time
    obj = Objective.uniform(
        2.0, mu_social=MU_SOCIAL * T / 8760, mu_carbon=MU_CARBON, mu_water=MU_WATER
    )
    lp = CompactLP.of(sc, obj)
    print(
        f"tier year: {sc.shape}, {lp.n_classes} route class(es), compact columns "
        f"{lp.n_col}, slot LP {lp.lp_form} {lp.lp_size[0]} x {lp.lp_size[1]}"
    )
    gamma = np.full(int(lp.offsets[-1]), 0.1)
    raw = min(floor_raw(lp) for _ in range(args.reps))
    cols = min(floor_columns(lp, gamma) for _ in range(args.reps))
    solver = StreamingOffline(obj, tol=0.01, workers=args.workers)
    t0 = time.perf_counter()
    res = solver.solve(sc)
    wall = time.perf_counter() - t0
    info = res.info
    per_pass = info["pricing_time"] / max(1, info["passes"])
    cpu_slot = per_pass * info["workers"] / T
    print(
        f"solve: {res.status} in {wall:.1f} s, certified gap {res.gap:.2e}, "
        f"{info['passes']} pricing pass(es) of {per_pass:.2f} s on {info['workers']} "
        f"workers ({1e3 * cpu_slot:.3f} ms of worker CPU a slot), warm start "
        f"{info.get('warm_start_time', 0.0):.1f} s"
    )
    print(f"{'floor':>34} {'[s]':>7} {'pass / floor':>13} {'per core':>9}")
    floors = [("raw: read every slot's inputs", raw), ("columns: every compact column", cols)]
    if T == 8760:
        floors.append(("issue 12's figure (full year)", ISSUE_FLOOR_S))
    for name, f in floors:
        print(f"{name:>34} {f:7.3f} {per_pass / f:12.1f}x {cpu_slot * T / f:8.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
