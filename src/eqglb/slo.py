"""Latency SLOs: per-region limits on the round-trip time (RTT) of the routes used.

A scenario's ``latency`` (datacenter, region) [ms] is the RTT between a data centre and a
user region (see :mod:`eqglb.latency`). Two per-region service-level objectives use it:

* ``rtt_slo_ms`` (region,) [ms], a hard maximum: a route (i, j) is allowed only when
  ``latency[i, j] <= rtt_slo_ms[j]``. It is applied once, in Scenario validation, to the
  ``allowed`` mask, so every solver path (reference, structured, streaming, online,
  service) and the feasibility check see the same, exact, constraint.
  ``Scenario.allowed_declared`` keeps the mask as given.
* ``rtt_budget_ms`` (region,) [ms], a demand-weighted mean-RTT budget per region and slot:
  ``sum_{i,k} latency[i, j] y[t, i, j, k] <= rtt_budget_ms[j] * demand[t, j]``. It is a
  linear row inside each slot; only the cvxpy reference model (policy ``"reference"``)
  carries it (certified through :class:`eqglb.certify.SideRows`); the structured,
  streaming and online paths refuse a scenario with a budget (:func:`refuse_budget`).

``inf`` means "no limit" for that region. :func:`latency_summary` scores a dispatch
against both (the evaluator's ``summary["latency"]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["budget_rows", "latency_summary", "refuse_budget", "region_limits", "slo_mask"]


def region_limits(name: str, value: Any, regions: Sequence[str]) -> np.ndarray | None:
    """``value`` as a float array (region,) [ms], or None when not given.

    ``value`` may be one number (every region), a sequence in region order, or a mapping
    (dict / pandas Series) keyed by region name (regions not named: no limit, ``inf``).
    Raises :class:`eqglb.scenario.ScenarioError` naming the field and region for a NaN, a
    negative value, a wrong length or an unknown region name.
    """
    from eqglb.scenario import ScenarioError

    if value is None:
        return None
    J = len(regions)
    if isinstance(value, Mapping) or hasattr(value, "index") and hasattr(value, "to_dict"):
        d = dict(value.to_dict() if hasattr(value, "to_dict") else value)
        unknown = [str(k) for k in d if str(k) not in regions]
        if unknown:
            raise ScenarioError(
                f"{name} names unknown region(s) {unknown}; known regions: {list(regions)}"
            )
        a = np.full(J, np.inf)
        for k, v in d.items():
            a[list(regions).index(str(k))] = _number(name, v, str(k))
    else:
        try:
            a = np.array(value, dtype=float, copy=True)
        except (TypeError, ValueError) as exc:
            raise ScenarioError(
                f"{name} is not numeric ({exc}); give a number [ms] per region"
            ) from exc
        if a.ndim == 0:
            a = np.full(J, float(a))
        if a.shape != (J,):
            raise ScenarioError(
                f"{name} has shape {a.shape}; expected (region={J},) or one "
                "number [ms] for every region"
            )
    bad = np.flatnonzero(np.isnan(a) | (a < 0))
    if bad.size:
        j = int(bad[0])
        raise ScenarioError(
            f"{name} is {a[j]:g} for region {regions[j]!r}; give an RTT "
            "limit >= 0 [ms] (inf for no limit)",
            field=name,
            coordinate={"region": j},
        )
    return a


def _number(name: str, v: Any, region: str) -> float:
    from eqglb.scenario import ScenarioError

    try:
        return float(v)
    except (TypeError, ValueError):
        raise ScenarioError(f"{name} for region {region!r} is {v!r}; give a number [ms]") from None


def slo_mask(
    allowed: np.ndarray,
    latency: np.ndarray,
    slo: np.ndarray,
    datacenters: Sequence[str],
    regions: Sequence[str],
) -> np.ndarray:
    """``allowed`` (datacenter, region, model) without the routes above the region's SLO.

    Raises ScenarioError naming the region, its SLO and the nearest allowed data centre
    when the SLO leaves a region with no allowed route.
    """
    from eqglb.scenario import ScenarioError

    within = np.asarray(latency) <= np.asarray(slo)[None, :]
    eff = allowed & within[:, :, None]
    lost = allowed.any(axis=(0, 2)) & ~eff.any(axis=(0, 2))
    if lost.any():
        j = int(np.flatnonzero(lost)[0])
        dcs = np.flatnonzero(allowed[:, j].any(axis=1))
        i = int(dcs[np.argmin(latency[dcs, j])])
        raise ScenarioError(
            f"region {regions[j]!r} has no allowed datacenter within its rtt_slo_ms of "
            f"{slo[j]:g} ms: the nearest allowed one, {datacenters[i]!r}, is at "
            f"{latency[i, j]:g} ms; raise rtt_slo_ms for region {regions[j]!r} to at least "
            f"{latency[i, j]:g} ms or allow a closer datacenter",
            field="rtt_slo_ms",
            coordinate={"region": j},
        )
    return eff


def check_budget(
    budget: np.ndarray,
    latency: np.ndarray,
    allowed: np.ndarray,
    demand: np.ndarray,
    regions: Sequence[str],
) -> None:
    """Refuse a budget below the least RTT a region with demand can reach (the cheap
    necessary condition; capacity interactions are left to the solver)."""
    from eqglb.scenario import ScenarioError

    lat = np.where(allowed.any(axis=2), latency, np.inf)
    least = lat.min(axis=0)
    busy = (np.asarray(demand) > 0).any(axis=0)
    bad = np.flatnonzero(busy & (least > budget + 1e-9 * np.maximum(1.0, least)))
    if bad.size:
        j = int(bad[0])
        raise ScenarioError(
            f"rtt_budget_ms of region {regions[j]!r} is {budget[j]:g} ms, below the "
            f"{least[j]:g} ms of its nearest allowed datacenter, so its demand cannot meet "
            f"it; raise rtt_budget_ms for region {regions[j]!r} to at least {least[j]:g} ms",
            field="rtt_budget_ms",
            coordinate={"region": j},
        )


def refuse_budget(sc: Any, path: str) -> None:
    """Raise ScenarioError when ``sc`` has a mean-RTT budget that ``path`` does not model."""
    from eqglb.scenario import ScenarioError

    b = getattr(sc, "rtt_budget_ms", None)
    if b is not None and np.isfinite(b).any():
        raise ScenarioError(
            f"scenario {sc.name!r} has an rtt_budget_ms (mean-RTT budget per region and "
            f'slot), which the {path} path does not model; use policy "reference" (the '
            "cvxpy model carries it, certified), or drop rtt_budget_ms (the hard "
            "rtt_slo_ms is honoured by every path)"
        )


def budget_rows(sc: Any, routes: Any) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Per-region budget rows in route space: (region j, a (route,) [ms], b (time,) [ms x
    requests]) with ``sum_p a[p] y[t, p] <= b[t]``; only regions with a finite budget."""
    b = getattr(sc, "rtt_budget_ms", None)
    if b is None:
        return []
    lat = np.asarray(sc.latency)[routes.i, routes.j]
    d = np.asarray(sc.demand)
    out = []
    for j in np.flatnonzero(np.isfinite(b)):
        a = np.where(routes.j == j, lat, 0.0)
        out.append((int(j), a, float(b[j]) * d[:, j]))
    return out


