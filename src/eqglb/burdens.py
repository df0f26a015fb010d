"""The registry of burdens: every regularised cost term of the equitable objective.

A *burden* is a cost that falls on a place and that the objective charges through an L_q
norm over places (``mu ||v||_q``, see docs/model.md). Each one is declared once here and
every consumer (coefficients, the conic/LP problem, the structured and streaming solvers,
the online policies, the evaluator, reports, CLI options, the service) iterates
:data:`BURDENS`. A burden is linear in the dispatch: one request of model k served at data
centre i in slot t adds a per-request coefficient to the burden's regional total.

Two sides:

* ``"datacenter"``: the burden is located at the data centre that serves the request
  (carbon, water, public health). Its coefficient is ``factor[t, i] * eps[i, k]``, the
  burden per kWh of IT energy [unit/kWh] times the request's IT energy [kWh/request];
  the regional total has one entry per data centre.
* ``"region"``: the burden is located at the user region that sent the request (quality
  loss). Its coefficient is ``s[k]`` per request, divided by the region's total demand
  when the burden is averaged per request (the default) [unit/request].

Adding a burden touches three source files: its signal in :mod:`eqglb.fields` and on
:class:`eqglb.scenario.Scenario`, and one :class:`Burden` entry here (with its default
weight); see CONTRIBUTING.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from eqglb.defaults import DEFAULT_MU_CARBON, DEFAULT_MU_HEALTH, DEFAULT_MU_WATER

if TYPE_CHECKING:  # numpy is imported where a factor is evaluated (fast `eqglb --help`)
    import numpy as np

    from eqglb.costs import Objective
    from eqglb.simulate import Evaluation

__all__ = [
    "ALWAYS_SHOWN",
    "BURDENS",
    "Burden",
    "burden",
    "datacenter_burdens",
    "further_burdens",
    "names",
    "region_burdens",
]

Side = Literal["datacenter", "region"]


@dataclass(frozen=True)
class Burden:
    """One regularised cost term.

    Attributes
    ----------
    name : str
        Key of the term: ``mu_<name>``, ``q_<name>``, ``--mu-<name>``, metrics columns.
    label : str
        Human name (tables, reports).
    symbol : str
        Letter of its regional vector in docs/model.md (S, C, W, H).
    side : {"datacenter", "region"}
        Where the burden is located (see the module docstring).
    unit : str
        Unit of the regional total (for a region burden averaged per request: per request).
    weight_unit : str
        Unit of ``mu_<name>``.
    fields : tuple of str
        Scenario fields its coefficient reads (besides ``pue`` and ``energy_per_request``
        for data-centre burdens).
    factor : callable or None
        Data-centre burdens: ``factor(get) -> array (..., datacenter)``, the burden per kWh
        of IT energy [unit/kWh], where ``get(field)`` returns a field's array with the
        same leading axes (a whole scenario or one slot). None for region burdens.
    combinable : bool
        Enters the combined environmental norm of ``combined_environment`` (eGLB's
        ``||mu_c C + mu_w W||_q``).
    default_mu : float
        Per-unit weight of the defaults [weight_unit] (:func:`eqglb.defaults.default_mu`);
        the quality weight is derived from the scenario instead
        (:func:`eqglb.defaults.default_mu_social`).
    help : str
        One line for the CLI option and the docs.
    """

    name: str
    label: str
    symbol: str
    side: Side
    unit: str
    weight_unit: str
    fields: tuple[str, ...]
    factor: Callable[[Callable[[str], Any]], np.ndarray] | None
    combinable: bool
    default_mu: float
    help: str

    def site_factor(self, get: Callable[[str], Any]) -> np.ndarray:
        """The burden per kWh of IT energy (..., datacenter) [unit/kWh] (data-centre side)."""
        import numpy as np

        if self.factor is None:
            raise TypeError(f"burden {self.name!r} is charged to user regions, not to sites")
        return np.asarray(self.factor(get), dtype=float)


def _carbon(get: Callable[[str], Any]) -> np.ndarray:
    import numpy as np

    # grid carbon intensity [kg/kWh of facility energy] x PUE [facility/IT]
    return np.asarray(get("carbon_intensity")) * np.asarray(get("pue"))


def _water(get: Callable[[str], Any]) -> np.ndarray:
    import numpy as np

    # on-site cooling [L/kWh IT] + off-site power-plant water [L/kWh facility] x PUE
    return np.asarray(get("wue")) + np.asarray(get("pue")) * np.asarray(get("ewif"))


def _health(get: Callable[[str], Any]) -> np.ndarray:
    import numpy as np

    # public-health cost of the grid's air pollution [USD/kWh facility] x PUE
    return np.asarray(get("health_cost")) * np.asarray(get("pue"))


BURDENS: Mapping[str, Burden] = {
    b.name: b
    for b in (
        Burden(
            name="social",
            label="quality loss",
            symbol="S",
            side="region",
            unit="-",
            weight_unit="USD per unit of S",
            fields=("quality_loss", "demand"),
            factor=None,
            combinable=False,
            default_mu=0.0,
            help="quality loss per user region (average loss per request)",
        ),
        Burden(
            name="carbon",
            label="carbon",
            symbol="C",
            side="datacenter",
            unit="kg CO2",
            weight_unit="USD/kg",
            fields=("carbon_intensity",),
            factor=_carbon,
            combinable=True,
            default_mu=DEFAULT_MU_CARBON,
            help="carbon emitted per data centre",
        ),
        Burden(
            name="water",
            label="water",
            symbol="W",
            side="datacenter",
            unit="L",
            weight_unit="USD/L",
            fields=("wue", "ewif"),
            factor=_water,
            combinable=True,
            default_mu=DEFAULT_MU_WATER,
            help="water consumed per data centre (cooling + power plants)",
        ),
        Burden(
            name="health",
            label="public health",
            symbol="H",
            side="datacenter",
            unit="USD",
            weight_unit="USD/USD",
            fields=("health_cost",),
            factor=_health,
            combinable=False,
            default_mu=DEFAULT_MU_HEALTH,  # reported, not priced unless asked
            help="public-health cost of the air pollution from each data centre's electricity",
        ),
    )
}


def names() -> tuple[str, ...]:
    """Names of the registered burdens, in the objective's order."""
    return tuple(BURDENS)


