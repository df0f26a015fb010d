"""Units people actually have, and warnings for values no physical system produces.

A :class:`~eqglb.scenario.Scenario` holds one canonical unit per quantity (the ``unit`` of
its field in :data:`eqglb.fields.FIELDS`): demand [requests/slot], price and health cost
[USD/kWh], carbon intensity [kg CO2/kWh], WUE and EWIF [L/kWh], PUE
[-], energy per request [kWh/request], capacity per request [units/request], shared capacity
[units/slot] or per-model capacity [requests/slot], quality loss [-] and latency [ms].

:func:`convert` turns values in a unit that a user has (``"requests/hour"``, ``"USD/MWh"``,
``"g/kWh"``, ``"Wh/token"``, ...) into the canonical one; :data:`UNITS` lists every accepted
label. Rates per hour or per second need the slot length, per-token energies the output
tokens per request. Unknown labels raise :class:`UnitError` listing the accepted ones.
Labels are matched ignoring case, spaces and a ``CO2``/``CO2e``/``CO2eq`` tag, so
``"g CO2/kWh"`` is ``"g/kWh"``.

:func:`check_plausibility` (run by the Scenario constructor) emits one
:class:`PlausibilityWarning` per quantity with values outside :data:`PLAUSIBLE_RANGES`,
naming the value, its coordinate, the expected range and the likely unit mix-up; with
``strict=True`` it raises :class:`PlausibilityError` instead.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from eqglb.fields import FIELDS
from eqglb.scenario import ScenarioError

if TYPE_CHECKING:
    from eqglb.scenario import Scenario

__all__ = [
    "CANONICAL",
    "PLAUSIBLE_RANGES",
    "UNITS",
    "PlausibilityError",
    "PlausibilityWarning",
    "PlausibleRange",
    "UnitError",
    "accepted_units",
    "check_plausibility",
    "convert",
]

_GALLON_L = 3.785411784  # US liquid gallon [L]
_LB_KG = 0.45359237  # avoirdupois pound [kg]


class UnitError(ScenarioError):
    """A unit label is unknown, or a conversion lacks what it needs (slot length, tokens)."""


class PlausibilityWarning(UserWarning):
    """A value lies outside the physically plausible range of its quantity.

    The message names the field, the value, its coordinate, the expected range and the
    likely cause (most often a unit mix-up such as USD/MWh given as USD/kWh).
    """


class PlausibilityError(ScenarioError):
    """A :class:`PlausibilityWarning` raised as an error (``strict=True``)."""


# Factors are (multiplier, divisor, per): value_canonical = value * multiplier / divisor,
# then for per="hour" multiplied by the slot length [h] and for per="token" by the output
# tokens per request. The first label of each table is the canonical unit.
_TABLE: dict[str, dict[str, tuple[float, float, str]]] = {
    "demand": {
        "requests/slot": (1, 1, ""),
        "requests": (1, 1, ""),
        "requests/hour": (1, 1, "hour"),
        "requests/h": (1, 1, "hour"),
        "requests/minute": (60, 1, "hour"),
        "requests/min": (60, 1, "hour"),
        "requests/second": (3600, 1, "hour"),
        "requests/s": (3600, 1, "hour"),
        "requests/day": (1, 24, "hour"),
    },
    "price": {
        "USD/kWh": (1, 1, ""),
        "USD/MWh": (1, 1e3, ""),
        "$/kWh": (1, 1, ""),
        "$/MWh": (1, 1e3, ""),
        "cents/kWh": (1, 100, ""),
        "USD/Wh": (1e3, 1, ""),
    },
    "carbon_intensity": {
        "kg/kWh": (1, 1, ""),
        "g/kWh": (1, 1e3, ""),
        "t/MWh": (1, 1, ""),
        "kg/MWh": (1, 1e3, ""),
        "lb/MWh": (_LB_KG, 1e3, ""),
        "lb/kWh": (_LB_KG, 1, ""),
    },
    "wue": {
        "L/kWh": (1, 1, ""),
        "L/MWh": (1, 1e3, ""),
        "gal/MWh": (_GALLON_L, 1e3, ""),
        "gal/kWh": (_GALLON_L, 1, ""),
        "m3/MWh": (1, 1, ""),
    },
    "ewif": {
        "L/kWh": (1, 1, ""),
        "L/MWh": (1, 1e3, ""),
        "gal/MWh": (_GALLON_L, 1e3, ""),
        "gal/kWh": (_GALLON_L, 1, ""),
        "m3/MWh": (1, 1, ""),
    },
    "health_cost": {
        "USD/kWh": (1, 1, ""),
        "USD/MWh": (1, 1e3, ""),
        "$/kWh": (1, 1, ""),
        "$/MWh": (1, 1e3, ""),
        "cents/kWh": (1, 100, ""),
    },
    "pue": {"-": (1, 1, ""), "1": (1, 1, "")},
    "energy_per_request": {
        "kWh/request": (1, 1, ""),
        "Wh/request": (1, 1e3, ""),
        "mWh/request": (1, 1e6, ""),
        "kJ/request": (1, 3.6e3, ""),
        "J/request": (1, 3.6e6, ""),
        "kWh": (1, 1, ""),
        "Wh": (1, 1e3, ""),
        "MJ": (1, 3.6, ""),
        "kJ": (1, 3.6e3, ""),
        "J": (1, 3.6e6, ""),
        "kWh/token": (1, 1, "token"),
        "Wh/token": (1, 1e3, "token"),
        "mWh/token": (1, 1e6, "token"),
        "J/token": (1, 3.6e6, "token"),
    },
    "capacity_per_request": {"units/request": (1, 1, "")},
    "capacity_shared": {
        "units/slot": (1, 1, ""),
        "units": (1, 1, ""),
        "units/hour": (1, 1, "hour"),
        "units/second": (3600, 1, "hour"),
        "units/s": (3600, 1, "hour"),
    },
    "capacity_per_model": {
        "requests/slot": (1, 1, ""),
        "requests": (1, 1, ""),
        "requests/hour": (1, 1, "hour"),
        "requests/h": (1, 1, "hour"),
        "requests/second": (3600, 1, "hour"),
        "requests/s": (3600, 1, "hour"),
    },
    "quality_loss": {"-": (1, 1, ""), "1": (1, 1, "")},
    "latency": {"ms": (1, 1, ""), "s": (1e3, 1, "")},
}

#: Accepted unit labels per quantity (capacity is split by capacity mode): label -> factor
#: to the canonical unit, per slot hour for rates (``requests/hour``: 1.0, times the slot
#: length) and per token for per-token energies (times the tokens per request).
UNITS: dict[str, dict[str, float]] = {
    q: {lab: m / d for lab, (m, d, _) in t.items()} for q, t in _TABLE.items()
}

#: Canonical unit of each Scenario field (what ``Scenario.to_xarray`` writes as ``units``).
CANONICAL: dict[str, str] = {q: next(iter(t)) for q, t in _TABLE.items()}


def _norm(label: str) -> str:
    s = re.sub(r"\s+", "", str(label)).lower()
    for tag in ("co2eq", "co2e", "co2"):
        s = s.replace(tag, "")
    return s.replace("m³", "m3").replace("¢", "cents")


def _quantity(field: str, capacity_mode: str = "shared") -> str:
    if field == "capacity":
        return "capacity_" + capacity_mode
    if field not in _TABLE:
        known = sorted(
            {
                f.removeprefix("capacity_")
                .replace("shared", "capacity")
                .replace("per_model", "capacity")
                for f in _TABLE
            }
        )
        raise UnitError(f"units: {field!r} is not a Scenario field with a unit; use one of {known}")
    return field


def accepted_units(field: str, capacity_mode: str = "shared") -> list[str]:
    """Unit labels accepted for ``field`` (``capacity`` depends on ``capacity_mode``)."""
    return list(_TABLE[_quantity(field, capacity_mode)])


def convert(
    field: str,
    values: Any,
    unit: str,
    *,
    slot_hours: float | None = None,
    tokens_per_request: Any = None,
    capacity_mode: str = "shared",
) -> np.ndarray:
    """``values`` given in ``unit`` converted to the canonical unit of ``field``.

    Parameters
    ----------
    field : str
        A Scenario field (``"demand"``, ``"price"``, ``"carbon_intensity"``, ...).
    values : array_like
        Values in ``unit``.
    unit : str
        A label of :func:`accepted_units` (``field``), e.g. ``"requests/hour"``.
    slot_hours : float, optional
        Slot length [h]; needed by rates (``requests/hour``, ``requests/second``, ...).
    tokens_per_request : array_like, optional
        Output tokens per request [tokens/request], broadcast against ``values`` (one per
        model for an energy array (datacenter, model)); needed by per-token energies.
    capacity_mode : {"shared", "per_model"}
        Which capacity unit table applies to ``field="capacity"``.

    Returns
    -------
    numpy.ndarray
        Float values in the canonical unit (:data:`CANONICAL`).

    Raises
    ------
    UnitError
        Unknown label (the message lists the accepted ones), or a rate without
        ``slot_hours`` / a per-token energy without ``tokens_per_request``.
    """
    q = _quantity(field, capacity_mode)
    table = _TABLE[q]
    want = _norm(unit) if isinstance(unit, str) else None
    hit = next((lab for lab in table if _norm(lab) == want), None)
    if hit is None:
        raise UnitError(
            f"units: {unit!r} is not an accepted unit of {field}; use one of "
            f"{list(table)} (values are converted to {next(iter(table))})"
        )
    mul, div, per = table[hit]
    out = np.asarray(values, dtype=float)
    if mul != 1:
        out = out * mul
    if div != 1:
        out = out / div
    if per == "hour":
        if slot_hours is None:
            raise UnitError(
                f"units: {field} in {hit!r} needs the slot length; give a time "
                "index with at least two slots or the rate per slot"
            )
        out = out * float(slot_hours)
    elif per == "token":
        if tokens_per_request is None:
            raise UnitError(
                f"units: {field} in {hit!r} needs tokens_per_request (output "
                "tokens per request, one per model or one number); give it, or "
                "the energy per request"
            )
        tok = np.asarray(tokens_per_request, dtype=float)
        if (~np.isfinite(tok)).any() or (tok <= 0).any():
            raise UnitError(
                f"tokens_per_request has a value <= 0, NaN or inf ({tok.tolist()});"
                " give the mean output tokens per request (> 0) of each model"
            )
        out = out * tok
    else:
        out = out * 1.0
    return out


# ---------------------------------------------------------------------------- plausibility
@dataclass(frozen=True)
class PlausibleRange:
    """Physically plausible range of one quantity, in its canonical unit.

    ``low``/``high`` may be None (no bound). ``hint_low``/``hint_high`` say what a value
    below / above most likely is.
    """

    low: float | None
    high: float | None
    unit: str
    hint_low: str
    hint_high: str


#: Plausible ranges, canonical units. Chosen wide: real markets and grids stay inside
#: (ERCOT's price cap is 5 USD/kWh; lignite plants emit about 1.1-1.3 kg CO2/kWh; PUE is
#: facility over IT energy, so >= 1; hydro-heavy grids reach a few tens of L/kWh; cooling towers at a
#: 95 F wet bulb about 10 L/kWh).
PLAUSIBLE_RANGES: dict[str, PlausibleRange] = {
    "price": PlausibleRange(
        -1.0,
        5.0,
        "USD/kWh",
        "a price below -1 USD/kWh is likely USD/MWh given as USD/kWh: pass "
        "units={'price': 'USD/MWh'} or divide by 1000",
        "likely USD/MWh given as USD/kWh: pass units={'price': 'USD/MWh'} or divide by 1000",
    ),
    "carbon_intensity": PlausibleRange(
        None,
        2.0,
        "kg/kWh",
        "",
        "likely g/kWh given as kg/kWh: pass units={'carbon_intensity': 'g/kWh'} or divide by 1000",
    ),
    "pue": PlausibleRange(
        1.0,
        3.0,
        "-",
        "PUE is facility energy over IT energy, so at least 1: is it the inverse (DCiE)?",
        "even legacy facilities stay below about 3: check the value",
    ),
    "wue": PlausibleRange(
        None,
        20.0,
        "L/kWh",
        "",
        "likely L/MWh or gal/MWh given as L/kWh: pass units={'wue': 'gal/MWh'} (or 'L/MWh')",
    ),
    "ewif": PlausibleRange(
        None,
        100.0,
        "L/kWh",
        "",
        "likely L/MWh or gal/MWh given as L/kWh: pass units={'ewif': 'gal/MWh'} (or 'L/MWh')",
    ),
    "health_cost": PlausibleRange(
        None,
        5.0,
        "USD/kWh",
        "",
        "likely USD/MWh given as USD/kWh: pass units={'health_cost': 'USD/MWh'} or divide by 1000",
    ),
}
# energy_per_request has no range: a "request" may be any unit of load (the egl-2022 study
# uses 1 MWh per request), so no value of it is implausible in itself.


def _fmt_range(r: PlausibleRange) -> str:
    if r.low is None:
        return f"at most {r.high:g} {r.unit}"
    if r.high is None:
        return f"at least {r.low:g} {r.unit}"
    return f"[{r.low:g}, {r.high:g}] {r.unit}"


def check_plausibility(
    sc: Scenario,
    *,
    strict: bool = False,
    ranges: Mapping[str, PlausibleRange] | None = None,
    stacklevel: int = 2,
) -> list[str]:
    """Warn (or raise, ``strict``) about values outside the plausible ranges.

    One :class:`PlausibilityWarning` per field, naming the most extreme value, its
    coordinate, how many values are out of range, the expected range and the likely
    fix. Returns the messages (empty when everything is plausible).

    Raises
    ------
    PlausibilityError
        With ``strict=True``, for the first implausible field.
    """
    out: list[str] = []
    for name, r in (PLAUSIBLE_RANGES if ranges is None else ranges).items():
        a = np.asarray(getattr(sc, name), dtype=float)
        dist = np.zeros(a.shape)
        if r.low is not None:
            dist = np.where(a < r.low, r.low - a, dist)
        if r.high is not None:
            dist = np.where(a > r.high, a - r.high, dist)
        n = int(np.count_nonzero(dist > 0))
        if n == 0:
            continue
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(dist)), a.shape))
        v = float(a[idx])
        hint = r.hint_low if (r.low is not None and v < r.low) else r.hint_high
        others = f" (and {n - 1} other value(s) outside it)" if n > 1 else ""
        msg = (
            f"{name} is {v:g} {r.unit} at {sc._coord(FIELDS[name].dims, idx, sc.time)}"
            f"{others}, outside the plausible range ({_fmt_range(r)}); {hint}"
        )
        if strict:
            raise PlausibilityError(msg)
        warnings.warn(msg, PlausibilityWarning, stacklevel=stacklevel + 1)
        out.append(msg)
    return out
