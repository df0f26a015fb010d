"""Structured exact solver of the offline equitable problem.

Only the regional totals (carbon and water per data centre, quality loss per region)
couple the time slots; each slot alone is a small transportation-type LP.
:class:`StructuredOffline` solves the offline problem of ``docs/model.md`` exactly by
Dantzig-Wolfe decomposition over the slots, with a batched warm-started simplex for the
slot LPs (:mod:`.slotlp`) and a structure-exploiting interior-point method for the master
(:mod:`.ipm`), and certifies every answer with a Lagrangian dual bound.

Importing this package registers the policies ``"structured"`` and ``"streaming"``
(:class:`StreamingOffline`: the same decomposition over compact slot LPs streamed in
blocks of slots, for year-long scenarios with thousands of regions)::

    from eqglb.registry import make_policy
    policy = make_policy("structured", objective, tol=1e-6)
    dispatch = policy.plan(scenario)
    dispatch.info.dual_bound, dispatch.info.extra["gap"]
"""

from __future__ import annotations

from typing import Any

from eqglb.costs import Objective
from eqglb.registry import register
from eqglb.structured.coupling import Block, Coupling, coupling_of
from eqglb.structured.slotlp import SlotLPs, SlotSolution
from eqglb.structured.solver import StructuredOffline, slot_lps
from eqglb.structured.stream import StreamingOffline, StreamingResult

__all__ = [
    "Block",
    "Coupling",
    "SlotLPs",
    "SlotSolution",
    "StreamingOffline",
    "StreamingResult",
    "StructuredOffline",
    "coupling_of",
    "slot_lps",
]


@register(
    "structured",
    "exact offline equitable optimum by Dantzig-Wolfe decomposition over "
    "time slots, with a certified optimality gap (fast for long horizons)",
)
def _structured(
    objective: Objective, model_rule: str | None = None, **kw: Any
) -> StructuredOffline:
    return StructuredOffline(objective=objective, **kw)


@register(
    "streaming",
    "exact offline equitable optimum for very large scenarios: compact "
    "slot LPs streamed over blocks of slots in parallel processes, certified gap",
)
def _streaming(objective: Objective, model_rule: str | None = None, **kw: Any) -> StreamingOffline:
    return StreamingOffline(objective=objective, **kw)
