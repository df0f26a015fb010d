"""The one schema of scenario fields: name, dimensions, unit, bounds.

:class:`eqglb.scenario.Scenario` (its validation, :meth:`~eqglb.scenario.Scenario.slice_time`,
``to_xarray``/``from_xarray``/``from_frames``), the scenario folder format
(:mod:`eqglb.io.scenario_format`), netCDF io, the online :class:`SlotView` and the service's
request schema read the list of fields from here instead of spelling it out. A *signal*
varies by slot (its first dimension is ``time``): an online policy sees it one slot at a
time, and the service receives it with every slot.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FIELDS", "SIGNALS", "SITE_SIGNALS", "Field", "field_of", "signal_or_default"]


@dataclass(frozen=True)
class Field:
    """One array field of a scenario.

    Attributes
    ----------
    name : str
        Attribute of :class:`eqglb.scenario.Scenario`.
    dims : tuple of str
        Canonical dimensions: how the Scenario stores the field (``capacity`` gains a
        ``model`` axis in ``per_model`` mode).
    unit : str
        Canonical unit (``-`` for a pure number).
    lower, upper : float
        Hard bounds (``-inf``/``inf`` when none): a value outside is refused.
    optional : bool
        May be omitted (a default or None applies).
    doc : str
        One line for error messages and the docs.
    accepts : tuple of dims tuples
        Layouts accepted as input, broadcast to ``dims`` (first: the layout of a number
        given for the whole field); empty: ``(dims,)``.
    lower_open : bool
        The lower bound itself is refused (``pue`` and ``capacity_per_request`` > 0).
    kind : {"float", "bool"}
        Element type.
    fix : str
        How to fix a value outside the bounds (appended to the error message).
    """

    name: str
    dims: tuple[str, ...]
    unit: str
    lower: float = 0.0
    upper: float = math.inf
    optional: bool = False
    doc: str = ""
    accepts: tuple[tuple[str, ...], ...] = ()
    lower_open: bool = False
    kind: str = "float"
    fix: str = ""

    @property
    def is_signal(self) -> bool:
        """True when the field varies by slot."""
        return self.dims[:1] == ("time",)

    @property
    def layouts(self) -> tuple[tuple[str, ...], ...]:
        """Accepted input layouts, the preferred (scalar broadcast) one first."""
        return self.accepts or (self.dims,)

    def out_of_bounds(self, value: float) -> bool:
        """True when ``value`` (finite) violates the hard bounds."""
        low = value <= self.lower if self.lower_open else value < self.lower
        return bool(low or value > self.upper)

    def bounds_text(self) -> str:
        """The bounds as a reader would write them, e.g. ``>= 0``, ``in [0, 1]``, ``> 0``."""
        if math.isinf(self.upper):
            return f"{'>' if self.lower_open else '>='} {self.lower:g}"
        return f"in {'(' if self.lower_open else '['}{self.lower:g}, {self.upper:g}]"


_TN = ("time", "datacenter")
_NM = ("datacenter", "model")

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
        Field(
            "pue",
            _TN,
            "-",
            lower=0.0,
            lower_open=True,
            accepts=(("datacenter",), _TN),
            doc="power usage effectiveness (> 0)",
            fix="PUE is facility/IT energy, >= 1 in practice",
        ),
        Field(
            "capacity",
            _TN,
            "units/slot",
            accepts=(("datacenter",), _TN, _NM, ("time", "datacenter", "model")),
            doc="capacity per slot",
        ),
        Field(
            "energy_per_request",
            _NM,
            "kWh/request",
            accepts=(_NM, ("model",)),
            doc="IT energy per request",
        ),
        Field(
            "capacity_per_request",
            ("model",),
            "units/request",
            lower_open=True,
            doc="capacity per request",
        ),
        Field(
            "quality_loss",
            ("model",),
            "-",
            upper=1.0,
            doc="normalised quality loss",
            fix="normalised quality loss must lie in [0, 1] (0 = best model)",
        ),
        Field(
            "allowed",
            ("datacenter", "region", "model"),
            "-",
            optional=True,
            kind="bool",
            accepts=(("datacenter", "region", "model"), ("datacenter", "region")),
            doc="route allowed (datacenter serves region with model)",
        ),
        Field(
            "latency",
            ("datacenter", "region"),
            "ms",
            optional=True,
            doc="round-trip time or distance proxy",
            fix="give latencies >= 0 [ms]",
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


_Shape = int | tuple[int, ...]


def signal_or_default(
    source: Any, name: str, shape: _Shape | Callable[[], _Shape], at: int | None = None
) -> Any:
    """Signal ``name`` of ``source``, or its default where ``source`` lacks an optional one.

    ``source`` is a mapping (read by key: a forecast) or any other object (read by
    attribute: a view, a scenario); ``at`` picks one slot of what was found
    (``source.name[at]``). A signal the schema marks ``optional`` (``health_cost``) that
    ``source`` does not hold is not modelled: zeros [float] of ``shape`` (the shape of the
    value returned, i.e. after ``at``; a callable is called only then). Any other name
    that ``source`` lacks raises the KeyError or AttributeError of the lookup.
    """
    keyed = isinstance(source, Mapping)
    lacks: type[LookupError | AttributeError] = KeyError if keyed else AttributeError
    try:
        value = source[name] if keyed else getattr(source, name)
    except lacks:
        fd = FIELDS.get(name)
        if fd is None or not (fd.optional and fd.is_signal):
            raise
        import numpy as np  # here only: the schema stays light to import

        return np.zeros(shape() if callable(shape) else shape)
    return value if at is None else value[at]
