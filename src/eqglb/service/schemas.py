"""Request and response bodies of the dispatch service (pydantic models, no HTTP).

Every number is validated at the boundary: finite (``NaN`` and infinities are refused even
when a client's JSON encoder writes them), strictly typed (``true`` or ``"1.5"`` is not a
number) and within a physical range wide enough for any real data centre. Names of data
centres and regions are checked against the scenario by :mod:`eqglb.service.engine`,
which knows them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from eqglb.burdens import BURDENS
from eqglb.fields import FIELDS, SITE_SIGNALS

__all__ = [
    "LIMITS",
    "TIME_MAX",
    "TIME_MIN",
    "TIME_RANGE_TEXT",
    "ErrorItem",
    "ErrorOut",
    "HealthOut",
    "RouteOut",
    "SlotIn",
    "STICKY",
    "SlotOut",
    "signal_kind",
]

#: Accepted range of each submitted signal [its unit]: wide enough for real data, narrow
#: enough that costs stay far from floating-point overflow.
LIMITS: dict[str, tuple[float, float, str]] = {
    "demand": (0.0, 1e12, "requests/slot"),
    "price": (-1e4, 1e4, "USD/kWh"),
    "carbon_intensity": (0.0, 100.0, "kg CO2/kWh"),
    "wue": (0.0, 1e4, "L/kWh of IT energy"),
    "ewif": (0.0, 1e4, "L/kWh of facility energy"),
    "health_cost": (0.0, 1e4, "USD/kWh"),
    "pue": (0.0, 100.0, "-"),
    "capacity": (0.0, 1e15, "units/slot (shared) or requests/slot (per model)"),
}


#: Accepted start times of a slot, half-open [TIME_MIN, TIME_MAX) (UTC): every time in it is
#: a 64-bit count of nanoseconds (pandas, NumPy and the SQLite store hold times so; 2^63 ns
#: after the epoch is 2262-04-11).
TIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(2262, 1, 1, tzinfo=UTC)
TIME_RANGE_TEXT = "[1970-01-01T00:00:00Z, 2262-01-01T00:00:00Z)"


#: Slot signals whose value holds until changed (slowly varying facility data): a slot may
#: name any subset of data centres; the others keep their current value.
STICKY = ("ewif", "pue")


def signal_kind(name: str) -> str:
    """How a slot gives a signal of :data:`eqglb.fields.SITE_SIGNALS`: ``"required"``
    (every data centre, every slot), ``"sticky"`` (:data:`STICKY`) or ``"optional"``
    (an optional scenario field: every data centre, or omitted for 0)."""
    if name in STICKY:
        return "sticky"
    return "optional" if FIELDS[name].optional else "required"


def _number(name: str) -> Any:
    lo, hi, unit = LIMITS[name]
    bound: dict[str, Any] = {"gt": lo} if name == "pue" else {"ge": lo}  # a PUE is > 0
    return Annotated[float, Field(strict=True, le=hi, description=f"[{unit}]", **bound)]


Demand = _number("demand")
Capacity = _number("capacity")


class _SlotBase(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    time: Annotated[datetime | None, Field(strict=True)] = Field(
        default=None,
        description="Start of the slot (ISO 8601; naive = UTC), in "
        f"{TIME_RANGE_TEXT}. Strictly after the last accepted slot. Optional "
        "after the first slot: omitted, the slot starts one slot length after "
        "the last one.",
    )
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        json_schema_extra={"deprecated": True},
        description="Client-chosen key of this submission (or the Idempotency-Key header): a "
        "retry with the same key returns the stored response, never a second "
        "decision.",
    )
    demand: dict[str, Demand] = Field(  # type: ignore[valid-type]
        description="Requests arriving in the slot per region [requests/slot]; every region."
    )

    @field_validator("time")
    @classmethod
    def _time_in_range(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return v
        aware = v if v.tzinfo is not None else v.replace(tzinfo=UTC)
        try:
            inside = TIME_MIN <= aware < TIME_MAX
        except OverflowError:  # an offset that pushes the time past datetime's own range
            inside = False
        if not inside:
            raise ValueError(
                f"time {v.isoformat()} is outside the accepted range "
                f"{TIME_RANGE_TEXT}; give the slot's start in that range"
            )
        return v


def _site_field(name: str) -> tuple[object, object]:
    f, kind = FIELDS[name], signal_kind(name)
    what = f"{f.doc[:1].upper()}{f.doc[1:]} per data centre [{LIMITS[name][2]}]"
    typ: Any = dict[str, _number(name)]  # type: ignore[misc, valid-type]
    if kind == "required":
        return typ, Field(description=f"{what}; every data centre.")
    if kind == "sticky":
        return typ | None, Field(default=None, description=f"{what}; any data centres (sticky).")
    return typ | None, Field(
        default=None, description=f"{what}; every data centre, or omitted (0 this slot)."
    )


#: Observed signals of the current slot, keyed by data-centre and region names: ``demand``
#: (every region), one map per signal of :data:`eqglb.fields.SITE_SIGNALS` (see
#: :func:`signal_kind`) and ``capacity`` changes (sticky).
SlotIn = create_model(  # type: ignore[call-overload]
    "SlotIn",
    __base__=_SlotBase,
    __doc__=(
        "Observed signals of the current slot, keyed by data-centre and region names.\n\n"
        "Required maps name every region (``demand``) or every data centre ("
        + ", ".join(f"``{n}``" for n in SITE_SIGNALS if signal_kind(n) == "required")
        + "). The sticky maps "
        + ", ".join(f"``{n}``" for n in STICKY)
        + " and ``capacity`` name any subset of data centres; a value given holds from "
        "this slot on (until changed), the others keep their current value (initially "
        "the scenario's values at its first slot). Optional maps ("
        + ", ".join(f"``{n}``" for n in SITE_SIGNALS if signal_kind(n) == "optional")
        + ") name every data centre or are omitted (0 for the slot)."
    ),
    **{n: _site_field(n) for n in SITE_SIGNALS},
    capacity=(
        dict[str, Capacity | dict[str, Capacity]] | None,  # type: ignore[valid-type]
        Field(
            default=None,
            description="Capacity changes (sticky): shared mode {datacenter: units/slot}; "
            "per-model mode {datacenter: {model: requests/slot}}.",
        ),
    ),
)


class RouteOut(BaseModel):
    """Share of one region's requests sent to one (data centre, model)."""

    datacenter: str
    model: str
    fraction: float = Field(description="Share of the region's requests [-]")
    requests: float = Field(description="Requests routed [requests/slot]")