def burden(name: str) -> Burden:
    """The burden called ``name``; a clear error naming the registered ones otherwise."""
    try:
        return BURDENS[name]
    except KeyError:
        raise KeyError(f"unknown burden {name!r}; registered: {', '.join(BURDENS)}") from None


def datacenter_burdens() -> tuple[Burden, ...]:
    """The burdens located at data centres."""
    return tuple(b for b in BURDENS.values() if b.side == "datacenter")


def region_burdens() -> tuple[Burden, ...]:
    """The burdens located at user regions."""
    return tuple(b for b in BURDENS.values() if b.side == "region")


#: The burdens every table, figure and report shows: quality loss, carbon, water.
ALWAYS_SHOWN: tuple[str, ...] = ("social", "carbon", "water")


def further_burdens(evals: Iterable[Evaluation], priced_by: Objective | None = None) -> list[str]:
    """Burdens beyond :data:`ALWAYS_SHOWN` that every one of ``evals`` reports (in
    ``ev.burdens``; public health), in the registry's order; none for no evaluations.

    With ``priced_by``, only those that objective prices (``mu > 0``): the columns of the
    compact terminal table.
    """
    evs = list(evals)
    return [
        k
        for k in BURDENS
        if k not in ALWAYS_SHOWN
        and evs
        and all(k in ev.burdens for ev in evs)
        and (priced_by is None or priced_by.terms[k].mu > 0)
    ]
