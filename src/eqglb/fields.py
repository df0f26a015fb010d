"""The one schema of scenario fields: name, dimensions, unit, bounds.

:class:`eqglb.scenario.Scenario`, the scenario format, the online :class:`SlotView`
and the service's request schema read the list of fields from here instead of spelling
it out. A *signal* varies by slot (its first dimension is ``time``): an online policy
sees it one slot at a time, and the service receives it with every slot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["FIELDS", "SIGNALS", "SITE_SIGNALS", "Field", "field_of"]


@dataclass(frozen=True)
class Field:
    """One array field of a scenario.

    Attributes
    ----------
    name : str
        Attribute of :class:`eqglb.scenario.Scenario`.
    dims : tuple of str
        Canonical dimensions (some fields accept broadcastable shapes as well).
    unit : str
        Canonical unit.
    lower, upper : float
        Hard bounds (``-inf``/``inf`` when none): a value outside is refused.
    optional : bool
        May be omitted (a default or None applies).
    doc : str
        One line for error messages and the docs.
    """

    name: str
    dims: tuple[str, ...]
    unit: str
    lower: float = 0.0
    upper: float = math.inf
    optional: bool = False
    doc: str = ""

    @property
    def is_signal(self) -> bool:
        """True when the field varies by slot."""
        return self.dims[:1] == ("time",)


_TN = ("time", "datacenter")

FIELDS: Mapping[str, Field] = {
    f.name: f
    for f in (
        Field("demand", ("time", "region"), "requests/slot", doc="requests arriving per slot"),
        Field("price", _TN, "USD/kWh", lower=-math.inf, doc="electricity price"),
        Field("carbon_intensity", _TN, "kg CO2/kWh", doc="grid carbon intensity"),
        Field("wue", _TN, "L/kWh", doc="on-site water usage effectiveness of cooling"),
        Field("ewif", _TN, "L/kWh", doc="off-site energy-water intensity factor"),
        Field(
            "health_cost",
            _TN,
            "USD/kWh",
            optional=True,
            doc="public-health cost of the grid's air pollution per kWh drawn",
        ),
        Field("pue", _TN, "-", lower=0.0, doc="power usage effectiveness (> 0)"),
        Field("capacity", _TN, "units/slot", doc="capacity per slot"),
        Field(
            "energy_per_request",
            ("datacenter", "model"),
            "kWh/request",
            doc="IT energy per request",
        ),
        Field("capacity_per_request", ("model",), "units/request", doc="capacity per request"),
        Field("quality_loss", ("model",), "-", upper=1.0, doc="normalised quality loss"),
        Field(
            "latency",
            ("datacenter", "region"),
            "ms",
            optional=True,
            doc="round-trip time or distance proxy",
        ),
    )
}

#: Fields that vary by slot, in the order of :data:`FIELDS`.
SIGNALS: tuple[str, ...] = tuple(n for n, f in FIELDS.items() if f.is_signal)
#: Slot signals per data centre (time, datacenter): what the service receives with a slot.
SITE_SIGNALS: tuple[str, ...] = tuple(
    n for n in SIGNALS if FIELDS[n].dims == _TN and n != "capacity"
)


def field_of(name: str) -> Field:
    """The field called ``name``; a clear error naming the known ones otherwise."""
    try:
        return FIELDS[name]
    except KeyError:
        raise KeyError(f"unknown scenario field {name!r}; known: {', '.join(FIELDS)}") from None