class RegionRouting(BaseModel):
    demand: float = Field(description="[requests/slot]")
    routes: list[RouteOut]


class RouteWeight(BaseModel):
    datacenter: str
    model: str
    weight: int


class RegionWeights(BaseModel):
    datacenters: dict[str, int] = Field(
        description="Integer weight of each data centre (positive ones only); they sum to `total`."
    )
    routes: list[RouteWeight] = Field(
        description="Integer weight of each (data centre, model), positive ones only; they "
        "sum to `total`."
    )
    carried_over: bool = Field(
        description="True when the region had no demand this slot: its previous weights "
        "are kept (uniform over allowed routes before its first demand)."
    )


class WeightsOut(BaseModel):
    total: int
    regions: dict[str, RegionWeights]


SlotCosts = create_model(  # type: ignore[call-overload]
    "SlotCosts",
    __doc__="The slot's energy cost and total of every data-centre burden.",
    energy_cost=(float, Field(description="[USD]")),
    **{
        n: (float, Field(description=f"[{b.unit}]"))
        for n, b in BURDENS.items()
        if b.side == "datacenter"
    },
)


class SlotOut(BaseModel):
    """The routing decided for one accepted slot."""

    slot: int = Field(description="Index of the slot (0 = first accepted slot).")
    time: str = Field(description="Start of the slot, ISO 8601 UTC.")
    idempotency_key: str
    policy: str
    routing: dict[str, RegionRouting] = Field(
        description="Per region: its demand and the share sent to each (data centre, "
        "model); shares below 1e-12 are left out."
    )
    weights: WeightsOut
    costs: SlotCosts  # type: ignore[valid-type]


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    detail: list[ErrorItem] | str


class HealthOut(BaseModel):
    """``GET /healthz``: whether the service runs and can write accepted slots."""

    status: str = Field(
        description="ok (writes possible), degraded (the last write failed) or starting"
    )
    slots: int = Field(description="Committed slots [slots]")
    writable: bool = Field(
        description="True when the decision thread runs and the last "
        "write to the database succeeded"
    )
    write_error: str | None = Field(
        default=None, description="Why the last write failed (degraded only)"
    )
