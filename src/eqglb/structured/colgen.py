"""The column-generation loop shared by the in-memory and the streaming structured solvers.

Both solvers price at block prices ``gamma`` (one array per coupling block), add the
improving columns to a pool and re-solve the restricted master
(:func:`eqglb.structured.master.solve_master`). They differ only in what a column is (a
slot vertex, or a whole block of slots) and in how a pricing pass runs; both give the
loop a :class:`Pricing` per pass and a pool with the small interface of
:class:`ColumnStore`.

Loop (Dantzig-Wolfe with stabilisation):

1. solve the master (tolerance a little below the current gap; the structured
   interior-point method, or the exact simplex / Clarabel when asked);
2. stop when ``relative_gap(upper, lower) <= tol`` or a limit is hit (no pricing pass
   starts that, as long as the last one, would end past ``time_limit``);
3. price at Wentges-smoothed prices ``alpha center + (1 - alpha) master prices``; if that
   finds no improving column, price at the master's prices; the smoothing weight adapts
   from the direction of a subgradient (Pessoa, Sadykov, Uchoa and Vanderbeck, INFORMS
   Journal on Computing 2018);
4. when no improving column exists, re-solve the master tightly, then exactly, then stop;
5. forget columns unused for ``max_age`` iterations.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from eqglb.certify import relative_gap
from eqglb.metrics import dual_exponent
from eqglb.structured.coupling import Coupling
from eqglb.structured.master import HighsMaster, MasterSolution, solve_master

__all__ = ["ColumnStore", "Pricing", "column_generation", "fair_prices"]


@dataclass
class Pricing:
    """One pricing pass: its Lagrangian bound and its candidate columns.

    Attributes
    ----------
    lower : float
        Certified lower bound at the prices priced [USD].
    f : array (n,)
        Linear cost of each candidate [USD].
    a : array or sparse matrix (n, M)
        Coupling vector of each candidate.
    group : int array (n,)
        Convexity group (slot or block) of each candidate.
    payload : object
        What the pool needs to store the picked candidates.
    seconds : float or None
        Wall time a plain pass takes [s], where the pricer knows it better than the
        time of this call (a pass that did extra work); None: the call's time.
    """

    lower: float
    f: np.ndarray
    a: Any
    group: np.ndarray
    payload: Any
    seconds: float | None = None


def _timed(
    price: Callable[[list[np.ndarray]], Pricing], gamma: list[np.ndarray], stats: dict[str, Any]
) -> Pricing:
    """``price(gamma)``, keeping the pass's wall time in ``stats["last_pass_time"]``."""
    t0 = _time.perf_counter()
    pr = price(gamma)
    stats["last_pass_time"] = pr.seconds if pr.seconds is not None else _time.perf_counter() - t0
    return pr


class ColumnStore(Protocol):
    """The pool interface :func:`column_generation` uses (plus what solve_master reads)."""

    last_used: np.ndarray
    slot: np.ndarray  # convexity group of each column

    def __len__(self) -> int: ...

    def add_picked(self, pricing: Pricing, pick: np.ndarray, iteration: int) -> None: ...

    def keep(self, sel: np.ndarray) -> None: ...

    def snapshot(self, lam: np.ndarray) -> Any: ...


#: A column whose reduced cost at the master's prices exceeds this share of the
#: objective per convexity group counts as unused (and leaves after ``max_age``
#: iterations). Paper tier q = inf: 4.4 -> 2.3 s (seed 1), 2.5 -> 1.5 s (seed 0), same
#: passes; medium tier q = inf 18 -> 27 passes but about the same time
#: (docs/performance.md).
AGE_REDUCED_COST = 1e-3


def fair_prices(cp: Coupling) -> list[np.ndarray]:
    """Starting prices: the gradient of each weighted norm at a uniform regional vector."""
    out = []
    for b in cp.blocks:
        p = dual_exponent(b.q)
        out.append(b.weight * np.full(b.size, b.size ** (-1.0 / p) if not math.isinf(p) else 1.0))
    return out


