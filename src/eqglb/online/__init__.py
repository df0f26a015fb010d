"""Online equitable GLB: decisions that see no future.

* :func:`simulate_online` drives a policy slot by slot through a causal
  :class:`SlotView` (past and present only; reading ahead raises).
* :class:`OnlineDMD` (registered as ``"online"``): dual mirror descent with auxiliary
  variables for L_q norms (any q >= 1) of carbon, water and quality loss, with an exact
  per-slot LP (:class:`SlotSolver`) and a remaining-horizon price correction.
* :class:`RecedingHorizon` (registered as ``"receding"``): solves the equitable problem over
  a look-ahead window of forecasts plus the costs already incurred, commits the first slot.
* :func:`save_state` / :func:`load_state` / :func:`restore_policy`: durable JSON state; a run
  resumed from it repeats the uninterrupted run's decisions exactly.

See ``docs/online.md`` for the maths, choices and measured performance.
"""

from __future__ import annotations

from typing import Any

from eqglb.costs import Objective
from eqglb.online.dmd import STEP_RULES, OnlineDMD, aux_explicit, project_dual
from eqglb.online.forecast import PerfectForecast, SeasonalNaive, make_forecaster, with_error
from eqglb.online.receding import RecedingHorizon
from eqglb.online.simulator import (
    CausalityError,
    OnlinePolicy,
    PolicyError,
    SlotView,
    simulate_online,
)
from eqglb.online.slot_solver import SlotSolution, SlotSolver
from eqglb.online.state import load_state, restore_policy, save_state
from eqglb.online.stepper import Step, Stepper
from eqglb.registry import register

__all__ = [
    "STEP_RULES",
    "CausalityError",
    "OnlineDMD",
    "OnlinePolicy",
    "PerfectForecast",
    "PolicyError",
    "RecedingHorizon",
    "SeasonalNaive",
    "SlotSolution",
    "SlotSolver",
    "SlotView",
    "Step",
    "Stepper",
    "aux_explicit",
    "load_state",
    "make_forecaster",
    "project_dual",
    "restore_policy",
    "save_state",
    "simulate_online",
    "with_error",
]


@register(
    "online",
    "online equitable GLB: dual mirror descent, causal (no look-ahead)",
    state_class=OnlineDMD,
)
def _online(
    objective: Objective,
    step: str = "adaptive",
    eta: float | None = None,
    aux: str = "proximal",
    horizon_gain: float = 1.0,
    init: Any = "uniform",
    window: int | None = None,
) -> OnlineDMD:
    return OnlineDMD(
        objective=objective,
        step=step,
        eta=eta,
        aux=aux,
        horizon_gain=horizon_gain,
        init=init,
        window=window,
    )


@register(
    "receding",
    "forecast-aware online: receding horizon over a 48-slot window of seasonal-naive forecasts",
    state_class=RecedingHorizon,
)
def _receding(
    objective: Objective,
    window: int = 48,
    forecaster: Any = "seasonal",
    error: float = 0.0,
    seed: int = 0,
    solver: str | None = None,
) -> RecedingHorizon:
    return RecedingHorizon(
        objective=objective,
        window=window,
        forecaster=forecaster,
        error=error,
        seed=seed,
        solver=solver,
    )
