"""Request and response bodies of the dispatch service (pydantic models, no HTTP).

Every number is validated at the boundary: finite (``NaN`` and infinities are refused even
when a client's JSON encoder writes them), strictly typed (``true`` or ``"1.5"`` is not a
number) and within a physical range wide enough for any real data centre. Names of data
centres and regions are checked against the scenario by :mod:`eqglb.service.engine`,
which knows them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
    "SlotOut",
]

#: Accepted range of each submitted signal [its unit]: wide enough for real data, narrow
#: enough that costs stay far from floating-point overflow.
LIMITS: dict[str, tuple[float, float, str]] = {
    "demand": (0.0, 1e12, "requests/slot"),
    "price": (-1e4, 1e4, "USD/kWh"),
    "carbon_intensity": (0.0, 100.0, "kg CO2/kWh"),
    "wue": (0.0, 1e4, "L/kWh of IT energy"),
    "ewif": (0.0, 1e4, "L/kWh of facility energy"),
    "pue": (0.0, 100.0, "-"),
    "capacity": (0.0, 1e15, "units/slot (shared) or requests/slot (per model)"),
}


#: Accepted start times of a slot, half-open [TIME_MIN, TIME_MAX) (UTC): every time in it is
#: a 64-bit count of nanoseconds (pandas, NumPy and the SQLite store hold times so; 2^63 ns
#: after the epoch is 2262-04-11).
TIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(2262, 1, 1, tzinfo=UTC)
TIME_RANGE_TEXT = "[1970-01-01T00:00:00Z, 2262-01-01T00:00:00Z)"


def _desc(name: str) -> str:
    return f"[{LIMITS[name][2]}]"


Demand = Annotated[float, Field(strict=True, ge=0.0, le=1e12, description=_desc("demand"))]
Price = Annotated[float, Field(strict=True, ge=-1e4, le=1e4, description=_desc("price"))]
Carbon = Annotated[
    float, Field(strict=True, ge=0.0, le=100.0, description=_desc("carbon_intensity"))
]
Wue = Annotated[float, Field(strict=True, ge=0.0, le=1e4, description=_desc("wue"))]
Ewif = Annotated[float, Field(strict=True, ge=0.0, le=1e4, description=_desc("ewif"))]
Pue = Annotated[float, Field(strict=True, gt=0.0, le=100.0, description=_desc("pue"))]
Capacity = Annotated[float, Field(strict=True, ge=0.0, le=1e15, description=_desc("capacity"))]


class SlotIn(BaseModel):
    """Observed signals of the current slot, keyed by data-centre and region names.

    Required maps name every region (``demand``) or every data centre (``price``,
    ``carbon_intensity``, ``wue``). The optional maps ``pue``, ``ewif`` and ``capacity``
    name any subset of data centres; a value given holds from this slot on (until
    changed), the others keep their current value (initially the scenario's values at its
    first slot).
    """

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
    demand: dict[str, Demand] = Field(
        description="Requests arriving in the slot per region [requests/slot]; every region."
    )
    price: dict[str, Price] = Field(
        description="Electricity price per data centre [USD/kWh]; every data centre."
    )
    carbon_intensity: dict[str, Carbon] = Field(
        description="Grid carbon intensity per data centre [kg CO2/kWh]; every data centre."
    )
    wue: dict[str, Wue] = Field(
        description="On-site water usage effectiveness per data centre [L/kWh of IT "
        "energy]; every data centre."
    )
    ewif: dict[str, Ewif] | None = Field(
        default=None,
        description="Off-site energy-water intensity factor [L/kWh of facility energy]; "
        "any data centres (sticky).",
    )
    pue: dict[str, Pue] | None = Field(
        default=None, description="Power usage effectiveness [-]; any data centres (sticky)."
    )
    capacity: dict[str, Capacity | dict[str, Capacity]] | None = Field(
        default=None,
        description="Capacity changes (sticky): shared mode {datacenter: units/slot}; "
        "per-model mode {datacenter: {model: requests/slot}}.",
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


class SlotCosts(BaseModel):
    energy_cost: float = Field(description="[USD]")
    carbon: float = Field(description="[kg CO2]")
    water: float = Field(description="[L]")


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
    costs: SlotCosts


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