def latency_summary(sc: Any, y: np.ndarray) -> dict[str, Any] | None:
    """RTT served per region and SLO violations of ``y`` (time, datacenter, region, model).

    Returns None when the scenario has no ``latency``. Otherwise a dict with, per region
    name: ``mean_rtt_ms`` (demand-weighted mean RTT over the horizon [ms]), ``worst_rtt_ms`` (largest RTT of a route carrying flow > ``1e-9`` x the
    region's largest flow [ms]; both None for a region with no requests); ``slo_violation_requests`` (requests on
    routes above ``rtt_slo_ms`` [requests]) and ``budget_excess_ms_requests``
    (sum over slots of ``max(0, sum rtt y - budget demand)`` [ms x requests]) per region
    and in total, and ``worst_budget_excess_ms`` (largest per-slot excess of the mean RTT
    over the budget [ms]).
    """
    if getattr(sc, "latency", None) is None:
        return None
    lat = np.asarray(sc.latency, float)
    R = list(sc.regions)
    f = np.asarray(y, float).sum(axis=3)  # (time, datacenter, region) [requests/slot]
    f = np.clip(f, 0.0, None)
    tot = f.sum(axis=(0, 1))
    ms = np.einsum("tij,ij->j", f, lat)
    mean = np.where(tot > 0, ms / np.where(tot > 0, tot, 1.0), np.nan)
    used = f.sum(axis=0)
    thr = 1e-9 * used.max(axis=0, initial=0.0)
    worst = np.where((used > thr[None, :]) & (used > 0), lat, -np.inf).max(axis=0)
    worst = np.where(np.isfinite(worst), worst, np.nan)

    def opt(v: np.ndarray) -> dict[str, float | None]:
        return {n: float(x) if np.isfinite(x) else None for n, x in zip(R, v, strict=True)}

    out: dict[str, Any] = {"mean_rtt_ms": opt(mean), "worst_rtt_ms": opt(worst)}
    slo = getattr(sc, "rtt_slo_ms", None)
    if slo is not None:
        above = lat > np.asarray(slo)[None, :]
        v = np.where(above[None], f, 0.0).sum(axis=(0, 1))
        out["rtt_slo_ms"] = opt(np.asarray(slo))  # None: no limit
        out["slo_violation_requests"] = dict(zip(R, map(float, v), strict=True))
        out["slo_violation_total"] = float(v.sum())
    b = getattr(sc, "rtt_budget_ms", None)
    if b is not None:
        d = np.asarray(sc.demand, float)
        per_slot = np.einsum("tij,ij->tj", f, lat)  # (time, region) [ms x requests]
        fin = np.isfinite(b)
        excess = np.where(
            fin[None], np.clip(per_slot - np.where(fin, b, 0.0)[None] * d, 0.0, None), 0.0
        )
        mean_excess = np.where(d > 0, excess / np.where(d > 0, d, 1.0), 0.0)
        out["rtt_budget_ms"] = opt(np.asarray(b))
        out["budget_excess_ms_requests"] = dict(zip(R, map(float, excess.sum(axis=0)), strict=True))
        out["budget_excess_total"] = float(excess.sum())
        out["worst_budget_excess_ms"] = float(mean_excess.max(initial=0.0))
    return out
