"""Certificates: valid lower bounds on the optimum of an offline problem, and its gap.

A result is called optimal only when a valid bound certifies its gap. The bound used here
is the Lagrangian dual function of the offline problem (``eqglb.structured.coupling``):

    g(gamma, nu) = sum_t min_{x in X_t} (c_t + sum_b gamma_b[r_b] g_b[t] + nu_t a_t) . x
                   - sum_t nu_t b_t,

for block prices ``gamma_b >= 0`` inside the dual-norm ball of radius ``w_b`` and side
prices ``nu_t >= 0`` of optional per-slot rows ``a_t . x <= b_t`` (the lexicographic
quality rows of the ``"best"`` model rule). A switching cost (docs/switching.md)
``sigma * sum_{t>=1,p} w[t,p] |f[t,p] - f[t-1,p]|`` couples consecutive slots; it is
relaxed too: for any prices ``|lam[t,p]| <= sigma w[t,p]`` it is at least
``sum_t lam_t . (f_t - f_{t-1}) = sum_t (lam_t - lam_{t+1}) . f_t``, a linear cost per slot
(:func:`switching_prices`), so the slot LPs stay separable. By weak duality ``g <= optimum`` for *any* such
prices, however they were found: a solver's approximate duals can only make the bound
loose, never invalid. Each slot minimum is computed by the exact slot LPs of
:mod:`eqglb.structured.slotlp`, whose bounds come from exactly dual-feasible points.

:func:`relative_gap` is the one definition of the relative gap used everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from eqglb.costs import Coefficients, Objective, coefficients

__all__ = ["SideRows", "lagrangian_bound", "relative_gap", "switching_prices"]


def relative_gap(upper: float, lower: float, magnitude: float = 0.0) -> float:
    """Relative gap ``(upper - lower) / max(|upper|, |lower|, magnitude)`` [-].

    ``magnitude`` [USD] lets a caller measure the gap against the size of the objective's
    terms when they cancel (negative prices); it is 0 by default. Two equal bounds give 0;
    a positive gap over a zero denominator gives ``inf``. Negative values (a bound above
    the objective beyond round-off) are returned as they are, so that they can be seen.
    """
    if not (math.isfinite(upper) and math.isfinite(lower)):
        return math.inf
    den = max(abs(upper), abs(lower), abs(magnitude))
    diff = upper - lower
    if den == 0.0:
        return 0.0 if diff <= 0 else math.inf
    return diff / den


@dataclass(frozen=True)
class SideRows:
    """Per-slot rows ``a[t] . y_t <= b[t]`` and their prices.

    Attributes
    ----------
    a : array (time, route)
        Coefficients per request [unit of the row per request].
    b : array (time,)
        Right-hand sides [unit of the row].
    nu : array (time,)
        Prices [objective unit per unit of the row]; clipped at 0.
    """

    a: np.ndarray
    b: np.ndarray
    nu: np.ndarray


def switching_prices(
    demand: np.ndarray, region: np.ndarray, lam: np.ndarray, switching_cost: float
) -> np.ndarray:
    """Slot costs [USD/request] (time, route) of the switching cost relaxed at ``lam``.

    The switching cost is ``sigma sum_{t>=1,p} w[t,p] |f[t,p] - f[t-1,p]|`` with
    ``sigma = switching_cost`` [USD/request], ``w[t,p] = 0.5 demand[t, region[p]]``
    [requests] and the routing fraction ``f[t,p] = y[t,p] / demand[t, region[p]]`` (0 where
    the demand is 0). Since ``sigma w |z| >= lam z`` whenever ``|lam| <= sigma w``, it is
    at least ``sum_p c[t,p] y[t,p]`` with ``c[t,p] = (lam[t,p] - lam[t+1,p]) /
    demand[t, region[p]]`` (``lam`` indexed by the later slot of each pair, 0 outside
    1..T-1): a valid under-estimate for any ``lam`` [USD per unit of fraction change]
    (time - 1, route), which is clipped into that box first.
    """
    d = np.asarray(demand, dtype=float)[:, np.asarray(region)]  # (T, P) [requests]
    T, P = d.shape
    cap = float(switching_cost) * 0.5 * d[1:]
    lam_t = np.nan_to_num(np.asarray(lam, dtype=float).reshape(T - 1, P), nan=0.0)
    lam_t = np.clip(lam_t, -cap, cap)
    full = np.zeros((T + 1, P))
    full[1:T] = lam_t  # full[t] prices the pair (t-1, t)
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d > 0)
    return (full[:T] - full[1:]) * inv


def lagrangian_bound(
    sc: object,
    objective: Objective | None = None,
    *,
    gamma: dict[str, np.ndarray] | None = None,
    linear: np.ndarray | None = None,
    side: Sequence[SideRows] = (),
    coef: Coefficients | None = None,
    extra: np.ndarray | None = None,
    batch: int = 512,
) -> float:
    """A valid lower bound [objective unit] on the offline optimum of ``sc``.

    Parameters
    ----------
    sc : Scenario
    objective : Objective, optional
        The objective whose optimum is bounded (its blocks with q > 1 take prices from
        ``gamma``). Ignored when ``linear`` is given.
    gamma : dict block name -> array, optional
        Block prices (``"social"``, ``"carbon"``, ``"water"``, ``"environment"``) [USD per
        unit of the regional cost]; projected onto the feasible set. Missing: 0.
    linear : array (time, route), optional
        A purely linear objective per request instead (baselines' own costs).
    side : sequence of SideRows
        Per-slot rows relaxed with their prices.
    extra : array (time, route), optional
        A linear under-estimate [objective unit per request] of further terms of the
        objective that couple the slots, added to every slot cost (the relaxed switching
        cost of :func:`switching_prices`). It is the caller's to make valid: the bound
        holds when ``extra . y`` never exceeds those terms.
    """
    from eqglb.policies.problem import Routes
    from eqglb.structured.coupling import coupling_of
    from eqglb.structured.solver import slot_lps

    routes = Routes.of(sc)  # type: ignore[arg-type]
    T = int(sc.n_time)  # type: ignore[attr-defined]
    if linear is not None:
        c = np.asarray(linear, dtype=float)
        blocks: tuple = ()
        prices_g: list[np.ndarray] = []
    else:
        obj = objective or Objective()
        coef = coef or coefficients(sc, social_average=obj.social_average)  # type: ignore[arg-type]
        N, J = len(sc.datacenters), len(sc.regions)  # type: ignore[attr-defined]
        cpl = coupling_of(obj, coef, routes.i, routes.j, routes.k, N, J)
        c = cpl.linear
        blocks = cpl.blocks
        given = gamma or {}
        prices_g = [
            b.project(np.asarray(given.get(b.name, np.zeros(b.size)), float)) for b in blocks
        ]
    const = 0.0
    more = np.zeros((T, routes.size)) if side or extra is not None else None
    if extra is not None:
        assert more is not None
        more += np.asarray(extra, dtype=float).reshape(T, routes.size)
    for row in side:
        nu = np.clip(np.nan_to_num(np.asarray(row.nu, float), nan=0.0), 0.0, None)
        assert more is not None
        more += nu[:, None] * np.asarray(row.a, float)
        const -= float(nu @ np.asarray(row.b, float))
    lps = slot_lps(sc, routes)  # type: ignore[arg-type]
    total = 0.0
    for start in range(0, T, batch):
        t = np.arange(start, min(T, start + batch))
        cost = np.array(c[t], dtype=float)
        for b, g in zip(blocks, prices_g, strict=True):
            cost += g[b.index][None, :] * b.rows(t)
        if more is not None:
            cost += more[t]
        total += float(lps.solve(t, cost).bound.sum())
    return total + const
