"""Benchmark: the latency-limited year (issue 12, item 3) with the streaming solver.

Builds the ``year-latency`` tier of ``instances.py`` (100 data centres x 1000 regions x 5
models x 8760 h on GeoNames cities, RTT from :mod:`eqglb.latency`, each region limited to
the sites within its RTT SLO, demand diurnal in local time), prints the facts that make it
the hard case (route classes, allowed sites per region), solves it with
:class:`eqglb.structured.StreamingOffline` for each q and reports: certified gap, wall
time, time per pricing pass, passes, warm start, master, peak memory (PSS of the process
and its workers above the level before the solve), the share of the run spent in pricing
(the parallel part) versus on the driver, the model mix and the spread of regional
quality loss (the quality term is active when >= 10 % of requests are not on the
smallest model and regional losses differ), and checks a few rebuilt slots against
demand, capacity, routing and the RTT SLO.

Usage::

    python benchmarks/bench_year_latency.py                       # full year, q = 2 and inf
    python benchmarks/bench_year_latency.py --days 14 --q 2       # two weeks, same places
    python benchmarks/bench_year_latency.py --json benchmarks/results/year_latency.json
    python benchmarks/bench_year_latency.py --q 2 --backend ray --address auto  # a Ray cluster

The quality weight is given for the full year and scaled by T / 8760 for shorter
horizons (the quality term is a per-region average, the other terms grow with T), so
every horizon has the same trade-off.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_solver import MU_CARBON, MU_WATER, PSS_INTERVAL, PeakRSS, machine  # noqa: E402
from instances import TIERS, make_instance  # noqa: E402

from eqglb.costs import Objective  # noqa: E402
from eqglb.metrics import lq_norm  # noqa: E402
from eqglb.structured import StreamingOffline  # noqa: E402

#: Quality weight for the full year per q [USD per unit of regional average quality loss]:
#: large enough that the quality term moves requests to larger models.
MU_SOCIAL_YEAR = {"2": 4.0e6, "inf": 5.0e8}


def year_latency_objective(q: str, n_slots: int, mu_social: float | None = None) -> Objective:
    """The benchmark objective at norm order ``q`` for a horizon of ``n_slots`` hours."""
    mu = MU_SOCIAL_YEAR.get(q, MU_SOCIAL_YEAR["2"]) if mu_social is None else mu_social
    return Objective.uniform(
        q, mu_social=mu * n_slots / 8760.0, mu_carbon=MU_CARBON, mu_water=MU_WATER
    )


def describe(sc: Any) -> dict[str, Any]:
    """Route classes and reach of the scenario."""
    al = np.asarray(sc.allowed)
    keys = {al[:, j, :].tobytes() for j in range(al.shape[1])}
    per_region = al.any(axis=2).sum(axis=0)
    lat = np.asarray(sc.latency)
    used_rtt = np.where(al.any(axis=2), lat, np.nan)
    return {
        "shape_TNJK": list(sc.shape),
        "variables": int(np.prod(sc.shape)),
        "allowed_variables": int(al.sum()) * sc.n_time,
        "route_classes": len(keys),
        "sites_per_region_min_mean_max": [
            int(per_region.min()),
            float(per_region.mean()),
            int(per_region.max()),
        ],
        "max_allowed_rtt_ms": float(np.nanmax(used_rtt)),
        "geography": sc.attrs.get("geography"),
        "rtt_slo_ms": sc.attrs.get("rtt_slo_ms"),
        "regions_slo_raised": sc.attrs.get("regions_slo_raised"),
    }


def check_slots(sc: Any, res: Any, n: int, seed: int) -> tuple[float, float, list[int]]:
    """Rebuild ``n`` random slots; worst relative violation (demand, capacity, routing,
    RTT SLO, stored loads) and seconds per rebuilt slot."""
    T = sc.n_time
    rng = np.random.default_rng(seed)
    slots = np.sort(rng.choice(T, size=min(n, T), replace=False))
    cap_r = np.asarray(sc.capacity_per_request)
    lat = np.asarray(sc.latency)
    slo = np.asarray(sc.rtt_slo_ms)
    over_slo = (lat > slo[None, :])[:, :, None] & np.ones(sc.shape[3], dtype=bool)
    worst, t0 = 0.0, time.perf_counter()
    for t in slots:
        y = res.slot_dispatch(int(t))
        d = np.asarray(sc.demand)[t]
        dem = np.abs(y.sum(axis=(0, 2)) - d).max() / max(1.0, d.max())
        use = y.sum(axis=1) @ cap_r
        capv = np.clip(use - np.asarray(sc.capacity)[t], 0, None).max()
        route = np.abs(y[~np.asarray(sc.allowed)]).max(initial=0.0) / max(1.0, d.max())
        slov = np.abs(y[over_slo]).max(initial=0.0) / max(1.0, d.max())
        load = np.abs(y.sum(axis=1) - res.loads[t]).max() / max(1.0, d.max())
        worst = max(worst, dem, capv / max(1.0, float(np.max(sc.capacity))), route, slov, load)
    return worst, (time.perf_counter() - t0) / max(1, slots.size), slots.tolist()


def _stages(stages: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Homotopy stages with their norm order as a string (``"8"``, ``"inf"``)."""
    if stages is None:
        return None
    return [{**s, "q": "inf" if math.isinf(s["q"]) else f"{s['q']:g}"} for s in stages]


