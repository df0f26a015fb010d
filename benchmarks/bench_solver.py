"""Benchmark: structured exact solver versus the reference cvxpy path, same process.

For each norm order q the script builds the tier's seeded instance(s) (``instances.py``),
solves them with the reference :class:`eqglb.policies.EquitableOffline` (one vectorised
cvxpy problem; Clarabel, or HiGHS when the problem is an LP, i.e. q in {1, inf}) and with
:class:`eqglb.structured.StructuredOffline`, and prints per solve: wall time [s], peak
resident memory above the level before the solve [MiB] (sampled every 5 ms from
/proc/<pid>/statm of the process and its worker processes, so native solver memory and
workers count too; the structured solver runs first
so that memory the reference frees does not hide its peak; ``--tracemalloc`` adds the
Python-heap peak from a second, untimed run), the objective recomputed from the
dispatch [USD], the certified relative gap of the structured solver, the relative
difference of the two objectives and the speed ratio (reference / structured).

Usage::

    python benchmarks/bench_solver.py --tier paper             # q = 2, 3, inf
    python benchmarks/bench_solver.py --tier medium --q 2 inf
    python benchmarks/bench_solver.py --tier paper --q inf --reference-solver CLARABEL
    python benchmarks/bench_solver.py --tier paper --json results.json
    python benchmarks/bench_solver.py --tier medium --solver streaming --q 2
    python benchmarks/bench_solver.py --tier year --q 2 --tol 0.01   # streaming only

The year tier (100 x 1000 x 5 x 8760, 4.4e9 variables) runs only the streaming solver
(:class:`eqglb.structured.StreamingOffline`): the reference would need the whole LP in
memory. It reports the certified gap, the peak memory of the process and its workers,
the objective's terms, and checks sampled slots' full dispatches rebuilt on demand.

Timings on a shared machine are noisy: run more than once and compare like with like.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from instances import TIERS, make_instance  # noqa: E402

from eqglb.costs import Objective, coefficients, objective_value, regional_costs  # noqa: E402
from eqglb.policies import EquitableOffline, SolveError  # noqa: E402
from eqglb.simulate import check_feasibility  # noqa: E402
from eqglb.structured import StreamingOffline, StructuredOffline  # noqa: E402

#: Weights of the benchmark objective: eGLB's 1500 USD/t CO2 and 60 USD/m3 of water, and a
#: quality weight [USD per unit of average quality loss] large enough that the model mix
#: is a real trade-off on these instances.
MU_CARBON, MU_WATER, MU_SOCIAL = 1.5, 0.06, 3.0e4


#: Sampling interval of the PSS sampler around streaming solves [s]. Reading every
#: process's /proc/<pid>/smaps_rollup walks its page tables (about 10 ms for the year
#: tier's processes): at 0.05 s it took a quarter of a core or more from the two
#: workers of a 2-core machine. The sampler waits at least this long, and at least 20
#: times its last read, so it uses at most about 5 % of a core (``PeakRSS.cpu_s``).
PSS_INTERVAL = 0.5


class PeakRSS:
    """Peak resident set size above the starting level while the block runs [MiB];
    ``cpu_s`` is the CPU time the sampling thread itself used [s]."""

    def __init__(self, interval: float = 0.005, pss: bool = False) -> None:
        self.interval = interval
        self.pss = pss and os.path.exists("/proc/self/smaps_rollup")
        self.peak = 0
        self.cpu_s = 0.0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def _rss(self) -> int:
        """Resident memory of this process and all its descendants (worker processes).

        With ``pss``, proportional set sizes (/proc/<pid>/smaps_rollup): pages shared by
        forked workers with the parent count once in total, not once per process.
        """
        try:
            total, todo = 0, [os.getpid()]
            while todo:
                pid = todo.pop()
                try:
                    if self.pss:
                        with open(f"/proc/{pid}/smaps_rollup") as fh:
                            total += next(
                                int(line.split()[1]) * 1024
                                for line in fh
                                if line.startswith("Pss:")
                            )
                    else:
                        with open(f"/proc/{pid}/statm") as fh:
                            total += int(fh.read().split()[1]) * self._page
                    for task in os.listdir(f"/proc/{pid}/task"):
                        with open(f"/proc/{pid}/task/{task}/children") as fh:
                            todo.extend(int(c) for c in fh.read().split())
                except (FileNotFoundError, ProcessLookupError, StopIteration):
                    continue  # a worker that just exited
            return total
        except OSError:  # not Linux: fall back to the (process-lifetime) high-water mark
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _run(self) -> None:
        c0 = time.thread_time()
        while not self._stop.is_set():
            c1 = time.thread_time()
            self.peak = max(self.peak, self._rss())
            self.cpu_s = time.thread_time() - c0
            # at most about 5 % of a core: a read of large processes' smaps costs ~10 ms
            self._stop.wait(max(self.interval, 20.0 * (time.thread_time() - c1)))

    def __enter__(self) -> PeakRSS:
        self.start = self._rss()
        self.peak = self.start
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def mib(self) -> float:
        return (self.peak - self.start) / 2**20


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem = float("nan")
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, {mem:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def run_one(policy: Any, sc: Any, obj: Objective, trace: bool = False) -> dict[str, Any]:
    """Plan with ``policy``; time, memory, recomputed objective, feasibility.

    With ``trace``, a second run under tracemalloc reports the peak of memory allocated
    through Python (numpy arrays included; a native solver's own heap is not seen).
    """
    out: dict[str, Any] = {}
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        try:
            d = policy.plan(sc)
        except SolveError as exc:
            out.update(status=f"failed: {exc}", time_s=time.perf_counter() - t0)
            d = None
        else:
            out["time_s"] = time.perf_counter() - t0
    if trace:  # after the timed run, so that its RSS peak is not hidden
        import tracemalloc

        tracemalloc.start()
        try:
            policy.plan(sc)
        except SolveError:
            pass
        out["tracemalloc_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    out["peak_mib"] = mem.mib
    if d is None:
        return out
    coef = coefficients(sc, social_average=obj.social_average)
    out["objective"] = objective_value(obj, regional_costs(coef, d.y))
    fz = check_feasibility(sc, d.y)
    out["max_violation"] = max(fz.demand, fz.capacity, fz.routing, fz.negative)
    info = d.info
    out["status"] = info.status if info else "?"
    out["solver"] = info.solver if info else "?"
    out["solver_time_s"] = info.solve_time if info else None
    if info is not None and info.dual_bound is not None:
        out["dual_bound"] = info.dual_bound
        out["gap"] = (out["objective"] - info.dual_bound) / max(1.0, abs(out["objective"]))
    if info is not None and "iterations" in info.extra:
        for key in ("iterations", "pricing_time", "master_time", "columns"):
            out[key] = info.extra.get(key)
    elif info is not None and "passes" in info.extra:  # streaming solver
        out["iterations"] = info.iterations
        for key in ("pricing_time", "master_time", "passes", "warm_start_time"):
            out[key] = info.extra.get(key)
        out["columns"] = info.extra.get("columns_used")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tier", default="paper", choices=sorted(TIERS))
    ap.add_argument("--q", nargs="+", default=["2", "3", "inf"], help="norm orders")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--tol", type=float, default=1e-6, help="structured solver's gap target")
    ap.add_argument(
        "--reference-solver",
        default=None,
        help="cvxpy solver of the reference (default: HiGHS for LPs, else Clarabel)",
    )
    ap.add_argument(
        "--reference-ipm",
        action="store_true",
        help="LPs (q in {1, inf}): the reference is HiGHS's interior-point method with "
        "crossover (the fastest HiGHS method on the paper tier) instead of its default",
    )
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument(
        "--solver",
        choices=["structured", "streaming"],
        default=None,
        help="eqglb solver (default: structured; the year tier: streaming)",
    )
    ap.add_argument("--workers", type=int, default=None, help="streaming: worker processes")
    ap.add_argument(
        "--block-slots",
        type=int,
        default=None,
        help="streaming: slots per block (default: about T / 48, at most 168)",
    )
    ap.add_argument(
        "--backend",
        default="process",
        choices=["process", "serial", "ray"],
        help="streaming: where blocks are priced",
    )
    ap.add_argument(
        "--mu-social",
        type=float,
        default=MU_SOCIAL,
        help="quality weight [USD per unit of average quality loss]",
    )
    ap.add_argument(
        "--check-slots",
        type=int,
        default=8,
        help="year tier: number of slots whose full dispatch is rebuilt and checked",
    )
    ap.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also report the tracemalloc peak (an extra, untimed run each)",
    )
    ap.add_argument("--json", type=Path, default=None, help="write all results here")
    args = ap.parse_args(argv)

    tier = TIERS[args.tier]
    print(f"machine: {machine()}")
    print(
        f"tier {args.tier}: {tier.datacenters} datacenters x {tier.regions} regions x "
        f"{tier.models} models x {tier.slots} slots; objective: energy + "
        f"{args.mu_social:g} ||S||_q + {MU_CARBON:g} ||C||_q + {MU_WATER:g} ||W||_q"
    )
    big = args.tier in ("year", "year-latency")  # streamed: too large for memory
    solver = args.solver or ("streaming" if big else "structured")
    if big:
        if solver != "streaming":
            print(
                "the year tier does not fit in memory for the structured solver or the "
                "reference; use --solver streaming"
            )
            return 2
        return _year(args)
    rows = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        sc = make_instance(args.tier, seed=seed)
        print(f"\nseed {seed}: instance built and validated in {time.perf_counter() - t0:.1f} s")
        for q in args.q:
            obj = Objective.uniform(
                q, mu_social=args.mu_social, mu_carbon=MU_CARBON, mu_water=MU_WATER
            )
            row: dict[str, Any] = {"tier": args.tier, "seed": seed, "q": q}
            # structured first: memory the reference frees stays with the process and
            # would hide the structured solver's own peak
            mine: Any = (
                StructuredOffline(obj, tol=args.tol)
                if solver == "structured"
                else StreamingOffline(
                    obj,
                    tol=args.tol,
                    workers=args.workers,
                    block_slots=args.block_slots,
                    backend=args.backend,
                )
            )
            row["structured"] = run_one(mine, sc, obj, args.tracemalloc)
            row["solver"] = solver
            if not args.skip_reference:
                opts: dict[str, Any] = {}
                if args.reference_ipm and obj.is_linear:
                    opts = {"highs_options": {"solver": "ipm", "run_crossover": "on"}}
                ref = EquitableOffline(
                    objective=obj,
                    solver="HIGHS" if opts else args.reference_solver,
                    solver_options=opts,
                )
                row["reference"] = run_one(ref, sc, obj, args.tracemalloc)
            rows.append(row)
            _print_row(row)
    if args.json:
        args.json.write_text(
            json.dumps({"machine": machine(), "rows": rows}, indent=2, default=float)
        )
    return 0


def _print_row(row: dict[str, Any]) -> None:
    q = row["q"]
    for name in ("structured", "reference"):
        label = row.get("solver", "structured") if name == "structured" else name
        r = row.get(name)
        if r is None:
            continue
        objective = r.get("objective", math.nan)
        extra = ""
        if "gap" in r:
            extra += f" certified gap {r['gap']:.1e}"
        if "iterations" in r:
            extra += (
                f" ({r['iterations']} iterations, pricing {r['pricing_time']:.2f} s, "
                f"master {r['master_time']:.2f} s)"
            )
        if "tracemalloc_peak_mib" in r:
            extra += f" tracemalloc peak {r['tracemalloc_peak_mib']:.1f} MiB"
        print(
            f"  q={q:>3} {label:>10}: {r.get('status', '?'):<18} {r['time_s']:8.2f} s "
            f"RSS peak +{r['peak_mib']:7.1f} MiB objective {objective:.10g} "
            f"max violation {r.get('max_violation', math.nan):.1e}{extra}"
        )
    ref, st = row.get("reference"), row["structured"]
    if ref and "objective" in ref and "objective" in st:
        rel = (st["objective"] - ref["objective"]) / max(1.0, abs(ref["objective"]))
        print(
            f"  q={q:>3} {row.get('solver', 'structured')} - reference objective: "
            f"{rel:+.1e} relative; "
            f"speed-up x{ref['time_s'] / st['time_s']:.1f}"
        )


def _year(args: argparse.Namespace) -> int:
    """The year tier: streaming solver only, certified gap, memory, sampled slot checks."""
    import numpy as np

    from eqglb.metrics import lq_norm

    rows = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        with PeakRSS() as mem_build:
            sc = make_instance(args.tier, seed=seed)
        T, N, J, K = sc.shape
        print(
            f"\nseed {seed}: instance built and validated in {time.perf_counter() - t0:.1f} s "
            f"(+{mem_build.mib:.0f} MiB); {T * N * J * K:.3g} variables "
            f"({int(np.asarray(sc.allowed).sum()) * T:.3g} allowed)"
        )
        for q in args.q:
            obj = Objective.uniform(
                q, mu_social=args.mu_social, mu_carbon=MU_CARBON, mu_water=MU_WATER
            )

            def progress(d: dict[str, Any]) -> None:
                if d["event"] != "iteration":
                    return
                print(
                    f"    iteration {d['iteration']:3d}: upper {d['upper']:.10g} lower "
                    f"{d['lower']:.10g} gap {d['gap']:.2e} ({d['elapsed']:.0f} s)",
                    flush=True,
                )

            solver = StreamingOffline(
                obj,
                tol=args.tol,
                workers=args.workers,
                block_slots=args.block_slots,
                backend=args.backend,
                progress=progress,
            )
            with PeakRSS(interval=PSS_INTERVAL, pss=True) as mem:
                t1 = time.perf_counter()
                res = solver.solve(sc)
                elapsed = time.perf_counter() - t1
            c = res.costs
            terms = {
                "energy": c.energy_cost,
                "social": args.mu_social * lq_norm(c.social, obj.q_social),
                "carbon": MU_CARBON * lq_norm(c.carbon, obj.q_carbon),
                "water": MU_WATER * lq_norm(c.water, obj.q_water),
            }
            # rebuild sampled slots' full dispatches and check them
            rng = np.random.default_rng(seed)
            slots = np.sort(rng.choice(T, size=min(args.check_slots, T), replace=False))
            t2 = time.perf_counter()
            worst = 0.0
            cap_r = np.asarray(sc.capacity_per_request)
            for t in slots:
                y = res.slot_dispatch(int(t))
                d = np.asarray(sc.demand)[t]
                dem = np.abs(y.sum(axis=(0, 2)) - d).max() / max(1.0, d.max())
                use = y.sum(axis=1) @ cap_r if sc.capacity_mode == "shared" else y.sum(axis=1)
                capv = np.clip(use - np.asarray(sc.capacity)[t], 0, None).max()
                route = np.abs(y[~np.asarray(sc.allowed)]).max(initial=0.0)
                load = np.abs(y.sum(axis=1) - res.loads[t]).max() / max(1.0, d.max())
                worst = max(worst, dem, capv / max(1.0, float(np.max(sc.capacity))), route, load)
            rebuild = (time.perf_counter() - t2) / max(1, slots.size)
            row = {
                "tier": args.tier,
                "seed": seed,
                "q": q,
                "solver": "streaming",
                "status": res.status,
                "time_s": elapsed,
                "peak_mib": mem.mib,
                "pss_sampler_cpu_s": mem.cpu_s,
                "objective": res.objective,
                "dual_bound": res.dual_bound,
                "gap": res.gap,
                "iterations": res.iterations,
                "terms": terms,
                "slot_rebuild_s": rebuild,
                "checked_slots": slots.tolist(),
                "max_violation_checked_slots": worst,
                **{k: v for k, v in res.info.items() if k != "center"},
            }
            rows.append(row)
            print(
                f"  q={q:>3} streaming: {res.status} in {elapsed:.1f} s, peak memory "
                f"(PSS, process + workers, sampled every {PSS_INTERVAL} s: "
                f"{mem.cpu_s:.1f} s CPU) +{mem.mib:.0f} MiB, objective "
                f"{res.objective:.10g}, "
                f"bound {res.dual_bound:.10g}, certified gap {res.gap:.2e} "
                f"({res.iterations} iterations, {res.info['passes']} pricing passes of "
                f"{res.info['pricing_time'] / max(1, res.info['passes']):.1f} s, master "
                f"{res.info['master_time']:.1f} s, warm start "
                f"{res.info.get('warm_start_time', 0.0):.1f} s)"
            )
            print("           terms [USD]: " + ", ".join(f"{k} {v:.6g}" for k, v in terms.items()))
            mix = res.loads.sum(axis=(0, 1), dtype=float)
            row["model_mix"] = (mix / mix.sum()).tolist()
            print(
                f"           quality loss per region min/mean/max {c.social.min():.3g}/"
                f"{c.social.mean():.3g}/{c.social.max():.3g}; share of requests per model "
                + " ".join(f"{m:.3f}" for m in row["model_mix"])
            )
            print(
                f"           {slots.size} slots rebuilt in {rebuild:.2f} s each; largest "
                f"relative violation (demand, capacity, routing, loads) {worst:.1e}"
            )
    if args.json:
        args.json.write_text(
            json.dumps({"machine": machine(), "rows": rows}, indent=2, default=float)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
