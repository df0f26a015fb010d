"""Online per-slot decision time: eqglb's OnlineDMD against a persistent highspy slot LP.

    python benchmarks/bench_online_slot.py [--days 7] [--q inf 2 1 3] [--reps 3] [--mask]

The competitor is what a skilled user writes for the same slot problem: one highspy model
built once (columns = allowed routes, rows = demand and capacity), and per slot only the
column costs and the row bounds changed (``changeColsCost`` / ``changeRowsBounds``), the
solve run, and the solution read back into a dense (datacenter, region, model) array.
Two variants: ``warm``, HiGHS's default options (output off) and whatever warm start
HiGHS keeps between runs; ``cold``, the same model with presolve off and ``clearSolver``
before every run (what eqglb's slot solver does, and faster at this size). Their costs
are divided by their largest magnitude (HiGHS's tolerances are absolute: at ~1e-5
USD/request the unscaled LP stops up to 1e-3 short of the optimum). They are given
eqglb's own slot costs (the energy cost plus eqglb's prices times the regional
increments), so all solve the same sequence of LPs; eqglb's time is ``OnlineDMD.decide``
as the online stepper measures it (prices, solve, dual update and accounts included).

All run in one process, slot by slot and interleaved (the order of the three rotates
from slot to slot), over ``--reps`` fresh repetitions: the machine is shared, so the
ratios are the figures to read, with the load averages printed before and after. Every
slot's competitor objective is checked against eqglb's (same LP, same optimum; the
largest relative difference is printed).

Scenario: the built-in one (10 data centres x 10 regions x 4 models), full connectivity
(400 routes) unless ``--mask`` (the built-in partial mask), the weights of
``benchmarks/bench_online.py``'s speed section (CLI quality weight, 1.5 USD/kg carbon,
0.06 USD/L water) at each requested q on every term.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Any

import highspy
import numpy as np

from eqglb.builtin import builtin_scenario
from eqglb.cli import default_mu_social, silence_highs_banner
from eqglb.costs import Objective
from eqglb.online import OnlineDMD
from eqglb.online import slot_solver as _slot_solver
from eqglb.online.simulator import INPUT_SIGNALS, _signal, static_of
from eqglb.online.stepper import Stepper
from eqglb.scenario import Scenario

#: The competitors: HiGHS's default warm start between slots, and every slot cold.
COMPETITORS = ("warm", "cold")


class PersistentSlotLP:
    """The competitor: one highspy model, per slot only costs and row bounds change."""

    def __init__(
        self, i: np.ndarray, j: np.ndarray, k: np.ndarray, sc: Scenario, *, cold: bool = False
    ) -> None:
        _, N, J, K = sc.shape
        r = np.asarray(sc.capacity_per_request, dtype=float)
        shared = sc.capacity_mode == "shared"
        P = i.size
        self.i, self.j, self.k, self.shape, self.J = i, j, k, (N, J, K), J
        self.cold = cold
        n_cap = N if shared else N * K
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = P, J + n_cap
        lp.col_cost_ = np.zeros(P)
        lp.col_lower_ = np.zeros(P)
        lp.col_upper_ = np.full(P, highspy.kHighsInf)
        lp.row_lower_ = np.zeros(J + n_cap)
        lp.row_upper_ = np.zeros(J + n_cap)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.arange(P + 1, dtype=np.int32) * 2
        index = np.empty(2 * P, dtype=np.int32)
        index[0::2] = j
        index[1::2] = J + (i if shared else i * K + k)
        value = np.ones(2 * P)
        if shared:
            value[1::2] = r[k]
        lp.a_matrix_.index_ = index
        lp.a_matrix_.value_ = value
        self.h = highspy.Highs()
        self.h.setOptionValue("output_flag", False)
        if cold:  # no basis to start from: presolve would run on every slot
            self.h.setOptionValue("presolve", "off")
        self.h.passModel(lp)
        self.cols = np.arange(P, dtype=np.int32)
        self.rows = np.arange(J + n_cap, dtype=np.int32)
        self.lo = np.full(J + n_cap, -highspy.kHighsInf)
        self.hi = np.empty(J + n_cap)

    def decide(self, cost: np.ndarray, demand: np.ndarray, cap: np.ndarray) -> np.ndarray:
        h, J = self.h, self.J
        self.lo[:J] = demand
        self.hi[:J] = demand
        self.hi[J:] = cap.reshape(-1)
        h.changeColsCost(self.cols.size, self.cols, cost / np.abs(cost).max())
        h.changeRowsBounds(self.rows.size, self.rows, self.lo, self.hi)
        if self.cold:
            h.clearSolver()
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError("competitor LP not optimal")
        y = np.zeros(self.shape)
        y[self.i, self.j, self.k] = h.getSolution().col_value
        return y


def _objective(sc: Scenario, q: float) -> Objective:
    return Objective(
        mu_social=default_mu_social(sc),
        mu_carbon=1.5,
        mu_water=0.06,
        q_social=q,
        q_carbon=q,
        q_water=q,
    )


def _record(sc: Scenario, obj: Objective) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The slot LPs (route costs, demand, capacity) eqglb solves, from an untimed run."""
    seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    orig = _slot_solver.SlotSolver.solve_routes

    def spy(self: Any, c: Any, d: Any, cap: Any) -> Any:
        seen.append((np.array(c, dtype=float), np.array(d, dtype=float), np.array(cap)))
        return orig(self, c, d, cap)

    _slot_solver.SlotSolver.solve_routes = spy  # type: ignore[method-assign]
    try:
        _run(sc, obj, None, 0)
    finally:
        _slot_solver.SlotSolver.solve_routes = orig  # type: ignore[method-assign]
    if len(seen) != sc.n_time:
        raise RuntimeError(f"recorded {len(seen)} slot LPs for {sc.n_time} slots")
    return seen


