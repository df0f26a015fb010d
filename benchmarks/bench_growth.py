"""Growth curves of the streaming solver: time and memory against T, J, N and route classes.

Each point is a seeded :func:`eqglb.synthetic.make_scenario` instance solved by
:class:`eqglb.structured.StreamingOffline` to a certified gap ``--tol``; one axis varies
at a time from a base point:

* ``T`` slots, ``J`` regions, ``N`` data centres: every region may use every data centre
  (``reach = N``), so there is one route class and the curve shows the pure size effect;
* ``classes``: N and J fixed, each region limited to its ``reach`` nearest data centres;
  smaller reaches give more distinct allowed sets (the number of classes is measured).

Every point runs in its own subprocess (``--point``), so peaks are independent: the
wall time of ``solve()`` and the peak resident set (``ru_maxrss``) of that process, with
the level before the solve (the scenario and imports) subtracted. The backend is serial by
default (one process: time and memory are the algorithm's, not the pool's start-up); give
``--backend process`` for the worker pool. For each axis and q the script fits the
log-log exponent ``time ~ size^a`` (least squares over the points) and prints it.

Usage::

    python benchmarks/bench_growth.py                          # full run, q = 2 and inf
    python benchmarks/bench_growth.py --q 2 --json out.json
    python benchmarks/bench_growth.py --quick                  # tiny sizes, in-process (tests)

The full run writes ``benchmarks/results/growth.json`` and ``docs/img/growth.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: Base point and the values of each axis (full run).
BASE = {"N": 20, "J": 200, "K": 3, "T": 336, "reach": None}
AXES = {
    "T": [336, 672, 1344, 2688],
    "J": [100, 200, 400, 800],
    "N": [10, 20, 40, 80],
    "classes": [20, 6, 3, 2],  # reach (nearest data centres per region) at N = 20
}
#: Tiny sizes for --quick (the test).
QUICK_BASE = {"N": 4, "J": 8, "K": 2, "T": 24, "reach": None}
QUICK_AXES = {
    "T": [24, 48, 96],
    "J": [6, 12, 24],
    "N": [3, 6, 12],
    "classes": [4, 2, 1],
}
MU = {"mu_social": 3.0e4, "mu_carbon": 1.5, "mu_water": 0.06}


def point_spec(base: dict[str, Any], axis: str, value: int) -> dict[str, Any]:
    s = dict(base)
    if axis == "classes":
        s["reach"] = int(value)
    else:
        s[axis] = int(value)
    if s["reach"] is None:
        s["reach"] = s["N"]  # every data centre: one route class
    return s


def _rss_now() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def run_point(spec: dict[str, Any], inprocess: bool = False) -> dict[str, Any]:
    """Solve one point; time, memory, gap, passes.

    ``inprocess`` (--quick): in the caller's process, so the memory figure is the growth
    of the process's high-water mark (0 once an earlier point set it higher), not an
    independent peak."""
    from eqglb.costs import Objective
    from eqglb.structured import StreamingOffline
    from eqglb.synthetic import make_scenario

    sc = make_scenario(
        spec["N"], spec["J"], spec["K"], spec["T"], reach=spec["reach"], seed=spec["seed"]
    )
    al = np.asarray(sc.allowed)
    classes = len({al[:, j, :].tobytes() for j in range(al.shape[1])})
    obj = Objective.uniform(spec["q"], **MU)
    solver = StreamingOffline(
        obj,
        tol=spec["tol"],
        backend=spec["backend"],
        workers=spec.get("workers"),
        time_limit=spec.get("time_limit"),
    )
    before = _rss_now()
    t0 = time.perf_counter()
    res = solver.solve(sc)
    wall = time.perf_counter() - t0
    out = dict(spec)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    out["peak_mib"] = max(0.0, (peak - before) / 2**20)
    out["rss_before_mib"] = before / 2**20
    out["worker_peak_rss_mib"] = kids / 2**20
    out["memory_kind"] = "ru_maxrss - RSS before solve" + (" (in-process)" if inprocess else "")
    info = res.info
    out.update(
        classes=classes,
        time_s=wall,
        gap=res.gap,
        status=res.status,
        passes=info["passes"],
        iterations=res.iterations,
        pricing_time_s=info["pricing_time"],
        master_time_s=info["master_time"],
        warm_start_time_s=info.get("warm_start_time", 0.0),
        compact_columns=info.get("compact_columns"),
        compact_rows=info.get("compact_rows"),
        block_slots=info["block_slots"],
    )
    return out


def _subprocess_point(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--point", json.dumps(spec)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout:.0f} s"}
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("POINT "):
            return json.loads(line[6:])
    return {**spec, "error": (p.stderr or p.stdout)[-500:]}


def fit_exponent(x: list[float], y: list[float]) -> float:
    """Least-squares slope of log y against log x (nan with < 2 usable points)."""
    pts = [(a, b) for a, b in zip(x, y, strict=True) if a > 0 and b > 0]
    if len({a for a, _ in pts}) < 2:
        return math.nan
    lx, ly = np.log([a for a, _ in pts]), np.log([b for _, b in pts])
    return float(np.polyfit(lx, ly, 1)[0])


def axis_x(axis: str, r: dict[str, Any]) -> float:
    return float(r["classes"] if axis == "classes" else r[axis])


def figure(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes = list(results["axes"])
    fig, ax = plt.subplots(2, len(axes), figsize=(3.2 * len(axes), 5.6), squeeze=False)
    labels = {"T": "slots T", "J": "regions J", "N": "data centres N", "classes": "route classes"}
    for c, axis in enumerate(axes):
        for q, rows in results["axes"][axis].items():
            ok = sorted((r for r in rows if "time_s" in r), key=lambda r: axis_x(axis, r))
            x = [axis_x(axis, r) for r in ok]
            ex = results["exponents"][axis][q]
            ax[0, c].loglog(
                x, [r["time_s"] for r in ok], "o-", label=f"q={q} total: a={ex['time']:.2f}"
            )
            ax[0, c].loglog(
                x,
                [r["pricing_time_s"] / max(1, r["passes"]) for r in ok],
                "^--",
                label=f"q={q} per pricing pass: a={ex['per_pass_time']:.2f}",
            )
            ax[1, c].loglog(
                x,
                [max(r["peak_mib"], 0.1) for r in ok],
                "s-",
                label=f"q={q}: a={ex['memory']:.2f}",
            )
        ax[0, c].set_title(labels.get(axis, axis))
        ax[1, c].set_xlabel(labels.get(axis, axis))
        for r in (0, 1):
            ax[r, c].legend(fontsize=7)
            ax[r, c].grid(True, which="both", alpha=0.3)
    ax[0, 0].set_ylabel("wall time [s]")
    ax[1, 0].set_ylabel("peak memory above start [MiB]")
    fig.suptitle(
        "eqglb streaming solver: growth per axis (log-log; a = fitted exponent)", fontsize=10
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine() -> str:
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem = float("nan")
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, {mem:.0f} GiB RAM, Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--q", nargs="+", default=None, help="default 2 and inf (--quick: 2)")
    ap.add_argument("--tol", type=float, default=None, help="gap target (1e-3; --quick 1e-2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", default="serial", choices=["serial", "process", "ray"])
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--axes", nargs="+", default=None, help="subset of T J N classes")
    ap.add_argument("--point-timeout", type=float, default=180.0, help="per point [s]")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, in-process, no files")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--figure", type=Path, default=None)
    ap.add_argument("--point", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--replot", type=Path, default=None, help="redraw the figure from a JSON")
    args = ap.parse_args(argv)

    if args.replot is not None:
        figure(
            json.loads(args.replot.read_text()), args.figure or ROOT / "docs" / "img" / "growth.png"
        )
        return 0

    if args.point is not None:  # child: one point
        print("POINT " + json.dumps(run_point(json.loads(args.point)), default=float))
        return 0
    base, axes = (QUICK_BASE, QUICK_AXES) if args.quick else (BASE, AXES)
    args.q = args.q or (["2"] if args.quick else ["2", "inf"])
    args.tol = args.tol or (1e-2 if args.quick else 1e-3)
    if args.axes:
        axes = {a: axes[a] for a in args.axes}
    if not args.quick:
        args.json = args.json or HERE / "results" / "growth.json"
        args.figure = args.figure or ROOT / "docs" / "img" / "growth.png"
    print(f"machine: {machine()}", flush=True)
    print(
        f"base point N={base['N']} J={base['J']} K={base['K']} T={base['T']} (one route "
        f"class), backend {args.backend}, tol {args.tol:g}, seed {args.seed}",
        flush=True,
    )
    t_all = time.perf_counter()
    results: dict[str, Any] = {
        "machine": machine(),
        "command": "python benchmarks/bench_growth.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "base": base,
        "axes_values": axes,
        "tol": args.tol,
        "backend": args.backend,
        "objective": MU,
        "axes": {},
        "exponents": {},
    }
    for axis, values in axes.items():
        results["axes"][axis] = {}
        results["exponents"][axis] = {}
        for q in args.q:
            rows = []
            for v in values:
                spec = point_spec(base, axis, v)
                spec.update(
                    q=q,
                    tol=args.tol,
                    seed=args.seed,
                    backend=args.backend,
                    workers=args.workers,
                    time_limit=None if args.quick else 0.9 * args.point_timeout,
                )
                r = (
                    run_point(spec, inprocess=True)
                    if args.quick
                    else _subprocess_point(spec, args.point_timeout)
                )
                rows.append(r)
                if "error" in r:
                    print(f"  {axis}={v} q={q}: FAILED {r['error']}", flush=True)
                    continue
                print(
                    f"  {axis:>7}={v:<5} q={q:>3}: N={r['N']} J={r['J']} T={r['T']} "
                    f"classes={r['classes']:<4} {r['time_s']:7.2f} s, peak +{r['peak_mib']:7.1f} "
                    f"MiB, gap {r['gap']:.1e} ({r['status']}), {r['passes']} passes, pricing "
                    f"{r['pricing_time_s']:.2f} s, master {r['master_time_s']:.2f} s, warm "
                    f"{r['warm_start_time_s']:.2f} s",
                    flush=True,
                )
            ok = [r for r in rows if "time_s" in r]
            x = [axis_x(axis, r) for r in ok]
            ex = {
                "time": fit_exponent(x, [r["time_s"] for r in ok]),
                "memory": fit_exponent(x, [r["peak_mib"] for r in ok]),
                "per_pass_time": fit_exponent(
                    x, [r["pricing_time_s"] / max(1, r["passes"]) for r in ok]
                ),
            }
            results["axes"][axis][q] = rows
            results["exponents"][axis][q] = ex
            print(
                f"  exponent {axis} q={q}: time ~ {axis}^{ex['time']:.2f}, memory ~ "
                f"{axis}^{ex['memory']:.2f}, time per pricing pass ~ {axis}^"
                f"{ex['per_pass_time']:.2f}",
                flush=True,
            )
            if args.json:  # keep what is done
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(results, indent=2, default=_default))
    results["total_time_s"] = time.perf_counter() - t_all
    print("\nfitted log-log exponents (time / memory / time per pass):")
    for axis, per_q in results["exponents"].items():
        print(
            f"  {axis:>7}: "
            + "; ".join(
                f"q={q}: {e['time']:.2f} / {e['memory']:.2f} / {e['per_pass_time']:.2f}"
                for q, e in per_q.items()
            )
        )
    print(f"total {results['total_time_s']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=_default))
        print(f"wrote {args.json}")
    if args.figure:
        figure(results, args.figure)
        print(f"wrote {args.figure}")
    return 0


def _default(x: Any) -> Any:
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if not math.isfinite(float(x)) else float(x)
    return str(x)


if __name__ == "__main__":
    raise SystemExit(main())
