"""One set of defaults, used by the library, ``run``, ``sweep``, ``solve``, ``reproduce``
(its own study settings aside) and ``serve``; the rationale is in ``docs/defaults.md``.

Weights are per-unit values in real units. The objective applies them to *normalised*
L_q norms, ``mu * n ** (1 - 1/q) * ||v||_q`` (:meth:`eqglb.costs.Objective.normalized`):
when a burden is spread evenly every q charges exactly ``mu`` per unit (q = 1 is the
plain weighted total), and an uneven spread costs more the larger q is. So the same
weights at q = 1 (equity-oblivious) and at q > 1 differ only in how unevenness is priced,
and the difference between the two optima is caused by the norm alone.

* ``mu_carbon`` = 0.19 USD/kg CO2: the US EPA (2023) social cost of carbon, about
  190 USD/t CO2 for 2020 emissions at a 2 % near-term discount rate (EPA, "Report on the
  Social Cost of Greenhouse Gases", Nov. 2023, Table 2.3.1).
* ``mu_water`` = 0.01 USD/L (10 USD/m3): a scarcity value of consumed fresh water, of the
  order of the combined water and wastewater price US households pay in water-stressed
  cities (several USD/m3 and rising; Circle of Blue annual water price survey). The eGLB
  study used 60 USD/m3.
* quality value = 0.01 USD per request per unit of normalised quality loss: losing all
  quality (s = 1) on one request is worth what a ~1,000-token answer from a frontier API
  model costs (about 10 USD per million output tokens in 2024-25 list prices). With
  averaged quality (S_j = mean loss per request) ``mu_social`` = quality value x mean
  requests per region over the horizon, so one request's loss is valued at about the
  quality value whatever the horizon.
* q = 2: the default equity order. q = inf (minimax) is available and reproduces eGLB, but
  on the built-in scenario it levels down (the mean quality loss rises to the worst
  region's); q = 2 keeps a trade-off between the worst region and the total.
* Model rule "weighted": every baseline values quality loss with the same per-unit weight
  as a total (q = 1) added to its own cost, so every row of a comparison pays for the
  quality it delivers in the same way.

On the built-in scenario (7 days) at these weights the q = 1 optimum splits its objective
into energy 19 %, quality 55 %, carbon 15 %, water 11 %: no term is negligible.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eqglb.costs import Objective
    from eqglb.scenario import Scenario

__all__ = [
    "DEFAULT_BASELINE",
    "DEFAULT_DAYS",
    "DEFAULT_MODEL_RULE",
    "DEFAULT_MU_CARBON",
    "DEFAULT_MU_HEALTH",
    "DEFAULT_MU_WATER",
    "DEFAULT_POLICIES",
    "DEFAULT_Q",
    "DEFAULT_QUALITY_VALUE",
    "DEFAULT_TOL",
    "build_objective",
    "default_mu",
    "default_mu_social",
    "parse_option_q",
]

#: Policies of ``eqglb run`` when no ``--policy`` is given: the true cost-only optimum, the
#: classic baselines (each under the shared quality rule), the equity-oblivious optimum of
#: the same objective (q = 1) and the equitable optimum at the chosen q.
DEFAULT_POLICIES: tuple[str, ...] = (
    "cost-only",
    "nearest",
    "energy",
    "carbon",
    "water",
    "weighted",
    "equitable",
)
#: Policy the overheads [%] are measured against: the same objective at q = 1.
DEFAULT_BASELINE = "weighted"
#: Horizon of the built-in scenario [days].
DEFAULT_DAYS = 7
#: Carbon weight [USD/kg CO2] (module docstring).
DEFAULT_MU_CARBON = 0.19
#: Water weight [USD/L] (module docstring).
DEFAULT_MU_WATER = 0.01
#: Public-health weight [USD per USD of health cost]: 0, the burden is reported but not
#: priced unless asked (``--mu-health 1`` prices it at face value).
DEFAULT_MU_HEALTH = 0.0
#: Value of quality [USD per request per unit of normalised quality loss].
DEFAULT_QUALITY_VALUE = 0.01
#: Norm order of every term when neither ``q`` nor a per-term q is given.
DEFAULT_Q = "2"
#: Model-size rule of the baselines (eqglb.policies.offline).
DEFAULT_MODEL_RULE = "weighted"
#: Relative gap [-] below which an exact result is called optimal.
DEFAULT_TOL = 1e-6


def parse_option_q(value: str | float | None, option: str) -> float | None:
    """Norm order from an option value (None stays None); ValueError naming ``option``."""
    if value is None:
        return None
    from eqglb.metrics import parse_q

    try:
        return parse_q(value)
    except ValueError:
        raise ValueError(
            f"{option} = {value!r} is not a norm order; give a number >= 1 or 'inf'"
        ) from None


def default_mu_social(
    sc: Scenario, *, total_quality: bool = False, quality_value: float = DEFAULT_QUALITY_VALUE
) -> float:
    """Per-unit quality weight from a value per request [USD per request per unit of loss].

    With averaged quality (S_j = loss per request), ``mu_social = quality_value x mean
    requests per region over the horizon`` [USD per unit of S]; with total quality
    (S_j in [requests]) ``mu_social = quality_value``.
    """
    if total_quality:
        return float(quality_value)
    import numpy as np

    per_region = float(np.asarray(sc.demand).sum()) / len(sc.regions)
    return float(quality_value) * per_region


def build_objective(
    sc: Scenario,
    *,
    q: str | float | None = None,
    mu_social: float | None = None,
    combined_env: bool = False,
    total_quality: bool = False,
    normalize: bool = True,
    switching_cost: float = 0.0,
    **terms: Any,
) -> Objective:
    """The objective of the defaults: per-term q falls back to ``q``, then to DEFAULT_Q.

    ``terms`` holds ``q_<burden>=`` (str, number or None) and ``mu_<burden>=`` (number or
    None: the burden's default, :func:`default_mu`) for any registered burden
    (:data:`eqglb.burdens.BURDENS`). Weights are per-unit [USD/unit]; with ``normalize``
    (default) they are applied to normalised norms (module docstring), otherwise to plain
    L_q norms. ``switching_cost`` [USD per request moved] prices the change of the
    routing between consecutive slots (docs/switching.md).
    """
    from eqglb.burdens import BURDENS
    from eqglb.costs import Objective

    for key in terms:
        kind, _, name = key.partition("_")
        if kind not in ("mu", "q") or name not in BURDENS:
            raise TypeError(
                f"build_objective got an unexpected keyword {key!r}; give mu_<burden> or "
                f"q_<burden> with a burden of {', '.join(BURDENS)}"
            )
    base = parse_option_q(q, "--q")
    if base is None:
        base = parse_option_q(DEFAULT_Q, "default q")
    assert base is not None
    kw: dict[str, Any] = {}
    for name in BURDENS:
        qv = parse_option_q(terms.get(f"q_{name}"), f"--q-{name}")
        kw[f"q_{name}"] = qv if qv is not None else base
        if name == "social":
            mu = mu_social
            if mu is None:
                mu = default_mu_social(sc, total_quality=total_quality)
        else:
            mu = terms.get(f"mu_{name}")
            if mu is None:
                mu = default_mu(name)
        if not (isinstance(mu, (int, float)) and math.isfinite(mu) and mu >= 0):
            raise ValueError(f"--mu-{name} = {mu!r}; weights must be finite and >= 0")
        kw[f"mu_{name}"] = float(mu)
    sw = switching_cost
    if isinstance(sw, bool) or not (isinstance(sw, (int, float)) and math.isfinite(sw) and sw >= 0):
        raise ValueError(f"--switching-cost = {sw!r}; give a price >= 0 in USD per request moved")
    if sw:
        kw["switching_cost"] = float(sw)
    if normalize:
        return Objective.normalized(
            len(sc.regions),
            len(sc.datacenters),
            **kw,
            combined_environment=combined_env,
            social_average=not total_quality,
        )
    return Objective(**kw, combined_environment=combined_env, social_average=not total_quality)


def default_mu(name: str) -> float:
    """Per-unit default weight of burden ``name`` [its weight unit]; the quality weight
    depends on the scenario (:func:`default_mu_social`)."""
    from eqglb.burdens import burden

    return burden(name).default_mu