def _run(
    sc: Scenario,
    obj: Objective,
    lps: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None,
    rep: int,
) -> dict[str, np.ndarray]:
    """One pass over the horizon; with ``lps``, the competitors interleaved slot by slot
    (the order of eqglb and the two competitors rotates from slot to slot)."""
    pol = OnlineDMD(obj)
    stepper = Stepper(pol, static_of(sc), sc.n_time, rows=sc.n_time)
    src = {n: _signal(sc, n) for n in INPUT_SIGNALS}
    tns = np.asarray(sc.time.asi8, dtype=np.int64)
    T = sc.n_time
    out = {name: np.zeros(T) for name in ("eqglb", *COMPETITORS, "dev")}
    # the competitors' columns in the slot solver's route order (region-major)
    j, i, k = np.nonzero(np.asarray(sc.allowed, dtype=bool).transpose(1, 0, 2))
    comps = {n: PersistentSlotLP(i, j, k, sc, cold=n == "cold") for n in COMPETITORS}
    names = ["eqglb", *COMPETITORS]
    for t in range(T):
        shift = (t + rep) % len(names)
        ys: dict[str, np.ndarray] = {}
        for name in names[shift:] + names[:shift]:
            if name == "eqglb":
                step = stepper.step({n: a[t] for n, a in src.items()}, int(tns[t]))
                out[name][t] = step.decide_time
                ys[name] = step.y
            elif lps is not None:
                c, d, cap = lps[t]
                t0 = time.perf_counter()
                ys[name] = comps[name].decide(c, d, cap)
                out[name][t] = time.perf_counter() - t0
        if lps is not None:
            s = pol._solver
            assert s is not None
            c = lps[t][0]
            a = float(c @ s.gather(ys["eqglb"]))
            for name in COMPETITORS:
                b = float(c @ s.gather(ys[name]))
                out["dev"][t] = max(out["dev"][t], abs(a - b) / max(abs(a), abs(b), 1e-300))
    return out


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=7, help="built-in scenario length [days]")
    ap.add_argument("--q", nargs="+", default=["inf"], help="norm order(s) of every term")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per q")
    ap.add_argument("--mask", action="store_true", help="the built-in partial mask")
    args = ap.parse_args(argv)
    silence_highs_banner()
    sc = builtin_scenario(days=args.days, seed=0)
    if not args.mask:
        sc = sc.replace(allowed=None, name="builtin-full-connectivity")
    _, N, J, K = sc.shape
    print(
        f"{sc.name}: {N} x {J} x {K}, {int(np.asarray(sc.allowed).sum())} routes, "
        f"{sc.n_time} slots, {args.reps} repetitions; before: {_load()}"
    )
    head = ["highspy warm", "highspy cold", "eqglb"]
    print(
        f"{'q':>4} " + " ".join(f"{h:>15}" for h in head) + f" {'eqglb / warm':>13} "
        f"{'eqglb / cold':>13} {'max rel dev':>11}"
    )
    print(
        f"{'':>4} " + " ".join(f"{'med, p90 [ms]':>15}" for _ in head) + f" {'med, p90':>13} "
        f"{'med, p90':>13} {'objective':>11}"
    )
    for qs in args.q:
        q = math.inf if qs == "inf" else float(qs)
        obj = _objective(sc, q)
        lps = _record(sc, obj)
        runs = [_run(sc, obj, lps, rep) for rep in range(args.reps)]
        st = {}
        for name in ("warm", "cold", "eqglb"):
            a = 1e3 * np.concatenate([r[name] for r in runs])
            st[name] = (float(np.median(a)), float(np.percentile(a, 90)))
        dev = max(float(r["dev"].max()) for r in runs)
        e = st["eqglb"]
        cells = " ".join(
            f"{m:7.3f}, {p:6.3f}" for m, p in (st[n] for n in ("warm", "cold", "eqglb"))
        )
        ratios = " ".join(
            f"{e[0] / st[n][0]:6.2f}, {e[1] / st[n][1]:5.2f}" for n in ("warm", "cold")
        )
        print(f"{qs:>4} {cells} {ratios} {dev:11.1e}")
    print(f"after: {_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
