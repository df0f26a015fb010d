"""Scenario data model: what an equitable GLB problem is made of, validated once.

A :class:`Scenario` holds every input of ``docs/model.md`` with
named dimensions ``time``, ``datacenter``, ``region`` and ``model`` ("model" always means
the AI model). It is validated once, at construction; downstream code trusts it.
Nothing writes back into a Scenario: the arrays are made read-only.

A :class:`Dispatch` is a routing ``y[time, datacenter, region, model]`` [requests/slot]
from any policy (or from a file); it is scored by :func:`eqglb.simulate.evaluate`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from eqglb.fields import FIELDS, SIGNALS

__all__ = [
    "DIMS",
    "Dispatch",
    "InfeasibleDemandError",
    "Scenario",
    "ScenarioError",
    "SolveInfo",
    "SolveStatus",
    "scenario_fingerprint",
]

#: Names of the four dimensions of a dispatch, in array order.
DIMS = ("time", "datacenter", "region", "model")


from eqglb.errors import ScenarioError  # noqa: E402  (defined with every eqglb error)


class InfeasibleDemandError(ScenarioError):
    """A slot's demand cannot be served within capacity and routing (``field="demand"``,
    ``coordinate`` the slot and region)."""


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def _fmt_time(time: pd.DatetimeIndex, t: int) -> str:
    return f"slot {t} ({time[t]:%Y-%m-%d %H:%M})"


@dataclass(frozen=True, eq=False)
class Scenario:
    """A validated equitable-GLB scenario.

    Parameters
    ----------
    datacenters : sequence of str
        Data-centre names (dimension ``datacenter``, size N), unique.
    regions : sequence of str
        User-region (gateway) names (dimension ``region``, size J), unique.
    models : sequence of str
        AI-model variant names (dimension ``model``, size K), unique.
    time : pandas.DatetimeIndex
        Start of each slot (dimension ``time``, size T), UTC, strictly increasing with a
        fixed step (no gaps). A naive index is taken as UTC.
    demand : array (time, region)
        Requests arriving at each region in each slot [requests/slot].
    price : array (time, datacenter)
        Electricity price [USD/kWh]; may be negative.
    carbon_intensity : array (time, datacenter)
        Grid carbon intensity [kg CO2/kWh].
    wue : array (time, datacenter)
        On-site water usage effectiveness of cooling [L/kWh of IT energy].
    ewif : array (time, datacenter)
        Off-site energy-water intensity factor of the grid [L/kWh of facility energy].
    pue : array (datacenter,) or (time, datacenter)
        Power usage effectiveness [-], >= 1 in practice (> 0 enforced).
    energy_per_request : array (datacenter, model) or (model,)
        IT energy one request of each model takes at each data centre [kWh/request].
    capacity_per_request : array (model,)
        Capacity units one request of each model takes [units/request] (e.g. GPU-seconds).
    capacity : array (datacenter,), (time, datacenter), (datacenter, model) or (time, datacenter, model)
        Capacity per slot. With ``capacity_mode="shared"`` one pool per data centre
        [units/slot] that requests of model k draw ``capacity_per_request[k]`` units from;
        with ``"per_model"`` one pool per (data centre, model) [requests/slot].
    quality_loss : array (model,)
        Normalised quality loss of each model versus the best one [-], in [0, 1].
    allowed : bool array (datacenter, region, model), (datacenter, region) or None
        Whether region j may be served by model k at data centre i (latency,
        sovereignty, model hosted). ``None`` allows everything.
    capacity_mode : {"shared", "per_model"}
        Whether ``capacity`` is one pool per data centre or one per (data centre, model).
    latency : array (datacenter, region) or None
        Latency or distance proxy [ms] used by the Nearest baseline.
    home : sequence of str or None
        Home (nearest) data centre of each region; used by Nearest when ``latency`` is
        absent (home = 0 ms, elsewhere = 1 ms, i.e. spill-over to any allowed site).
    name, description : str
        Free text; ``description`` should state the provenance of the data.
    attrs : dict
        Free metadata (sources, units of the original files, ...), never read by the maths.
    validate_feasibility : bool
        Check at construction that every slot's demand can be served.
    strict : bool
        Raise :class:`eqglb.units.PlausibilityError` instead of emitting a
        :class:`eqglb.units.PlausibilityWarning` for implausible values (a price above
        5 USD/kWh, a PUE below 1, ...; see :data:`eqglb.units.PLAUSIBLE_RANGES`).
    plausibility_checks : bool
        Check values against those ranges at all (off only for internal rebuilds of
        inputs that were checked already).
    rtt_slo_ms : number, array (region,), dict by region or None
        Hard per-region maximum round-trip time [ms] (``inf``: none); needs ``latency``
        (read as the RTT matrix [ms]). Routes with ``latency[i, j] > rtt_slo_ms[j]`` are
        removed from ``allowed`` at validation, so every solver path honours it;
        :attr:`allowed_declared` keeps the mask as given. See :mod:`eqglb.slo`.
    rtt_budget_ms : number, array (region,), dict by region or None
        Demand-weighted mean-RTT budget per region and slot [ms]:
        ``sum_{i,k} latency[i,j] y[t,i,j,k] <= rtt_budget_ms[j] demand[t,j]``. Only the
        ``"reference"`` policy models it; the structured, streaming and online paths
        refuse such a scenario.
    health_cost : array (time, datacenter) or None
        Public-health cost of the air pollution caused by the grid electricity a data
        centre draws [USD/kWh of facility energy] (the ``health`` burden, charged to the
        data centre's region; see :mod:`eqglb.burdens`). ``None``: 0 (not modelled).

    Notes
    -----
    Array arguments may be labelled: a pandas DataFrame/Series (wide or long) or an
    xarray DataArray is aligned by name to ``datacenters``/``regions``/``models`` and by
    time stamp to ``time``, and refused with a :class:`ScenarioError` naming the missing
    and extra labels when it does not align (see :mod:`eqglb.labels`). ``home`` may be a
    Series or dict keyed by region. Plain arrays are taken positionally.
    :meth:`from_frames` also infers the names and converts units.
    """

    datacenters: tuple[str, ...]
    regions: tuple[str, ...]
    models: tuple[str, ...]
    time: pd.DatetimeIndex
    demand: np.ndarray
    price: np.ndarray
    carbon_intensity: np.ndarray
    wue: np.ndarray
    ewif: np.ndarray
    pue: np.ndarray
    energy_per_request: np.ndarray
    capacity_per_request: np.ndarray
    capacity: np.ndarray
    quality_loss: np.ndarray
    allowed: np.ndarray | None = None
    capacity_mode: str = "shared"
    latency: np.ndarray | None = None
    home: tuple[str, ...] | None = None
    name: str = "scenario"
    description: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    validate_feasibility: bool = True
    strict: bool = False
    plausibility_checks: bool = True
    rtt_slo_ms: Any = None
    rtt_budget_ms: Any = None
    health_cost: Any = None

    # ------------------------------------------------------------------ construction
    def __post_init__(self) -> None:
        from eqglb import labels as _labels

        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        for dim, names in (
            ("datacenter", self.datacenters),
            ("region", self.regions),
            ("model", self.models),
        ):
            names = tuple(str(n) for n in names)
            if len(names) == 0:
                raise ScenarioError(f"{dim} list is empty; give at least one {dim} name")
            seen: set[str] = set()
            for n in names:
                if n in seen:
                    raise ScenarioError(
                        f"{dim} name {n!r} appears twice; {dim} names must be unique"
                    )
                if not n.strip():
                    raise ScenarioError(f"a {dim} name is empty; give every {dim} a name")
                seen.add(n)
            set_(dim + "s", names)
        N, J, K = len(self.datacenters), len(self.regions), len(self.models)

        time = self.time
        if not isinstance(time, pd.DatetimeIndex):
            try:
                time = pd.DatetimeIndex(pd.to_datetime(list(time)))
            except (TypeError, ValueError) as exc:
                raise ScenarioError(
                    f"time is not a list of timestamps ({exc}); "
                    "give ISO 8601 times such as 2022-09-22 00:00"
                ) from exc
        time = time.tz_localize("UTC") if time.tz is None else time.tz_convert("UTC")
        T = len(time)
        if T == 0:
            raise ScenarioError("time is empty; give at least one slot")
        if T > 1:
            steps = np.diff(time.asi8)
            bad = np.flatnonzero(steps <= 0)
            if bad.size:
                t = int(bad[0]) + 1
                raise ScenarioError(
                    f"time is not strictly increasing at slot {t} ({time[t]} after "
                    f"{time[t - 1]}); sort the time stamps and drop duplicates",
                    field="time",
                    coordinate={"time": t},
                )
            gap = np.flatnonzero(steps != steps[0])
            if gap.size:
                t = int(gap[0]) + 1
                raise ScenarioError(
                    f"time has a gap or uneven step at slot {t} ({time[t - 1]} -> {time[t]}, "
                    f"expected step {pd.Timedelta(int(steps[0]))}); fill the missing slots",
                    field="time",
                    coordinate={"time": t},
                )
        set_("time", time)

        if self.capacity_mode not in ("shared", "per_model"):
            raise ScenarioError(
                f"capacity_mode is {self.capacity_mode!r}; use 'shared' or 'per_model'",
                field="capacity_mode",
            )
        sizes = {"time": T, "datacenter": N, "region": J, "model": K}
        values: dict[str, np.ndarray | None] = {}
        for fd in FIELDS.values():
            target, layouts = fd.dims, fd.layouts
            if fd.name == "capacity":  # one pool per datacenter, or per (datacenter, model)
                per_model = self.capacity_mode == "per_model"
                layouts = tuple(d for d in layouts if ("model" in d) == per_model)
                target = layouts[-1]
            raw = getattr(self, fd.name)
            if raw is None:
                if fd.is_signal:  # an optional signal (health_cost) not given: not modelled, 0
                    values[fd.name] = np.zeros(tuple(sizes[d] for d in target))
                elif fd.name == "allowed":  # everything allowed
                    values[fd.name] = np.ones(tuple(sizes[d] for d in target), dtype=bool)
                elif fd.optional:
                    values[fd.name] = None
                else:
                    raise ScenarioError(f"{fd.name} is missing; give it", field=fd.name)
                continue
            a = self._array(fd.name, raw, layouts, target, sizes, fd.kind, time)
            if fd.kind == "float":
                self._check_values(fd.name, a, target, time)
            values[fd.name] = a
        demand, allowed, lat = values["demand"], values["allowed"], values["latency"]
        assert demand is not None and allowed is not None

        # names in home, allowed coverage
        home = _labels.align_home(self.home, self.regions)
        if home is not None:
            home = tuple(str(h) for h in home)
            if len(home) != J:
                raise ScenarioError(
                    f"home has {len(home)} entries; expected one per region ({J})", field="home"
                )
            for j, h in enumerate(home):
                if h not in self.datacenters:
                    raise ScenarioError(
                        f"home of region {self.regions[j]!r} is {h!r}, not a known datacenter; "
                        f"use one of {list(self.datacenters)}",
                        field="home",
                        coordinate={"region": j},
                    )
        set_("home", home)
        from eqglb import slo as _slo

        slo = _slo.region_limits("rtt_slo_ms", self.rtt_slo_ms, self.regions)
        budget = _slo.region_limits("rtt_budget_ms", self.rtt_budget_ms, self.regions)
        if (slo is not None or budget is not None) and lat is None:
            raise ScenarioError(
                "rtt_slo_ms / rtt_budget_ms need `latency` (the RTT matrix "
                "(datacenter, region) [ms]); give latency or drop the SLO",
                field="latency",
            )
        declared = allowed
        assert lat is not None or (slo is None and budget is None)
        if slo is not None:
            assert lat is not None
            allowed = _slo.slo_mask(allowed, lat, slo, self.datacenters, self.regions)
        if budget is not None:
            assert lat is not None
            _slo.check_budget(budget, lat, allowed, demand, self.regions)
        set_("rtt_slo_ms", None if slo is None else _ro(slo))
        set_("rtt_budget_ms", None if budget is None else _ro(budget))
        set_("_allowed_declared", _ro(declared))
        cover = allowed.any(axis=(0, 2))
        if not cover.all():
            j = int(np.flatnonzero(~cover)[0])
            raise ScenarioError(
                f"region {self.regions[j]!r} has no allowed datacenter and model; "
                "allow at least one (datacenter, model) for it in `allowed`",
                field="allowed",
                coordinate={"region": j},
            )
        values["allowed"] = allowed
        for key, value in values.items():
            set_(key, None if value is None else _ro(value))
        from eqglb.units import check_plausibility

        if self.plausibility_checks:
            check_plausibility(self, strict=self.strict, stacklevel=3)
        if self.validate_feasibility:
            self._check_feasible()

    def _array(
        self,
        name: str,
        raw: Any,
        layouts: Sequence[tuple[str, ...]],
        target: tuple[str, ...],
        sizes: Mapping[str, int],
        kind: str,
        time: pd.DatetimeIndex,
    ) -> np.ndarray:
        """``raw`` aligned by label, as an array of one of ``layouts``, broadcast to ``target``."""
        from eqglb import labels as _labels

        v = _labels.align(name, raw, self, time, self.capacity_mode)
        try:
            a = np.array(v, dtype=bool if kind == "bool" else float, copy=True)
        except (TypeError, ValueError) as exc:
            raise ScenarioError(
                f"{name} is not numeric ({exc}); give numbers", field=name, fix="give numbers"
            ) from exc
        for dims in layouts:
            if a.shape == tuple(sizes[d] for d in dims):
                # a layout is a subsequence of the target dims: add the missing axes
                shape = tuple(sizes[d] if d in dims else 1 for d in target)
                return np.broadcast_to(a.reshape(shape), tuple(sizes[d] for d in target))
        want = " or ".join(
            "(" + ", ".join(f"{d}={sizes[d]}" for d in dims) + ")" for dims in layouts
        )
        raise ScenarioError(f"{name} has shape {a.shape}; expected {want}", field=name)

    def _check_values(
        self, name: str, a: np.ndarray, dims: tuple[str, ...], time: pd.DatetimeIndex
    ) -> None:
        """Refuse NaN/inf and values outside the bounds of field ``name`` (:mod:`eqglb.fields`)."""
        fd = FIELDS[name]

        def fail(mask: np.ndarray, problem: Any, fix: str) -> None:
            idx = np.argwhere(mask)[0]
            coord = dict(zip(dims, (int(i) for i in idx), strict=True))
            raise ScenarioError(
                f"{problem(int(mask.sum()), float(a[tuple(idx)]), self._coord(dims, idx, time))}"
                f"; {fix}",
                field=name,
                coordinate=coord,
                fix=fix,
            )

        bad = ~np.isfinite(a)
        if bad.any():
            fail(
                bad,
                lambda n, v, at: f"{name} has {n} NaN/inf value(s), first at {at}",
                "fill or drop them",
            )
        low = a <= fd.lower if fd.lower_open else a < fd.lower
        out = low | (a > fd.upper)
        if not out.any():
            return
        if fd.lower == 0 and not fd.lower_open and math.isinf(fd.upper):
            fail(
                out,
                lambda n, v, at: f"{name} has {n} negative value(s), first {v:g} at {at}",
                f"{name} must be >= 0",
            )
        word = "at" if "time" in dims else "for"
        fail(
            out,
            lambda n, v, at: f"{name} is {v:g} {word} {at}",
            fd.fix or f"it must be {fd.bounds_text()} [{fd.unit}]",
        )

    def _coord(self, dims: Sequence[str], idx: Sequence[int], time: pd.DatetimeIndex) -> str:
        parts = []
        for d, i in zip(dims, idx, strict=True):
            i = int(i)
            if d == "time":
                parts.append(_fmt_time(time, i))
            else:
                parts.append(f"{d} {getattr(self, d + 's')[i]!r}")
        return ", ".join(parts)

    # ------------------------------------------------------------------ labels
    @classmethod
    def from_frames(
        cls,
        *,
        demand: Any,
        price: Any,
        carbon_intensity: Any,
        wue: Any,
        ewif: Any,
        pue: Any,
        energy_per_request: Any,
        capacity_per_request: Any,
        capacity: Any,
        quality_loss: Any,
        allowed: Any = None,
        latency: Any = None,
        health_cost: Any = None,
        home: Any = None,
        tokens_per_request: Any = None,
        units: dict[str, str] | None = None,
        datacenters: Sequence[str] | None = None,
        regions: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        time: Any = None,
        capacity_mode: str = "shared",
        name: str = "scenario",
        description: str = "",
        attrs: dict[str, Any] | None = None,
        validate_feasibility: bool = True,
        strict: bool = False,
    ) -> Scenario:
        """A Scenario from labelled pandas inputs, in the units you have.

        Each field is a wide DataFrame (time index, one column per data centre or region),
        a long DataFrame (columns ``time``/``datacenter``/``region``/``model`` plus a value
        column named after the field or alone), a Series or dict keyed by name, a
        DataArray, a plain array (positional) or one number (broadcast). Inputs are
        aligned by label; what does not align is refused naming the field and labels.
        Parameters not listed below are as for :class:`Scenario`.

        Parameters
        ----------
        datacenters, regions, models, time : optional
            Names and slots; inferred when omitted: ``time`` and ``regions`` from
            ``demand``, ``datacenters`` from ``price``, ``models`` from ``quality_loss``
            (then the other fields), in the order they appear.
        units : dict field -> unit label, optional
            Units of the given values, converted to the canonical ones, e.g.
            ``{"demand": "requests/hour", "price": "USD/MWh", "carbon_intensity": "g/kWh",
            "energy_per_request": "Wh/token"}``; see :data:`eqglb.units.UNITS`.
            Unknown labels are refused with the accepted ones listed.
        tokens_per_request : number, Series by model or array (model,)
            Output tokens per request [tokens/request], for per-token energy units.
        """
        from eqglb.labels import from_frames

        return from_frames(
            demand=demand,
            price=price,
            carbon_intensity=carbon_intensity,
            wue=wue,
            ewif=ewif,
            pue=pue,
            energy_per_request=energy_per_request,
            capacity_per_request=capacity_per_request,
            capacity=capacity,
            quality_loss=quality_loss,
            allowed=allowed,
            latency=latency,
            health_cost=health_cost,
            home=home,
            tokens_per_request=tokens_per_request,
            units=units,
            datacenters=datacenters,
            regions=regions,
            models=models,
            time=time,
            capacity_mode=capacity_mode,
            name=name,
            description=description,
            attrs=attrs,
            validate_feasibility=validate_feasibility,
            strict=strict,
        )

    @classmethod
    def from_xarray(
        cls,
        ds: Any,
        *,
        units: dict[str, str] | None = None,
        tokens_per_request: Any = None,
        name: str | None = None,
        validate_feasibility: bool = True,
        strict: bool = False,
    ) -> Scenario:
        """A Scenario from an ``xarray.Dataset`` with one variable per field.

        Dims must be named ``time``, ``datacenter``, ``region``, ``model`` and carry
        coordinates; each variable's ``units`` attr (if any) is converted as in
        :meth:`from_frames` (``units`` overrides it). :meth:`to_xarray` writes such a
        Dataset. Requires the ``xarray`` extra.
        """
        from eqglb.labels import from_xarray

        return from_xarray(
            ds,
            units=units,
            tokens_per_request=tokens_per_request,
            name=name,
            validate_feasibility=validate_feasibility,
            strict=strict,
        )

    def to_xarray(self) -> Any:
        """This scenario as an ``xarray.Dataset`` in canonical units (``units`` attrs);
        see :func:`eqglb.labels.scenario_to_xarray`. Requires the ``xarray`` extra."""
        from eqglb.labels import scenario_to_xarray

        return scenario_to_xarray(self)

    # ------------------------------------------------------------------ shapes
    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(T, N, J, K): sizes of time, datacenter, region, model."""
        return (len(self.time), len(self.datacenters), len(self.regions), len(self.models))

    @property
    def n_time(self) -> int:
        return len(self.time)

    @property
    def slot_hours(self) -> float:
        """Slot length [h] (1.0 for a single-slot scenario)."""
        if len(self.time) < 2:
            return 1.0
        return float((self.time[1] - self.time[0]) / pd.Timedelta(hours=1))

    def index(self, dim: str, name: str) -> int:
        """Position of ``name`` along ``dim``; raises ScenarioError naming the known names."""
        names = getattr(self, dim + "s")
        try:
            return names.index(name)
        except ValueError:
            raise ScenarioError(f"unknown {dim} {name!r}; known: {list(names)}") from None

    def nearest_latency(self) -> np.ndarray:
        """Latency proxy (datacenter, region) [ms] for the Nearest baseline."""
        if self.latency is not None:
            return np.asarray(self.latency)
        if self.home is not None:
            lat = np.ones((len(self.datacenters), len(self.regions)))
            for j, h in enumerate(self.home):
                lat[self.datacenters.index(h), j] = 0.0
            return lat
        raise ScenarioError(
            f"scenario {self.name!r} has neither `latency` nor `home`; the Nearest baseline "
            "needs one of them (give each region a home datacenter)"
        )

    @property
    def allowed_declared(self) -> np.ndarray:
        """``allowed`` as given, before ``rtt_slo_ms`` removed the routes above it."""
        return self._allowed_declared  # type: ignore[attr-defined,no-any-return]

    def replace(self, **changes: Any) -> Scenario:
        """A new validated Scenario with some fields changed (this one is untouched).

        ``allowed`` starts from :attr:`allowed_declared`, so a changed ``rtt_slo_ms`` or
        ``latency`` is applied to the mask as given."""
        if self.rtt_slo_ms is not None:
            changes.setdefault("allowed", self.allowed_declared)
        return dataclasses.replace(self, **changes)

    def slice_time(self, start: int, stop: int) -> Scenario:
        """Sub-scenario over slots ``start:stop``: every signal of
        :data:`eqglb.fields.SIGNALS` is cut and the result validated again (shapes,
        values, time), except the per-slot feasibility and plausibility checks: the slots
        of a validated scenario were checked already, and both checks are per slot. The
        copy keeps this scenario's flags, so a later :meth:`replace` checks in full."""
        sl = slice(start, stop)
        ch: dict[str, Any] = {"time": self.time[sl], **{n: getattr(self, n)[sl] for n in SIGNALS}}
        out = self.replace(**ch, validate_feasibility=False, plausibility_checks=False)
        object.__setattr__(out, "validate_feasibility", self.validate_feasibility)
        object.__setattr__(out, "plausibility_checks", self.plausibility_checks)
        return out

    # ------------------------------------------------------------------ feasibility
    def _check_feasible(self) -> None:
        """Raise ScenarioError naming the first slot and region whose demand cannot be served.

        Exact per-slot check: a linear program with an unserved-demand slack per
        (slot, region) minimises the total slack; any positive slack names a slot and a
        region. Cheap necessary conditions are checked first.
        """
        from eqglb._feasibility import first_unservable

        res = first_unservable(self)
        if res is not None:
            t, j, missing = res
            fix = (
                "raise capacity, allow more (datacenter, model) routes for it, or lower its "
                "demand" + self._slo_hint(j)
            )
            raise InfeasibleDemandError(
                f"demand cannot be served in {_fmt_time(self.time, t)}: region "
                f"{self.regions[j]!r} has {missing:.6g} requests that capacity and routing "
                f"cannot serve; {fix}",
                field="demand",
                coordinate={"time": t, "region": j},
                fix=fix,
            )

    def _slo_hint(self, j: int) -> str:
        if self.rtt_slo_ms is None:
            return ""
        cut = int((self.allowed_declared[:, j] & ~np.asarray(self.allowed)[:, j]).sum())
        return (
            (
                f" (its rtt_slo_ms of {self.rtt_slo_ms[j]:g} ms removes {cut} of its "
                "routes; raising it allows them again)"
            )
            if cut
            else ""
        )


class SolveStatus(StrEnum):
    """Status of the solve behind a dispatch (compares equal to its string value).

    * ``optimal``: certified: a valid lower bound proves the relative gap <= the tolerance;
    * ``feasible``: a feasible dispatch whose optimality is not proven to the tolerance:
      an exact solver stopped with a certified gap above it, or a heuristic / online
      policy (no bound);
    * ``inaccurate``: the solver claims a solution but no valid bound certifies it;
    * ``infeasible``: no dispatch satisfies the constraints;
    * ``failed``: the solver failed (no dispatch).
    """

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INACCURATE = "inaccurate"
    INFEASIBLE = "infeasible"
    FAILED = "failed"

    @classmethod
    def parse(cls, value: str) -> SolveStatus:
        """The status named ``value``; solver-specific names map to the nearest status."""
        v = str(value).lower()
        try:
            return cls(v)
        except ValueError:
            pass
        if "infeasible" in v:
            return cls.INFEASIBLE
        if "inaccurate" in v:
            return cls.INACCURATE
        return cls.FAILED


@dataclass(frozen=True)
class SolveInfo:
    """Solver status as data.

    Attributes
    ----------
    status : SolveStatus
        See :class:`SolveStatus`; strings are parsed (``"optimal_inaccurate"`` ->
        ``inaccurate``, ``"solver_error"`` -> ``failed``).
    solver : str
        Solver name (e.g. ``"HIGHS"``, ``"CLARABEL"``, ``"eqglb-structured"``).
    solve_time : float
        Wall time spent in the solver [s].
    objective : float or None
        Objective value of the problem the policy solved, recomputed where possible [unit
        of that problem, ``extra["objective_unit"]``, USD unless stated]; never read by
        the evaluator.
    dual_bound : float or None
        Valid lower bound on that problem's optimum [same unit], or None when there is
        none. Never a solver's self-reported dual objective unless it was verified.
    iterations : int or None
    extra : dict
        Any other optimality information (residuals, gap, ``problem``: what was solved).
    """

    status: SolveStatus | str
    solver: str
    solve_time: float = 0.0
    objective: float | None = None
    dual_bound: float | None = None
    iterations: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", SolveStatus.parse(self.status))

    @property
    def ok(self) -> bool:
        """True when the result is certified optimal."""
        return self.status == SolveStatus.OPTIMAL

    @property
    def exact(self) -> bool:
        """True when the policy is an exact solver (it reports a bound or claims optimality)."""
        return self.dual_bound is not None or self.status != SolveStatus.FEASIBLE

    @property
    def gap(self) -> float | None:
        """Certified relative gap (see :func:`eqglb.certify.relative_gap`) or None."""
        if "gap" in self.extra and self.extra["gap"] is not None:
            return float(self.extra["gap"])
        if self.objective is None or self.dual_bound is None:
            return None
        from eqglb.certify import relative_gap

        return relative_gap(self.objective, self.dual_bound)


@dataclass(frozen=True, eq=False)
class Dispatch:
    """A routing decision ``y[time, datacenter, region, model]`` [requests/slot].

    Attributes
    ----------
    y : array (time, datacenter, region, model)
        Requests of each region served by each model at each data centre [requests/slot].
    policy : str
        Name of the policy that produced it.
    info : SolveInfo or None
        Solver status of the run that produced it.
    """

    y: np.ndarray
    policy: str = "dispatch"
    info: SolveInfo | None = None

    def __post_init__(self) -> None:
        y = np.asarray(self.y, dtype=float)
        if y.ndim != 4:
            raise ScenarioError(f"dispatch y has {y.ndim} dimensions; expected 4 {DIMS}")
        object.__setattr__(self, "y", _ro(y))

    def to_frame(self, scenario: Scenario, *, nonzero: bool = True) -> pd.DataFrame:
        """Long table with columns time, datacenter, region, model, requests."""
        check_dispatch_shape(scenario, self)
        y = self.y
        idx = np.argwhere(y > 0) if nonzero else np.argwhere(np.ones_like(y, dtype=bool))
        return pd.DataFrame(
            {
                "time": scenario.time[idx[:, 0]],
                "datacenter": pd.Categorical.from_codes(idx[:, 1], scenario.datacenters),
                "region": pd.Categorical.from_codes(idx[:, 2], scenario.regions),
                "model": pd.Categorical.from_codes(idx[:, 3], scenario.models),
                "requests": y[tuple(idx.T)],
            }
        )

    def to_xarray(self, scenario: Scenario) -> Any:
        """``y`` as an ``xarray.DataArray`` with dims ``time, datacenter, region, model``
        [requests/slot], labelled by ``scenario``; attrs ``units``, ``policy``, solve status."""
        from eqglb.labels import dispatch_to_xarray

        return dispatch_to_xarray(self, scenario)

    @classmethod
    def from_xarray(cls, scenario: Scenario, da: Any, policy: str | None = None) -> Dispatch:
        """Inverse of :meth:`to_xarray`: aligned by label to ``scenario``, refused if not."""
        from eqglb.labels import dispatch_from_xarray

        return dispatch_from_xarray(da, scenario, policy)

    @classmethod
    def from_frame(
        cls,
        scenario: Scenario,
        frame: pd.DataFrame,
        policy: str = "dispatch",
        source: str = "dispatch table",
    ) -> Dispatch:
        """Inverse of :meth:`to_frame`; unknown names raise ScenarioError naming them."""
        need = ["time", "datacenter", "region", "model", "requests"]
        miss = [c for c in need if c not in frame.columns]
        if miss:
            raise ScenarioError(f"{source}: missing column(s) {miss}; expected {need}")
        y = np.zeros(scenario.shape)
        t_idx = scenario.time.get_indexer(
            pd.DatetimeIndex(frame["time"]).tz_convert("UTC")
            if pd.DatetimeIndex(frame["time"]).tz is not None
            else pd.DatetimeIndex(frame["time"]).tz_localize("UTC")
        )
        if (t_idx < 0).any():
            row = int(np.flatnonzero(t_idx < 0)[0])
            raise ScenarioError(
                f"{source}: row {row} has time {frame['time'].iloc[row]} "
                "outside the scenario's time index"
            )
        idx = [t_idx]
        for dim in ("datacenter", "region", "model"):
            names = getattr(scenario, dim + "s")
            codes = pd.Index(names).get_indexer(frame[dim].astype(str))
            if (codes < 0).any():
                row = int(np.flatnonzero(codes < 0)[0])
                raise ScenarioError(
                    f"{source}: row {row} has unknown {dim} "
                    f"{frame[dim].iloc[row]!r}; known: {list(names)}"
                )
            idx.append(np.asarray(codes))
        np.add.at(y, tuple(idx), frame["requests"].to_numpy(float))
        return cls(y=y, policy=policy)


def check_dispatch_shape(scenario: Scenario, dispatch: Dispatch) -> None:
    if dispatch.y.shape != scenario.shape:
        raise ScenarioError(
            f"dispatch {dispatch.policy!r} has shape {dispatch.y.shape}; the scenario "
            f"{scenario.name!r} has (time, datacenter, region, model) = {scenario.shape}"
        )


def scenario_fingerprint(sc: Scenario) -> str:
    """SHA-256 of a scenario's names, times and numbers (not its name or description).

    Two scenarios with the same fingerprint have the same optimisation problem, so a
    stored result keyed by it is valid for both.
    """
    h = hashlib.sha256()

    def add(label: str, value: Any) -> None:
        h.update(label.encode())
        if isinstance(value, np.ndarray):
            a = np.ascontiguousarray(value)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        else:
            h.update(json.dumps(value).encode())

    add("names", [list(sc.datacenters), list(sc.regions), list(sc.models)])
    add("time", np.asarray(sc.time.asi8))
    add("mode", sc.capacity_mode)
    for name in (
        "demand",
        "price",
        "carbon_intensity",
        "wue",
        "ewif",
        "pue",
        "energy_per_request",
        "capacity_per_request",
        "capacity",
        "quality_loss",
        "allowed",
        "latency",
    ):
        value = getattr(sc, name)
        add(name, None if value is None else np.asarray(value))
    add("home", None if sc.home is None else list(sc.home))
    if np.any(sc.health_cost):  # absent (all 0) keeps the fingerprints of older scenarios
        add("health_cost", np.asarray(sc.health_cost))
    return h.hexdigest()