def column_generation(
    cp: Coupling,
    pool: ColumnStore,
    price: Callable[[list[np.ndarray]], Pricing],
    *,
    gamma0: list[np.ndarray] | None,
    tol: float,
    max_iter: int,
    smoothing: float,
    adaptive: bool,
    max_age: int | None,
    master: str,
    time_limit: float | None,
    t_start: float,
    stats: dict[str, Any],
    on_iteration: Callable[[int, float, float, float, int], None] | None,
    seed: Pricing | None = None,
    lift: bool = False,
) -> dict[str, Any]:
    """Run the loop of the module docstring.

    ``seed``, where given, stands for the first pricing pass: its columns start the
    pool and its ``lower`` the bound (it must be a valid bound of this problem, e.g. the
    bound of a problem never above this one, priced at prices feasible here), so a
    continuation (:class:`eqglb.structured.stream.StreamingOffline`'s homotopy in the
    norm order) does not price its starting prices twice.

    Returns a dict: ``best`` (the best master solution), ``snapshot`` (the pool's
    snapshot of its weights), ``lower``, ``upper`` [USD], ``iterations``, ``status``
    (``"optimal"`` or ``"feasible"``), ``columns`` and ``center`` (the
    best-bound prices, one array per block).

    ``lift`` (with a ``seed``): the loop first prices ``gamma0`` lifted onto the boundary
    of every block's dual ball (:meth:`eqglb.structured.coupling.Coupling.lift`), a
    bound at least the one at ``gamma0``; where the seed comes from a surrogate stage
    whose prices lie strictly inside this problem's dual set, that raises the bound
    without waiting for the master. Skipped where the pass would end past
    ``time_limit``.
    """
    gamma = cp.project(gamma0 if gamma0 is not None else fair_prices(cp))
    # the last pass's wall time, kept in stats across a continuation: no pass starts
    # that would end past the limit
    first = _timed(price, gamma, stats) if seed is None else seed
    lower = first.lower
    center = gamma
    pool.add_picked(first, np.arange(first.f.size), 0)
    if seed is not None and lift:
        lifted = cp.lift(gamma)
        moved = any(not np.array_equal(a, b) for a, b in zip(lifted, gamma, strict=True))
        elapsed = _time.perf_counter() - t_start + stats.get("last_pass_time", 0.0)
        if moved and (time_limit is None or elapsed <= time_limit):
            pr = _timed(price, lifted, stats)
            pool.add_picked(pr, np.arange(pr.f.size), 0)
            if pr.lower > lower:
                lower, center = pr.lower, lifted
    best: MasterSolution | None = None
    snapshot: Any = None
    exact_next = force_tight = False
    upper = math.inf
    gap_prev = 1.0
    alpha = smoothing
    n_groups = max(1, int(first.group.max()) + 1) if first.group.size else 1
    it = 0
    status = "optimal"
    # the simplex master asked for (every block a max): one HiGHS instance re-solved
    # from its basis. Not the default: its vertex prices need many more pricing passes
    # than the interior-point master's central ones (docs/performance.md)
    warm = (
        HighsMaster(cp)
        if master == "highs" and cp.blocks and all(math.isinf(b.q) for b in cp.blocks)
        else None
    )
    for it in range(1, max_iter + 1):
        t0 = _time.perf_counter()
        method = master
        if exact_next and method == "auto":
            method = "highs" if all(math.isinf(b.q) for b in cp.blocks) else "clarabel"
        # the master needs to be only a little more accurate than the current gap
        mtol = 1e-9 if force_tight else min(1e-4, max(1e-9, 1e-2 * gap_prev))
        if warm is not None:
            ms = warm.solve(pool)
        else:
            ms = solve_master(pool, cp, method=method, tol=mtol)  # type: ignore[arg-type]
        stats["master_time"] = stats.get("master_time", 0.0) + _time.perf_counter() - t0
        stats["master_iterations"] = stats.get("master_iterations", 0) + ms.iterations
        if ms.value < upper:
            upper, best = ms.value, ms
            snapshot = pool.snapshot(ms.lam)
        gap = relative_gap(upper, lower)
        gap_prev = gap
        if on_iteration is not None:
            on_iteration(it, upper, lower, gap, len(pool))
        if gap <= tol:
            break
        elapsed = _time.perf_counter() - t_start + stats.get("last_pass_time", 0.0)
        if time_limit is not None and elapsed > time_limit:
            status = "feasible"
            break
        g_out = cp.project(cp.split(ms.gamma))
        added = 0
        for a_sep in (alpha, 0.0) if alpha > 0 else (0.0,):
            g_sep = cp.project(
                [a_sep * c + (1 - a_sep) * g for c, g in zip(center, g_out, strict=True)]
            )
            pr = _timed(price, g_sep, stats)
            center_new = g_sep if pr.lower > lower else center
            lower = max(lower, pr.lower)
            # reduced costs of the new columns at the master's prices
            rc = pr.f + np.asarray(pr.a @ ms.gamma).ravel() - ms.pi[pr.group]
            thresh = 1e-12 * max(1.0, abs(upper)) / n_groups
            pick = np.flatnonzero(rc < -thresh)
            pool.add_picked(pr, pick, it)
            added += pick.size
            if adaptive and a_sep > 0:
                # a subgradient at the separation point pointing towards the master's
                # prices means smoothing too much, and vice versa
                g = np.asarray(pr.a.sum(axis=0)).ravel() - ms.u
                d = np.concatenate(g_out) - np.concatenate(center)
                alpha = (
                    max(0.0, alpha - 0.1)
                    if float(g @ d) > 0
                    else min(0.99, alpha + 0.1 * (1.0 - alpha))
                )
            center = center_new
            if pick.size:
                break
        if added == 0:
            # no improving column at the master's own prices: the master is optimal up to
            # its own accuracy. Solve it once more tightly, then with the exact (simplex)
            # or high-accuracy conic solver; if that does not help either, stop: the
            # certified gap is what the bounds say.
            if warm is not None:
                break  # the simplex master is exact
            if mtol > 1e-9:
                force_tight = True
            elif exact_next or master != "auto":
                break
            else:
                exact_next = True
        else:
            exact_next = force_tight = False
        if max_age is not None:  # forget columns unused for a while (keeps the master small)
            # a column counts as used when it carries weight and is not priced out at
            # the master's prices: the interior-point master leaves every column a small
            # positive weight, so weight alone would keep them all
            rc_pool = ms.reduced - ms.pi[pool.slot[: ms.lam.size]]
            used = (ms.lam > 1e-7) & (rc_pool <= AGE_REDUCED_COST * max(1.0, abs(upper)) / n_groups)
            pool.last_used[: ms.lam.size][used] = it
            keep = pool.last_used >= it - max_age
            keep[: ms.lam.size] |= used
            if not keep.all():
                pool.keep(keep)
                if warm is not None:
                    warm.keep(keep)
    else:
        status = "feasible"
    assert best is not None
    return {
        "best": best,
        "snapshot": snapshot,
        "lower": lower,
        "upper": upper,
        "iterations": it,
        "status": status,
        "columns": len(pool),
        "center": center,
    }