def solve_one(sc: Any, q: str, args: argparse.Namespace) -> dict[str, Any]:
    obj = year_latency_objective(q, sc.n_time, args.mu_social)
    events: list[tuple[float, str]] = []

    def progress(d: dict[str, Any]) -> None:
        if d["event"] == "iteration":
            print(
                f"    iteration {d['iteration']:3d}: upper {d['upper']:.10g} lower "
                f"{d['lower']:.10g} gap {d['gap']:.2e} ({d['elapsed']:.0f} s)",
                flush=True,
            )
        elif d["event"] == "pricing" and d["done"] == d["blocks"]:
            print(f"    pricing pass {d['pass']} done ({d['elapsed']:.0f} s)", flush=True)
        elif d["event"] == "warm_start":
            print(f"    warm start on {d['slots']} sampled slots", flush=True)
        events.append((d["elapsed"], d["event"]))

    solver = StreamingOffline(
        obj,
        tol=args.tol,
        workers=args.workers,
        block_slots=args.block_slots,
        backend=args.backend,
        address=args.address,
        time_limit=args.time_limit,
        even_columns=not args.no_even_columns,
        **({} if args.homotopy is None else {"homotopy": tuple(args.homotopy)}),
        homotopy_horizon=None if args.homotopy_horizon < 0 else args.homotopy_horizon,
        **({} if args.homotopy_share is None else {"homotopy_share": args.homotopy_share}),
        transfer_mixture=not args.no_transfer,
        homotopy_lift=not args.no_lift,
        progress=progress,
    )
    load_before = list(os.getloadavg())
    cpu0 = os.times()
    with PeakRSS(interval=PSS_INTERVAL, pss=True) as mem:
        t1 = time.perf_counter()
        res = solver.solve(sc)
        elapsed = time.perf_counter() - t1
    cpu1 = os.times()
    info = res.info
    c = res.costs
    mix = res.loads.sum(axis=(0, 1), dtype=float)
    mix = mix / mix.sum()
    terms = {
        "energy": c.energy_cost,
        "social": obj.terms["social"].mu * lq_norm(c.social, obj.terms["social"].q),
        "carbon": MU_CARBON * lq_norm(c.carbon, obj.terms["carbon"].q),
        "water": MU_WATER * lq_norm(c.water, obj.terms["water"].q),
    }
    pricing = float(info["pricing_time"])
    warm = float(info.get("warm_start_time", 0.0))
    warm_pricing = float(info.get("warm_start_pricing_time", 0.0))
    master = float(info["master_time"])
    parallel = pricing + warm_pricing  # slot LPs solved on the workers
    row: dict[str, Any] = {
        "q": q,
        "mu_social": obj.terms["social"].mu,
        "status": res.status,
        "time_s": elapsed,
        "objective": res.objective,
        "dual_bound": res.dual_bound,
        "gap": res.gap,
        "iterations": res.iterations,
        "passes": info["passes"],
        # the stages' orders as strings ("inf" is not JSON)
        "homotopy": _stages(info.get("homotopy")),
        "warm_start_homotopy": _stages(info.get("warm_start_homotopy")),
        "pricing_time_s": pricing,
        "time_per_pass_s": pricing / max(1, info["passes"]),
        "warm_start_time_s": warm,
        "warm_start_iterations": info.get("warm_start_iterations"),
        "warm_start_pricing_time_s": warm_pricing,
        "warm_start_master_time_s": info.get("warm_start_master_time"),
        "warm_start_simplex_iterations": info.get("warm_start_simplex_iterations"),
        "master_time_s": master,
        "other_driver_time_s": elapsed - pricing - warm - master,
        "parallel_time_s": parallel,
        "parallel_share": parallel / elapsed,
        "driver_share": 1.0 - parallel / elapsed,
        "peak_pss_mib": mem.mib,
        "pss_sampler_cpu_s": mem.cpu_s,
        "parent_cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
        "children_cpu_s": (cpu1.children_user - cpu0.children_user)
        + (cpu1.children_system - cpu0.children_system),
        "simplex_iterations": info.get("simplex_iterations"),
        "block_slots": info["block_slots"],
        "blocks": info["blocks"],
        "workers": info["workers"],
        "backend": args.backend,
        "address": args.address,
        "classes": info.get("classes"),
        "compact_columns": info.get("compact_columns"),
        "compact_rows": info.get("compact_rows"),
        "slot_form": info.get("slot_form"),
        "slot_lp_rows": info.get("slot_lp_rows"),
        "slot_lp_columns": info.get("slot_lp_columns"),
        "load_average_before": load_before,
        "load_average_after": list(os.getloadavg()),
        "terms_usd": terms,
        "model_mix": mix.tolist(),
        "not_smallest_share": float(1.0 - mix[0]),
        "quality_loss_min_mean_max": [
            float(c.social.min()),
            float(c.social.mean()),
            float(c.social.max()),
        ],
        "distinct_regional_losses": int(np.unique(np.round(c.social, 6)).size),
    }
    print(
        f"  q={q:>3}: {res.status} in {elapsed:.1f} s, certified gap {res.gap:.2e}; "
        f"{info['passes']} pricing passes of {row['time_per_pass_s']:.1f} s "
        f"({info['workers']} workers, blocks of {info['block_slots']} slots), warm start "
        f"{warm:.1f} s ({warm_pricing:.1f} s of it on the workers), master {master:.1f} s, "
        f"other driver {row['other_driver_time_s']:.1f} s; parallel share "
        f"{row['parallel_share']:.0%}; peak PSS +{mem.mib:.0f} MiB (sampler {mem.cpu_s:.1f} s "
        f"CPU); {row['simplex_iterations']} "
        f"simplex iterations ({info.get('slot_form')} slot LP {info.get('slot_lp_rows')} x "
        f"{info.get('slot_lp_columns')}); load average {load_before[0]:.2f} -> "
        f"{row['load_average_after'][0]:.2f}",
        flush=True,
    )
    print(
        "        terms [USD]: " + ", ".join(f"{k} {v:.4g}" for k, v in terms.items()),
        flush=True,
    )
    stages = [("sample ", st) for st in row["warm_start_homotopy"] or []]
    for where, st in stages + [("", st) for st in row["homotopy"] or []]:
        print(
            f"        {where}stage q={st['q']}: {st['passes']} passes, {st['time']:.1f} s, "
            f"upper {st['upper']:.8g} lower {st['lower']:.8g} gap {st['gap']:.2e}",
            flush=True,
        )
    active = row["not_smallest_share"] >= 0.10 and row["distinct_regional_losses"] > 1
    print(
        f"        share of requests per model {' '.join(f'{m:.3f}' for m in mix)}; "
        f"not on the smallest model {row['not_smallest_share']:.1%}; regional quality loss "
        f"min/mean/max {c.social.min():.3f}/{c.social.mean():.3f}/{c.social.max():.3f} "
        f"({row['distinct_regional_losses']} distinct values); quality term active: "
        f"{'yes' if active else 'NO'}",
        flush=True,
    )
    row["quality_term_active"] = bool(active)
    if args.check_slots:
        worst, per, slots = check_slots(sc, res, args.check_slots, args.seed)
        row.update(checked_slots=slots, max_violation_checked_slots=worst, slot_rebuild_s=per)
        print(
            f"        {len(slots)} slots rebuilt ({per:.2f} s each): worst relative violation "
            f"(demand, capacity, routing, RTT SLO, loads) {worst:.1e}",
            flush=True,
        )
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--q", nargs="+", default=["2", "inf"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--days", type=float, default=None, help="horizon [days] (default 365)")
    ap.add_argument("--tol", type=float, default=0.01, help="target certified gap [-]")
    ap.add_argument("--mu-social", type=float, default=None, help="full-year quality weight")
    ap.add_argument("--rtt-slo-ms", type=float, default=None)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--block-slots", type=int, default=None)
    ap.add_argument("--backend", default="process", choices=["process", "serial", "ray"])
    ap.add_argument(
        "--address",
        default=None,
        help="running Ray cluster to price on (with --backend ray), e.g. auto or "
        "ray://head:10001; default: a local Ray instance with --workers CPUs",
    )
    ap.add_argument("--time-limit", type=float, default=None, help="per solve [s]")
    ap.add_argument(
        "--homotopy",
        type=float,
        nargs="*",
        default=None,
        help="norm orders of the smooth stages before q = inf (default the solver's "
        "8 32 128; none: q = inf directly)",
    )
    ap.add_argument(
        "--homotopy-horizon",
        type=int,
        default=1,
        help="smooth stages also run on the horizon after the sample (-1: all)",
    )
    ap.add_argument(
        "--homotopy-share",
        type=float,
        default=None,
        help="most share of the time limit for the smooth stages (default the solver's)",
    )
    ap.add_argument("--no-transfer", action="store_true", help="no transferred mixture")
    ap.add_argument(
        "--no-lift",
        action="store_true",
        help="the q = inf stage without its first pass at lifted prices (for comparison)",
    )
    ap.add_argument(
        "--no-even-columns",
        action="store_true",
        help="master columns only as the slot LPs split each class (for comparison)",
    )
    ap.add_argument("--check-slots", type=int, default=4)
    ap.add_argument("--describe-only", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    kw: dict[str, Any] = {}
    if args.days is not None:
        kw["days"] = args.days
    if args.rtt_slo_ms is not None:
        kw["rtt_slo_ms"] = args.rtt_slo_ms
    print(f"machine: {machine()}", flush=True)
    t0 = time.perf_counter()
    with PeakRSS(interval=0.05) as mem_build:
        sc = make_instance("year-latency", seed=args.seed, **kw)
    build = time.perf_counter() - t0
    desc = describe(sc)
    T, N, J, K = sc.shape
    print(
        f"year-latency seed {args.seed}: {N} datacenters x {J} regions x {K} models x {T} "
        f"slots built in {build:.1f} s (+{mem_build.mib:.0f} MiB); {desc['variables']:.3g} "
        f"variables, {desc['allowed_variables']:.3g} allowed; {desc['route_classes']} route "
        f"classes; sites per region min/mean/max "
        f"{'/'.join(f'{v:.3g}' for v in desc['sites_per_region_min_mean_max'])}; RTT SLO "
        f"{desc['rtt_slo_ms']} ms ({desc['regions_slo_raised']} remote regions raised); "
        f"geography: {desc['geography']}",
        flush=True,
    )
    out: dict[str, Any] = {
        "machine": machine(),
        "command": "python "
        + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "commit": _commit(),
        "eqglb_path": _eqglb_path(),
        "python": platform.python_version(),
        "tier": TIERS["year-latency"].__dict__,
        "build_time_s": build,
        "build_rss_mib": mem_build.mib,
        "instance": desc,
        "rows": [],
    }
    if not args.describe_only:
        for q in args.q:
            out["rows"].append(solve_one(sc, q, args))
            if args.json:
                args.json.write_text(json.dumps(out, indent=2, default=_default))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=_default))
    return 0


def _default(x: Any) -> Any:
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def _commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _eqglb_path() -> str:
    import eqglb

    return str(Path(eqglb.__file__).resolve().parent)


if __name__ == "__main__":
    raise SystemExit(main())
