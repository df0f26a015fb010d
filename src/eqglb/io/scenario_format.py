"""The eqglb scenario folder format: ``scenario.toml`` plus CSV or Parquet time series.

A scenario folder holds one ``scenario.toml`` (names, constants, units, file references)
and wide tables for the time series (a ``time`` column plus one column per data centre or
region). The full specification, with a worked example, is ``docs/scenario-format.md``;
``examples/scenario_small/`` is a complete folder.

The time series are the signals of :data:`eqglb.fields.SIGNALS` (the one schema of
scenario fields): ``demand``, ``price``, ``carbon_intensity``, ``wue``, ``ewif``, the
optional ``health_cost``, and ``pue``/``capacity`` (which may be constants in
``[[datacenter]]`` instead). ``scenario.toml`` is parsed by the pydantic models
:class:`ScenarioSpec` and its parts.

:func:`read_scenario` turns a folder into a validated :class:`eqglb.scenario.Scenario`,
converting every declared unit into the canonical unit of the model (USD/kWh, kg CO2/kWh,
L/kWh, kWh/request, requests/slot; see :mod:`eqglb.units`). :func:`write_scenario` writes
a Scenario back in canonical units; ``read_scenario(write_scenario(sc, d))`` gives back
equal arrays.

Every problem raises :class:`ScenarioFormatError` (a :class:`~eqglb.scenario.ScenarioError`)
whose attributes say where, as data: ``file``, ``line`` (1-based, the header is line 1) or
Parquet row, ``column``, ``field``, ``coordinate`` and ``fix``; the message says the same
in words. Values that parse but are invalid (NaN, negative, infeasible demand) are judged
by the Scenario constructor, whose :class:`~eqglb.scenario.ScenarioError` names the field
and coordinate as data; they are then located in the file and line they came from.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import tomli_w
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, create_model
from pydantic import Field as Spec
from pydantic_core import PydanticCustomError

from eqglb import units as _units
from eqglb.fields import FIELDS, SIGNALS
from eqglb.io._common import MAX_MAGNITUDE, read_bytes_limited
from eqglb.io._tables import (
    MAX_TABLE_BYTES,
    MAX_TABLE_ROWS,
    SCENARIO_FILE,
    WILDCARD,
    ScenarioFormatError,
    Table,
    check_reference_time,
    check_same_time,
    layout,
    names_column,
    numbers,
    read_table,
    suggest,
    times,
)
from eqglb.scenario import InfeasibleDemandError, Scenario, ScenarioError

__all__ = [
    "FORMAT_VERSION",
    "MAX_MAGNITUDE",
    "MAX_TABLE_BYTES",
    "MAX_TABLE_ROWS",
    "MAX_TOML_DEPTH",
    "SCENARIO_FILE",
    "UNITS",
    "ScenarioFormatError",
    "ScenarioSpec",
    "convert_unit",
    "read_scenario",
    "write_scenario",
]

#: Version of the folder format this module reads and writes.
FORMAT_VERSION = 1
#: Deepest nesting of arrays and tables accepted in scenario.toml [levels].
MAX_TOML_DEPTH = 32

#: Signals that may instead be one constant per datacenter in ``[[datacenter]]``.
_CONSTANT_IN_TOML = ("pue", "capacity")
#: The time series of a folder: the slot signals of the field schema.
_REQUIRED_SERIES = tuple(
    n for n in SIGNALS if not FIELDS[n].optional and n not in _CONSTANT_IN_TOML
)
_KINDS = ("datacenter", "region", "model")

#: Accepted unit labels per quantity: label -> factor to the canonical unit (first entry),
#: per slot hour for rates (``requests/hour``: times the slot length [h]). The tables of
#: :mod:`eqglb.units` without per-token energies (a folder has no tokens per request).
#: Labels are matched ignoring case, spaces and a "CO2"/"CO2e"/"CO2eq" tag.
UNITS: dict[str, dict[str, float]] = {
    q: {lab: f for lab, f in table.items() if not lab.endswith("/token")}
    for q, table in _units.UNITS.items()
    if q not in ("capacity_per_request", "quality_loss")
}


# ---------------------------------------------------------------------------- units
def convert_unit(
    quantity: str, label: str, *, where: str = "", slot_hours: float | None = None
) -> Callable[[Any], Any]:
    """Converter from values in unit ``label`` to the canonical unit of ``quantity``.

    Parameters
    ----------
    quantity : str
        A key of :data:`UNITS` (``"price"``, ``"carbon_intensity"``, ``"capacity_shared"``).
    label : str
        Unit label as written by the user, e.g. ``"USD/MWh"`` or ``"g CO2/kWh"``.
    where : str
        Prefix of the error message (e.g. ``"[timeseries.price] "``).
    slot_hours : float, optional
        Slot length [h], for rates such as ``requests/hour``.

    Returns
    -------
    callable
        ``f(values) -> values * multiplier / divisor`` in the canonical unit (the first
        label of ``UNITS[quantity]``), e.g. ``convert_unit("price", "USD/MWh")(42.0)``
        is 0.042 [USD/kWh].

    Raises
    ------
    ScenarioFormatError
        If the label is unknown; the message lists the accepted labels.
    """
    table = UNITS[quantity]
    want = _units._norm(label) if isinstance(label, str) else None
    hit = next((lab for lab in table if _units._norm(lab) == want), None)
    if hit is None:
        name = "capacity" if quantity.startswith("capacity_") else quantity
        raise ScenarioFormatError(
            f"{where}unit {label!r} is not an accepted unit of {name}",
            fix=f"use one of {list(table)} (values are converted to {next(iter(table))})",
        )
    return lambda v: _units.convert(quantity, v, hit, slot_hours=slot_hours)


# ---------------------------------------------------------------------------- scenario.toml
_KEY = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"


def _split_key(dotted: str) -> tuple[str, ...]:
    return tuple(
        k.strip()[1:-1] if k.strip()[:1] in "\"'" else k.strip() for k in re.findall(_KEY, dotted)
    )


def _depth(text: str) -> int:
    """Bracket balance of a line of TOML outside strings and comments (best effort)."""
    text = re.sub(r"\"(?:[^\"\\]|\\.)*\"|'[^']*'", "", text).split("#", 1)[0]
    return text.count("[") + text.count("{") - text.count("]") - text.count("}")


def _toml_lines(text: str) -> dict[tuple[str | int, ...], int]:
    """Where each table and key of ``text`` is (1-based lines), keyed like a pydantic
    error location: ``("datacenter", 1, "pue")``, ``("timeseries", "price")``. Best
    effort (used only to name lines in messages)."""
    out: dict[tuple[str | int, ...], int] = {}
    path: tuple[str | int, ...] = ()
    counts: dict[tuple[str, ...], int] = {}
    multi: str | None = None  # inside a multi-line string opened by this delimiter
    depth = 0  # inside a multi-line array or inline table
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if multi is not None:
            if line.count(multi) % 2:
                multi = None
            continue
        if depth > 0:
            depth += _depth(line)
            continue
        if not line or line.startswith("#"):
            continue
        head = re.match(rf"^\[\[\s*({_DOTTED})\s*\]\]", line) or re.match(
            rf"^\[\s*({_DOTTED})\s*\]", line
        )
        if head:
            key = _split_key(head.group(1))
            if line.startswith("[["):
                counts[key] = counts.get(key, -1) + 1
                path = (*key, counts[key])
            elif key[:1] in counts:  # [a.b] inside the last [[a]]
                path = (key[0], counts[key[:1]], *key[1:])
            else:
                path = key
            for k in range(1, len(path) + 1):
                out.setdefault(path[:k], n)
            continue
        kv = re.match(rf"^({_DOTTED})\s*=(.*)$", line)
        if kv:
            full: tuple[str | int, ...] = (*path, *_split_key(kv.group(1)))
            for k in range(len(path) + 1, len(full) + 1):
                out.setdefault(full[:k], n)
            rest = kv.group(2)
            for delim in ('"""', "'''"):
                if rest.count(delim) % 2:
                    multi = delim
            if multi is None:
                depth = max(_depth(rest), 0)
    return out


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("number", "write a number (e.g. 1.2)")
    try:
        v = float(value)
    except OverflowError:  # an integer beyond float range
        v = math.inf
    if math.isfinite(v) and abs(v) > MAX_MAGNITUDE or math.isinf(v) and isinstance(value, int):
        raise PydanticCustomError("magnitude", "beyond the supported magnitude")
    return v


def _number_or_table(value: Any) -> float | dict[str, float]:
    if not isinstance(value, dict):
        return _number(value)
    out = {}
    for k, v in value.items():
        try:
            out[str(k)] = _number(v)
        except PydanticCustomError as exc:
            raise PydanticCustomError(exc.type, "{key}", {"key": str(k), "value": v}) from None
    return out


def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "write a quoted string")
    if not value.strip():
        raise PydanticCustomError("empty_name", "empty name")
    if value == WILDCARD:
        raise PydanticCustomError("reserved_name", "reserved name")
    return value


Number = Annotated[float, BeforeValidator(_number)]
NumberOrTable = Annotated[float | dict[str, float], BeforeValidator(_number_or_table)]
Name = Annotated[str, BeforeValidator(_name)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeriesSpec(_Spec):
    """``[timeseries.<signal>]``: a wide table and the unit of its values."""

    file: str = Spec(description="the table, relative to the folder")
    unit: str | None = Spec(None, description="unit of the values (see docs/scenario-format.md)")


class DatacenterSpec(_Spec):
    """One ``[[datacenter]]``."""

    name: Name
    pue: Number | None = Spec(None, description="power usage effectiveness [-]")
    capacity: NumberOrTable | None = Spec(
        None, description="units/slot (shared) or a table model -> requests/slot (per_model)"
    )
    lat: Number | None = None
    lon: Number | None = None


class RegionSpec(_Spec):
    """One ``[[region]]``."""

    name: Name
    home: str | None = Spec(None, description="nearest datacenter")
    lat: Number | None = None
    lon: Number | None = None
    rtt_slo_ms: Number | None = Spec(None, description="hard maximum round-trip time [ms]")
    rtt_budget_ms: Number | None = Spec(None, description="mean-RTT budget per slot [ms]")


class ModelSpec(_Spec):
    """One ``[[model]]``."""

    name: Name
    energy_per_request: NumberOrTable = Spec(
        description="IT energy per request, a number or a table per datacenter"
    )
    energy_unit: str = Spec(description='unit of energy_per_request, e.g. "Wh" or "kWh"')
    capacity_per_request: Number | None = Spec(
        None, description="capacity units one request takes [units/request]"
    )
    quality_loss: Number = Spec(
        description="normalised quality loss in [0, 1], 0 for the best model"
    )


#: ``[timeseries]``: one optional or required :class:`SeriesSpec` per signal of the schema.
TimeseriesSpec: type[_Spec] = create_model(  # type: ignore[call-overload]
    "TimeseriesSpec",
    __base__=_Spec,
    **{
        n: (SeriesSpec, ...) if n in _REQUIRED_SERIES else (SeriesSpec | None, None)
        for n in SIGNALS
    },
)


class RoutingSpec(_Spec):
    """``[routing]``: the table of allowed (datacenter, region, model) routes."""

    file: str


class LatencySpec(_Spec):
    """``[latency]``: the (datacenter, region) latency table."""

    file: str
    unit: str = "ms"


class ScenarioSpec(_Spec):
    """The whole ``scenario.toml`` (docs/scenario-format.md)."""

    format_version: Literal[1] = 1
    name: str | None = None
    description: str = ""
    capacity_mode: Literal["shared", "per_model"] = "shared"
    timeseries: TimeseriesSpec  # type: ignore[valid-type]
    routing: RoutingSpec | None = None
    latency: LatencySpec | None = None
    datacenter: list[DatacenterSpec] = Spec(min_length=1)
    region: list[RegionSpec] = Spec(min_length=1)
    model: list[ModelSpec] = Spec(min_length=1)
    attrs: dict[str, Any] = Spec(default_factory=dict)


_SPECS: dict[str, type[BaseModel]] = {
    "datacenter": DatacenterSpec,
    "region": RegionSpec,
    "model": ModelSpec,
}


class _Toml:
    """scenario.toml: its path as shown, its raw document, where each key is, and how
    the tables it names are read."""

    def __init__(
        self,
        text: str,
        doc: dict[str, Any],
        label: str,
        *,
        allow_outside: bool = False,
        max_bytes: int = MAX_TABLE_BYTES,
        max_rows: int = MAX_TABLE_ROWS,
    ) -> None:
        self.label, self.doc = label, doc
        self.where = _toml_lines(text)
        self.allow_outside, self.max_bytes, self.max_rows = allow_outside, max_bytes, max_rows

    def line(self, *loc: str | int) -> int | None:
        """Line of ``loc`` or of the nearest enclosing table or key that has one."""
        for k in range(len(loc), 0, -1):
            if loc[:k] in self.where:
                return self.where[loc[:k]]
        return None

    def error(self, problem: str, fix: str | None, *loc: str | int) -> ScenarioFormatError:
        return ScenarioFormatError(
            problem,
            fix=fix,
            file=self.label,
            line=self.line(*loc),
            field=".".join(str(x) for x in loc) or None,
        )

    def what(self, loc: Sequence[str | int]) -> str:
        """How messages call the value at ``loc``: ``pue of datacenter 'us-oregon'``."""
        if loc and loc[0] in _KINDS and len(loc) >= 2 and isinstance(loc[1], int):
            kind, pos = str(loc[0]), loc[1]
            try:
                name = self.doc[kind][pos]["name"]
            except (KeyError, IndexError, TypeError):
                name = None
            owner = f"{kind} {name!r}" if isinstance(name, str) else f"[[{kind}]] number {pos + 1}"
            if len(loc) == 2:
                return owner
            if loc[2] == "name":
                return f"{kind} name"
            return f"{loc[2]} of {owner}"
        if loc and loc[0] == "timeseries" and len(loc) >= 2:
            return f"[timeseries.{loc[1]}]" + (f" {loc[2]}" if len(loc) > 2 else "")
        if loc and loc[0] in ("routing", "latency"):
            return f"[{loc[0]}]" + (f" {loc[1]}" if len(loc) > 1 else "")
        return ".".join(str(x) for x in loc)

    def invalid(self, exc: ValidationError) -> ScenarioFormatError:
        """The first problem pydantic found, as a located error with a fix."""
        # an unknown key first: a typo in a key explains the key found missing
        err = min(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
        loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and "[" in x))
        kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
        what = self.what(loc)
        problem, fix = self._explain(kind, loc, what, value, ctx)
        return self.error(problem, fix, *loc)

    def _explain(
        self, kind: str, loc: tuple[str | int, ...], what: str, value: Any, ctx: dict[str, Any]
    ) -> tuple[str, str | None]:
        key = loc[-1] if loc else ""
        parent = loc[:-1]
        if kind == "extra_forbidden":
            if not parent:
                known = list(ScenarioSpec.model_fields)
                return f"unknown top-level key {key!r}{suggest(str(key), known)}", (
                    f"known keys: {known}"
                )
            if parent == ("timeseries",):
                return f"unknown time series [timeseries.{key}]{suggest(str(key), SIGNALS)}", (
                    f"known: {list(SIGNALS)}"
                )
            if len(parent) == 2 and parent[0] in _SPECS:
                known = list(_SPECS[str(parent[0])].model_fields)
                return (
                    f"unknown key {key!r} in [[{parent[0]}]] number {int(parent[1]) + 1}"
                    f"{suggest(str(key), known)}",
                    f"keys of [[{parent[0]}]] are {known}",
                )
            keys = {"routing": ["file"]}.get(str(parent[0]), ["file", "unit"])
            return f"unknown key {key!r} in {self.what(parent)}{suggest(str(key), keys)}", (
                f"keys are {keys}"
            )
        if kind == "missing":
            if loc in (("datacenter",), ("region",), ("model",)):
                return f"no [[{key}]] table", f"add one [[{key}]] table with a name per {key}"
            if loc == ("timeseries",):
                return "no [timeseries.*] tables", (
                    "add "
                    + ", ".join(f"[timeseries.{n}]" for n in _REQUIRED_SERIES)
                    + ", each with file and unit"
                )
            if parent == ("timeseries",):
                return f"[timeseries.{key}] is missing", (
                    f'add [timeseries.{key}] with file = "{key}.csv" and unit = '
                    f'"{next(iter(UNITS[str(key)]))}"'
                )
            if key == "name" and len(parent) == 2:
                return (
                    f"[[{parent[0]}]] number {int(parent[1]) + 1} has no name",
                    'add name = "..."',
                )
            if key == "file":
                return f"{self.what(parent)} has no file", f'add file = "{parent[-1]}.csv"'
            help_ = ""
            if len(parent) == 2 and parent[0] in _SPECS:
                desc = _SPECS[str(parent[0])].model_fields[str(key)].description
                help_ = f" ({desc})" if desc else ""
            return f"{self.what(parent)} has no {key}", f"add {key} = ...{help_}"
        if "key" in ctx:  # a number in a table such as energy_per_request = { dc = ... }
            return self._explain(kind, loc, f"{what} at {ctx['key']!r}", ctx.get("value"), {})
        if kind == "number":
            return f"{what} is {value!r}", "write a number (e.g. 1.2)"
        if kind == "magnitude":
            return (
                f"{what} is {value!r}, beyond the supported magnitude {MAX_MAGNITUDE:g} "
                "(it would overflow the cost model)",
                "check the value and its unit",
            )
        if kind == "string_type":
            return f"{what} is {value!r}", "write a quoted string"
        if kind == "empty_name":
            return f"[[{loc[0]}]] number {int(loc[1]) + 1} has an empty name", "give it a name"
        if kind == "reserved_name":
            return (
                f"{loc[0]} name '*' is reserved (it means 'all' in the routing table)",
                "choose another name",
            )
        if kind == "literal_error" and loc == ("capacity_mode",):
            return f"capacity_mode is {value!r}", (
                'use "shared" (one pool per datacenter, [units/slot]) or "per_model" '
                "(one pool per datacenter and model, [requests/slot])"
            )
        if kind == "literal_error" and loc == ("format_version",):
            return f"format_version is {value!r}", (
                f"this eqglb reads format_version = {FORMAT_VERSION}"
            )
        if kind == "list_type" and loc and loc[-1] in _KINDS:
            return f"[{key}] must be an array of tables", (
                f"write [[{key}]] (double brackets), one per {key}"
            )
        if kind == "too_short":
            return f"{key} must be one or more [[{key}]] tables", f"add a [[{key}]] table"
        if kind in ("model_type", "model_attributes_type", "dict_type"):
            if len(loc) == 2 and loc[0] == "timeseries":
                return f"[timeseries.{key}] must be a table with file and unit", (
                    f'write [timeseries.{key}] file = "{key}.csv" unit = "..."'
                )
            return f"{what} must be a table", f"write [{what}] with its keys"
        return f"{what}: {ctx.get('error', kind)} ({value!r})", "fix the value"


def _too_deep(doc: dict[str, Any]) -> str | None:
    """Dotted key of the first value nested deeper than :data:`MAX_TOML_DEPTH`, or None."""
    stack: list[tuple[Any, int, str]] = [(doc, 0, "")]
    while stack:
        value, depth, key = stack.pop()
        if depth > MAX_TOML_DEPTH:
            return key
        if isinstance(value, dict):
            stack.extend((v, depth + 1, f"{key}.{k}" if key else str(k)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, depth + 1, key) for v in value)
    return None


def _parse_toml(
    data: bytes, label: str, *, allow_outside: bool, max_bytes: int, max_rows: int
) -> tuple[_Toml, ScenarioSpec]:
    """scenario.toml as a validated :class:`ScenarioSpec` (and its locations)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScenarioFormatError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start})",
            fix="save it as UTF-8",
            file=label,
        ) from None
    try:
        doc = tomllib.loads(text)
    except RecursionError:
        raise ScenarioFormatError(
            f"arrays or tables are nested too deeply to read (more than {MAX_TOML_DEPTH} levels)",
            fix="flatten them",
            file=label,
        ) from None
    except tomllib.TOMLDecodeError as exc:  # tomllib (3.11) gives its position in words
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        end = "(at end of document)" in msg
        what = re.sub(r"\s*\((at line \d+, column \d+|at end of document)\)", "", msg)
        raise ScenarioFormatError(
            f"TOML syntax error: {what}",
            fix="fix the syntax (strings need quotes, each key once per table, "
            "[[datacenter]] tables for lists)",
            file=label,
            line=int(m.group(1)) if m else (len(text.splitlines()) if end else None),
            column=int(m.group(2)) if m else None,
        ) from None
    tm = _Toml(
        text, doc, label, allow_outside=allow_outside, max_bytes=max_bytes, max_rows=max_rows
    )
    deep = _too_deep(doc)
    if deep is not None:
        raise tm.error(
            f"value {deep!r} is nested more than {MAX_TOML_DEPTH} levels deep",
            "flatten it",
            *deep.split(".")[:2],
        )
    try:
        spec = ScenarioSpec.model_validate(doc)
    except ValidationError as exc:
        raise tm.invalid(exc) from None
    for kind in _KINDS:
        seen: dict[str, int] = {}
        for pos, ent in enumerate(getattr(spec, kind)):
            if ent.name in seen:
                raise tm.error(
                    f"duplicate {kind} name {ent.name!r} (first defined at line "
                    f"{tm.line(kind, seen[ent.name])})",
                    f"{kind} names must be unique: rename or remove one",
                    kind,
                    pos,
                )
            seen[ent.name] = pos
    return tm, spec


# ---------------------------------------------------------------------------- reading
@dataclass
class _Series:
    table: Table
    pos: dict[str, int]
    values: dict[str, np.ndarray]  # name -> (T,) or (T, K) in canonical units


def _open(folder: Path, display: Path, tm: _Toml, file: str, *loc: str) -> Table:
    """The table ``file`` named at ``loc`` of scenario.toml (inside the folder)."""
    what = tm.what(loc)
    if not tm.allow_outside:
        outside = _outside(folder, file)
        if outside:
            raise tm.error(
                f"{what}: file {file!r} {outside}, outside the scenario folder",
                "keep the tables in the folder (copy the file in and name it relative to "
                "the folder), or pass allow_outside=True to read_scenario to read files "
                "elsewhere",
                *loc,
                "file",
            )
    return read_table(
        folder / file,
        str(display / file),
        lambda m: tm.error(f"{what}: {m}", None, *loc, "file"),
        max_bytes=tm.max_bytes,
        max_rows=tm.max_rows,
        field=what,
    )


def _outside(folder: Path, file: str) -> str:
    """Why ``file`` (as named in scenario.toml) lies outside ``folder``, or ''."""
    if Path(file).is_absolute() or re.match(r"^[A-Za-z]:|^[\\/]", file):
        return "is an absolute path"
    root = folder.resolve()
    lexical = Path(os.path.normpath(root / file))
    if not lexical.is_relative_to(root):
        return "climbs out with '..'"
    real = (folder / file).resolve()
    if not real.is_relative_to(root):
        return f"is (or passes through) a symbolic link to {str(real)!r}"
    return ""


def read_scenario(
    path: str | Path,
    *,
    validate_feasibility: bool = True,
    allow_outside: bool = False,
    max_rows: int = MAX_TABLE_ROWS,
    max_bytes: int = MAX_TABLE_BYTES,
) -> Scenario:
    """Read a scenario folder (``scenario.toml`` + CSV/Parquet tables) into a Scenario.

    Parameters
    ----------
    path : str or Path
        The scenario folder, or its ``scenario.toml`` file.
    validate_feasibility : bool
        Passed to :class:`~eqglb.scenario.Scenario`: check that every slot's demand can be
        served within capacity and routing.
    allow_outside : bool
        Whether scenario.toml may name tables outside the folder (absolute paths, ``..``,
        or symbolic links that lead out). Default False: such a table is refused, so a
        scenario folder cannot make eqglb read (and quote in error messages) an
        arbitrary file of the machine.
    max_rows : int
        Largest number of rows of one table [rows] (default :data:`MAX_TABLE_ROWS`).
    max_bytes : int
        Largest size of one table or of scenario.toml, once decompressed [bytes]
        (default :data:`MAX_TABLE_BYTES`). Compressed tables (``.csv.gz``, ``.bz2``,
        ``.xz``, ``.zip``, ``.zst``) are decompressed step by step and refused as soon as
        a cap is passed, so a small "decompression bomb" cannot exhaust memory.

    Returns
    -------
    Scenario
        Validated, in canonical units: demand [requests/slot], price and health_cost
        [USD/kWh], carbon_intensity [kg CO2/kWh], wue and ewif [L/kWh],
        energy_per_request [kWh/request], capacity [units/slot] (shared) or
        [requests/slot] (per_model), latency [ms].

    Raises
    ------
    ScenarioFormatError
        Anything wrong: a file missing, malformed, corrupt or truncated, over a cap,
        outside the folder, a number beyond :data:`MAX_MAGNITUDE`, a time outside
        1677-09-22 .. 2262-04-10, or a value the Scenario refuses (NaN, negative,
        infeasible demand). Its attributes name the file, line/row, column, field and
        coordinate; the message says them and the fix.
    """
    display = Path(path)
    if display.suffix.lower() == ".toml":
        toml_display, display = display, display.parent
    else:
        toml_display = display / SCENARIO_FILE
    folder = Path(display)
    if not folder.is_dir():
        raise ScenarioFormatError(
            f"no such scenario folder {str(display)!r}",
            fix=f"give the folder that holds {SCENARIO_FILE}",
        )
    label = str(toml_display)
    if not Path(toml_display).is_file():
        raise ScenarioFormatError(
            "file does not exist",
            fix=f"a scenario folder needs a {SCENARIO_FILE} (see docs/scenario-format.md)",
            file=label,
        )
    data = read_bytes_limited(
        Path(toml_display),
        lambda problem, fix: ScenarioFormatError(problem, fix=fix, file=label),
        max_bytes=max_bytes,
        max_lines=None,
        what=SCENARIO_FILE,
    )
    tm, spec = _parse_toml(
        data, label, allow_outside=allow_outside, max_bytes=max_bytes, max_rows=max_rows
    )
    return _Reader(tm, spec, folder, display).scenario(validate_feasibility)


@dataclass
class _Reader:
    """Reads the tables a :class:`ScenarioSpec` names, and remembers where every value
    came from to locate the Scenario's errors."""

    tm: _Toml
    spec: ScenarioSpec
    folder: Path
    display: Path
    series: dict[str, _Series] = field(default_factory=dict)
    cap_lines: dict[tuple[int, int], int] = field(default_factory=dict)
    routes: Table | None = None
    lat: Table | None = None
    lat_rows: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.D = [e.name for e in self.spec.datacenter]
        self.R = [e.name for e in self.spec.region]
        self.M = [e.name for e in self.spec.model]
        self.mode = self.spec.capacity_mode

    def _unit(self, key: str, quantity: str, unit: str | None, slot_hours: float | None) -> Any:
        if unit is None:
            if key not in _CONSTANT_IN_TOML:
                raise self.tm.error(
                    f"[timeseries.{key}] has no unit",
                    f'add unit = "{next(iter(UNITS[quantity]))}" (accepted: '
                    f"{list(UNITS[quantity])})",
                    "timeseries",
                    key,
                )
            unit = next(iter(UNITS[quantity]))
        try:
            return convert_unit(quantity, unit, where=f"[timeseries.{key}] ", slot_hours=slot_hours)
        except ScenarioFormatError as exc:
            raise self.tm.error(exc.problem, exc.fix, "timeseries", key, "unit") from None

    def _convert(self, key: str, factor: Any, values: np.ndarray) -> np.ndarray:
        try:
            return np.asarray(factor(values))
        except ScenarioError as exc:  # a rate without a slot length
            raise self.tm.error(str(exc), None, "timeseries", key, "unit") from None

    def wide(
        self, key: str, required: Sequence[str], ref: tuple[Table, pd.DatetimeIndex] | None
    ) -> tuple[_Series, pd.DatetimeIndex]:
        """The wide table of signal ``key``: time plus one column per region or datacenter."""
        spec: SeriesSpec = getattr(self.spec.timeseries, key)
        quantity = "capacity_shared" if key == "capacity" else key
        dim = FIELDS[key].dims[1]
        names = self.R if dim == "region" else self.D
        factor = self._unit(key, quantity, spec.unit, self._slot_hours(ref))
        tb = _open(self.folder, self.display, self.tm, spec.file, "timeseries", key)
        alt = (
            f" or give {key} = ... in the [[datacenter]] table of {{name!r}}"
            if key in _CONSTANT_IN_TOML
            else ""
        )
        pos = layout(tb, ["time"], names, dim, required, alt)
        t = times(tb, pos["time"])
        if ref is None:
            check_reference_time(tb, t, pos["time"])
            factor = self._unit(key, quantity, spec.unit, self._slot_hours((tb, t)))
        else:
            check_same_time(tb, t, pos["time"], *ref)
        vals = {
            n: self._convert(key, factor, numbers(tb, c)) for n, c in pos.items() if n != "time"
        }
        return _Series(tb, pos, vals), t

    @staticmethod
    def _slot_hours(ref: tuple[Table, pd.DatetimeIndex] | None) -> float | None:
        if ref is None or len(ref[1]) < 2:
            return None
        return float((ref[1][1] - ref[1][0]) / pd.Timedelta(hours=1))

    def constants(self, key: str, ref: tuple[Table, pd.DatetimeIndex]) -> np.ndarray:
        """``pue`` or ``capacity`` (time, datacenter[, model]): each datacenter's value from
        its ``[[datacenter]]`` key or from its column of ``[timeseries.<key>]``."""
        T, N, K = len(ref[1]), len(self.D), len(self.M)
        per_model = key == "capacity" and self.mode == "per_model"
        out = np.empty((T, N, K) if per_model else (T, N))
        const = {
            i: getattr(e, key)
            for i, e in enumerate(self.spec.datacenter)
            if getattr(e, key) is not None
        }
        required = [n for i, n in enumerate(self.D) if i not in const]
        cols: dict[str, np.ndarray] = {}
        if getattr(self.spec.timeseries, key) is not None:
            if per_model:
                s = self._per_model_capacity(required, ref)
            else:
                s, _ = self.wide(key, required, ref)
            self.series[key], cols = s, s.values
            both = [n for i, n in enumerate(self.D) if i in const and n in cols]
            if both:
                i = self.D.index(both[0])
                raise ScenarioFormatError(
                    f"datacenter {both[0]!r} has a {key} column here and {key} = ... in "
                    f"{self.tm.label} (line {self.tm.line('datacenter', i, key)})",
                    fix=f"give each datacenter's {key} in one place only",
                    file=s.table.label,
                    line=1 if s.table.csv else None,
                    field=key,
                    coordinate={"datacenter": i},
                )
        for i, n in enumerate(self.D):
            if n in cols:
                out[:, i] = cols[n]
                continue
            if i not in const:
                hint = (
                    "pue = 1.2"
                    if key == "pue"
                    else "capacity = 1000.0 [units/slot]"
                    if not per_model
                    else "capacity = { "
                    + ", ".join(f"{_toml_key(m)} = 100.0" for m in self.M)
                    + " } [requests/slot]"
                )
                raise self.tm.error(
                    f"datacenter {n!r} has no {key}",
                    f"add {hint} to its [[datacenter]] table or a column to [timeseries.{key}]",
                    "datacenter",
                    i,
                )
            out[:, i] = self._constant(key, i, const[i], per_model)
        return out

    def _constant(self, key: str, i: int, c: Any, per_model: bool) -> Any:
        n, M = self.D[i], self.M
        if not per_model:
            if isinstance(c, dict):
                raise self.tm.error(
                    f'{key} of datacenter {n!r} is a table, but capacity_mode is "shared"',
                    'give one number [units/slot], or set capacity_mode = "per_model"',
                    "datacenter",
                    i,
                    key,
                )
            return c
        if not isinstance(c, dict):
            raise self.tm.error(
                f'capacity of datacenter {n!r} is {c!r}, but capacity_mode is "per_model"',
                "give a table of requests/slot per model, e.g. capacity = { "
                + ", ".join(f"{_toml_key(m)} = 100.0" for m in M)
                + " }",
                "datacenter",
                i,
                key,
            )
        return self._per_name(
            c,
            M,
            "model",
            f"capacity of datacenter {n!r}",
            "0.0 (not hosted) or its capacity [requests/slot]",
            "datacenter",
            i,
            key,
        )

    def _per_name(
        self,
        table: dict[str, float],
        known: list[str],
        dim: str,
        what: str,
        add: str,
        *loc: str | int,
    ) -> np.ndarray:
        """A TOML table name -> number with one entry per name of ``known``, in order."""
        for n in table:
            if n not in known:
                raise self.tm.error(
                    f"{what} names unknown {dim} {n!r}{suggest(n, known)}",
                    f"known {dim}s: {known}",
                    *loc,
                )
        for n in known:
            if n not in table:
                raise self.tm.error(
                    f"{what} has no value for {dim} {n!r}", f"add {_toml_key(n)} = {add}", *loc
                )
        return np.array([table[n] for n in known])

    def scenario(self, validate_feasibility: bool) -> Scenario:
        spec, tm, D, R, M = self.spec, self.tm, self.D, self.R, self.M
        demand_s, time = self.wide("demand", R, None)
        self.series["demand"] = demand_s
        ref = (demand_s.table, time)
        arrays: dict[str, Any] = {"demand": np.column_stack([demand_s.values[n] for n in R])}
        for key in SIGNALS:
            if key == "demand":
                continue
            if key in _CONSTANT_IN_TOML:
                arrays[key] = self.constants(key, ref)
            elif getattr(spec.timeseries, key) is not None:
                self.series[key], _ = self.wide(key, D, ref)
                arrays[key] = np.column_stack([self.series[key].values[n] for n in D])

        # models
        N, K = len(D), len(M)
        eps, r, loss = np.empty((N, K)), np.empty(K), np.empty(K)
        for k, e in enumerate(spec.model):
            if e.capacity_per_request is None and self.mode == "shared":
                raise tm.error(
                    f"model {e.name!r} has no capacity_per_request",
                    "add capacity_per_request = ... (capacity units one request takes "
                    "[units/request])",
                    "model",
                    k,
                )
            try:
                factor = convert_unit(
                    "energy_per_request", e.energy_unit, where=f"model {e.name!r} energy_unit: "
                )
            except ScenarioFormatError as exc:
                raise tm.error(exc.problem, exc.fix, "model", k, "energy_unit") from None
            ev: Any = e.energy_per_request
            if isinstance(ev, dict):
                ev = self._per_name(
                    ev,
                    D,
                    "datacenter",
                    f"energy_per_request of model {e.name!r}",
                    f"... [{e.energy_unit}]",
                    "model",
                    k,
                    "energy_per_request",
                )
            eps[:, k] = factor(ev)
            r[k] = 1.0 if e.capacity_per_request is None else e.capacity_per_request
            loss[k] = e.quality_loss

        # regions: home, latency SLOs [ms] (eqglb.slo; a region without the key has no limit)
        home: tuple[str, ...] | None = None
        if any(g.home is not None for g in spec.region):
            for j, g in enumerate(spec.region):
                if g.home is None:
                    raise tm.error(
                        f"region {g.name!r} has no home, but other regions do",
                        "give every region a home datacenter or none",
                        "region",
                        j,
                    )
                if g.home not in D:
                    raise tm.error(
                        f"home of region {g.name!r} is {g.home!r}, not a datacenter"
                        f"{suggest(g.home, D)}",
                        f"known datacenters: {D}",
                        "region",
                        j,
                        "home",
                    )
            home = tuple(str(g.home) for g in spec.region)
        limits: dict[str, Any] = {
            key: None
            if all(getattr(e, key) is None for e in spec.region)
            else np.array(
                [np.inf if getattr(e, key) is None else getattr(e, key) for e in spec.region]
            )
            for key in ("rtt_slo_ms", "rtt_budget_ms")
        }
        allowed = self._routing()
        latency = self._latency()

        attrs = dict(spec.attrs)
        coords = {
            kind: {
                e.name: {k: getattr(e, k) for k in ("lat", "lon") if getattr(e, k) is not None}
                for e in getattr(spec, kind)
                if e.lat is not None or e.lon is not None
            }
            for kind in ("datacenter", "region")
        }
        coords = {k: v for k, v in coords.items() if v}
        if coords:
            attrs["coordinates"] = coords
        try:
            return Scenario(
                datacenters=tuple(D),
                regions=tuple(R),
                models=tuple(M),
                time=time,
                energy_per_request=eps,
                capacity_per_request=r,
                quality_loss=loss,
                allowed=allowed,
                capacity_mode=self.mode,
                latency=latency,
                home=home,
                name=spec.name if spec.name is not None else self.folder.resolve().name,
                description=spec.description,
                attrs=attrs,
                validate_feasibility=validate_feasibility,
                **arrays,
                **limits,
            )
        except ScenarioFormatError:
            raise
        except ScenarioError as exc:
            raise self.locate(exc) from exc

    def _per_model_capacity(
        self, required: list[str], ref: tuple[Table, pd.DatetimeIndex]
    ) -> _Series:
        """The per-model capacity table: columns time, model, one per datacenter."""
        spec: SeriesSpec = self.spec.timeseries.capacity  # type: ignore[attr-defined]
        D, M = self.D, self.M
        factor = self._unit(
            "capacity", "capacity_per_model", spec.unit or "requests", self._slot_hours(ref)
        )
        tb = _open(self.folder, self.display, self.tm, spec.file, "timeseries", "capacity")
        pos = layout(
            tb,
            ["time", "model"],
            D,
            "datacenter",
            required,
            " or give capacity = {{ model = ... }} in the [[datacenter]] table of {name!r}",
        )
        t = times(tb, pos["time"])
        ref_tb, ref_t = ref
        ti = ref_t.get_indexer(t)
        if (ti < 0).any():
            row = int(np.flatnonzero(ti < 0)[0])
            raise tb.error(
                f"time {t[row]} is not a slot of {ref_tb.label}; use the same time "
                "stamps as the demand table",
                row=row,
                col=pos["time"],
            )
        mc = pos["model"]
        names = tb.cells[mc].astype(object).map(lambda v: "" if v is None else str(v).strip())
        ki = pd.Index(M).get_indexer(names)
        if (ki < 0).any():
            row = int(np.flatnonzero(ki < 0)[0])
            n = names.iloc[row]
            raise tb.error(
                f"model {n!r} is not a model of scenario.toml{suggest(n, M)}; known models: {M}",
                row=row,
                col=mc,
            )
        T, K = len(ref_t), len(M)
        where: dict[tuple[int, int], int] = {}
        for row, key in enumerate(zip(ti.tolist(), ki.tolist(), strict=True)):
            if key in where:
                raise tb.error(
                    f"time {ref_t[key[0]]} and model {M[key[1]]!r} appear twice "
                    f"(first on {tb.word} {tb.lines[where[key]]}); keep one row",
                    row=row,
                )
            where[key] = row
        if len(where) < T * K:
            miss = next((a, b) for a in range(T) for b in range(K) if (a, b) not in where)
            raise ScenarioFormatError(
                f"no row for time {ref_t[miss[0]]} and model {M[miss[1]]!r}",
                fix=f"the table needs one row per (time, model): {T} x {K} = {T * K} rows",
                file=tb.label,
            )
        order = np.array([[where[(a, b)] for b in range(K)] for a in range(T)])  # (T, K)
        vals = {
            n: self._convert("capacity", factor, numbers(tb, c))[order]
            for n, c in pos.items()
            if n not in ("time", "model")
        }
        self.cap_lines = {key: int(tb.lines[row]) for key, row in where.items()}
        return _Series(tb, pos, vals)

    def _routing(self) -> np.ndarray | None:
        if self.spec.routing is None:
            return None
        tb = _open(self.folder, self.display, self.tm, self.spec.routing.file, "routing")
        keys = ["datacenter", "region", "model"]
        pos: dict[str, int] = {}
        for c, h in enumerate(tb.columns):
            if h not in keys:
                raise tb.error(
                    f"unknown column {h!r}{suggest(h, keys)}; the routing table has "
                    "exactly the columns datacenter, region, model (one allowed route "
                    "per line)",
                    col=c,
                )
            if h in pos:
                raise tb.error(f"column name {h!r} appears twice in the header; keep one", col=c)
            pos[h] = c
        for k in keys:
            if k not in pos:
                raise ScenarioFormatError(
                    f"missing column {k!r}",
                    fix="the header must be datacenter,region,model",
                    file=tb.label,
                    line=1 if tb.csv else None,
                )
        idx = [
            names_column(tb, pos[dim], names, dim, True)
            for dim, names in zip(keys, (self.D, self.R, self.M), strict=True)
        ]
        allowed = np.zeros((len(self.D), len(self.R), len(self.M)), dtype=bool)
        for ia, ib, ic in zip(*idx, strict=True):
            allowed[np.ix_(ia, ib, ic)] = True
        self.routes = tb
        return allowed

    def _latency(self) -> np.ndarray | None:
        spec, D, R = self.spec.latency, self.D, self.R
        if spec is None:
            return None
        try:
            factor = convert_unit("latency", spec.unit, where="[latency] ")
        except ScenarioFormatError as exc:
            raise self.tm.error(exc.problem, exc.fix, "latency", "unit") from None
        tb = _open(self.folder, self.display, self.tm, spec.file, "latency")
        pos = layout(tb, ["datacenter"], R, "region", R)
        rows = names_column(tb, pos["datacenter"], D, "datacenter", False)
        seen: dict[int, int] = {}
        for row, a in enumerate(rows):
            i = int(a[0])
            if i in seen:
                raise tb.error(
                    f"datacenter {D[i]!r} appears twice (first on {tb.word} "
                    f"{tb.lines[seen[i]]}); keep one row",
                    row=row,
                    col=pos["datacenter"],
                )
            seen[i] = row
        for i, n in enumerate(D):
            if i not in seen:
                raise ScenarioFormatError(
                    f"no row for datacenter {n!r}", fix="add one row per datacenter", file=tb.label
                )
        order = np.array([seen[i] for i in range(len(D))])
        lat = np.column_stack([factor(numbers(tb, pos[n]))[order] for n in R])
        self.lat, self.lat_rows = tb, {i: int(tb.lines[row]) for i, row in seen.items()}
        return lat

    # ------------------------------------------------------------------ value errors
    def locate(self, exc: ScenarioError) -> ScenarioFormatError:
        """``exc`` (from the Scenario constructor) located at the file, line and column
        its value came from, read from its ``field`` and ``coordinate``."""
        var, c, msg = exc.field, exc.coordinate, str(exc)
        t, i, j, k = (c.get(d) for d in ("time", "datacenter", "region", "model"))

        def at(
            tb: Table | None, line: int | None = None, col: str | None = None, note: str = ""
        ) -> ScenarioFormatError:
            if tb is None:
                return at_toml()
            out = ScenarioFormatError(
                msg + note,
                file=tb.label,
                line=line,
                column=col,
                column_number=tb.columns.index(col) + 1 if col in tb.columns else None,
                line_word=tb.word,
                field=var,
                coordinate=c,
            )
            out.fix = exc.fix
            return out

        def at_toml(*loc: str | int) -> ScenarioFormatError:
            out = self.tm.error(msg, None, *loc) if loc else self.tm.error(msg, None)
            out.field, out.coordinate, out.fix = var, c, exc.fix
            return out

        def slot(tb: Table) -> int | None:
            return int(tb.lines[t]) if t is not None and t < len(tb.lines) else None

        dc = None if i is None else self.D[i]
        reg = None if j is None else self.R[j]
        if isinstance(exc, InfeasibleDemandError):
            dem = self.series["demand"].table
            cap = (
                self.series["capacity"].table.label if "capacity" in self.series else self.tm.label
            )
            routes = self.routes.label if self.routes is not None else "[routing] (all allowed)"
            return at(dem, slot(dem), reg, f" (capacity from {cap}, routes from {routes})")
        if var in ("time", "demand"):
            dem = self.series["demand"].table
            return at(dem, slot(dem), "time" if var == "time" else reg)
        if var in _CONSTANT_IN_TOML:
            if i is not None and getattr(self.spec.datacenter[i], var) is not None:
                return at_toml("datacenter", i, var)
            s = self.series.get(var)
            if s is None:
                return at_toml()
            if var == "capacity" and self.mode == "per_model" and t is not None and k is not None:
                return at(s.table, self.cap_lines.get((t, k)), dc)
            return at(s.table, slot(s.table), dc)
        if var in self.series:
            tb = self.series[var].table
            return at(tb, slot(tb), dc)
        if var in ("energy_per_request", "capacity_per_request", "quality_loss") and k is not None:
            return at_toml("model", k, var)
        if var == "latency":
            return at(self.lat, self.lat_rows.get(i) if i is not None else None, reg)
        if var in ("rtt_slo_ms", "rtt_budget_ms", "home") and j is not None:
            return at_toml("region", j, var)
        if var == "allowed" and self.routes is not None:
            return at(self.routes)
        return at_toml()


# ---------------------------------------------------------------------------- writing
def _toml_key(key: str) -> str:
    return tomli_w.dumps({key: 0}).rsplit(" = 0", 1)[0]


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return (
            "{ "
            + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
            + " }"
        )
    return tomli_w.dumps({"x": value}).split(" = ", 1)[1].rstrip("\n")


def _plain(value: Any) -> Any:
    """Convert attrs values to TOML-able Python objects; raise TypeError if impossible."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if value is None:
        raise TypeError("None")
    tomli_w.dumps({"x": value})  # raises TypeError for unsupported types
    return value


def _fmt_float(v: float) -> str:
    """Shortest text that reads back to the same float (integers without '.0')."""
    if math.isfinite(v) and v.is_integer() and abs(v) < 2**53:
        return str(int(v))
    return repr(v)


def _check_names(sc: Scenario) -> None:
    key_cols = {"datacenter": ("time", "model"), "region": ("time", "datacenter")}
    for dim in ("datacenter", "region", "model"):
        for n in getattr(sc, dim + "s"):
            if n != n.strip() or "\n" in n or "\r" in n:
                raise ScenarioFormatError(
                    f"{dim} name {n!r} has surrounding whitespace or a line break; the "
                    f"scenario format strips header cells: rename the {dim}"
                )
            if n == WILDCARD or n in key_cols.get(dim, ()):
                raise ScenarioFormatError(
                    f"{dim} name {n!r} clashes with a reserved column name or the routing "
                    f"wildcard ('time', 'model', 'datacenter', '*'); rename the {dim}"
                )


def _referenced_files(folder: Path) -> list[str]:
    """Names of the files a scenario.toml in ``folder`` refers to that lie directly in the
    folder (plain names, no path; best effort). The names are those of the folder's own
    entries: a symbolic link is named, never the file it points to."""
    try:
        text = (folder / SCENARIO_FILE).read_text(encoding="utf-8-sig")
        doc = tomllib.loads(text) if len(text) <= MAX_TABLE_BYTES else {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return []
    specs = (
        list((doc.get("timeseries") or {}).values())
        if isinstance(doc.get("timeseries"), dict)
        else []
    )
    specs += [doc.get("routing"), doc.get("latency")]
    out = []
    for s in specs:
        if isinstance(s, dict) and isinstance(s.get("file"), str):
            name = s["file"]
            if name in (".", "..", SCENARIO_FILE) or "/" in name or "\\" in name:
                continue
            entry = folder / name
            if entry.is_symlink() or entry.is_file():
                out.append(name)
    return out


def _replace_file(target: Path, write: Callable[[Path], object]) -> None:
    """Write a new file at ``target`` through a temporary file in the same folder, then
    rename it over ``target``: a symbolic link at ``target`` is replaced by the new file
    (never written through), and a failed write leaves the old file as it was."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if tmp.exists() or tmp.is_symlink():
            tmp.unlink()


def write_scenario(
    scenario: Scenario, path: str | Path, *, fmt: str = "csv", overwrite: bool = False
) -> Path:
    """Write a Scenario as a scenario folder (``scenario.toml`` + tables), canonical units.

    Parameters
    ----------
    scenario : Scenario
        The scenario to write.
    path : str or Path
        Target folder. It must not exist, be empty, or (with ``overwrite=True``) hold an
        earlier scenario folder: then only ``scenario.toml`` and the tables it names are
        replaced or removed; other files are left alone (a file of a name about to be
        written that the old ``scenario.toml`` does not name is refused, not replaced).
        Files are replaced, never written through: a symbolic link in the folder is
        replaced by a new file and what it pointed to is left untouched.
    fmt : {"csv", "parquet"}
        Table format. CSV cells hold the shortest text that reads back to the same float.
    overwrite : bool
        Allow replacing an existing scenario folder.

    Returns
    -------
    Path
        The folder written.

    Raises
    ------
    ScenarioFormatError
        Unknown ``fmt``, a non-empty folder that is not a scenario folder, an existing
        scenario without ``overwrite=True``, a file in the way that the old scenario does
        not name, or names the format cannot hold.
    """
    if fmt not in ("csv", "parquet"):
        raise ScenarioFormatError(f'fmt is {fmt!r}; use "csv" or "parquet"')
    sc = scenario
    _check_names(sc)
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ScenarioFormatError(f"{str(folder)!r} is a file; give a folder path")
    old: list[str] = []
    if folder.is_dir() and any(folder.iterdir()):
        if not (folder / SCENARIO_FILE).is_file():
            raise ScenarioFormatError(
                f"folder {str(folder)!r} is not empty and holds no {SCENARIO_FILE}; write "
                "into a new or empty folder so no unrelated file is overwritten"
            )
        if not overwrite:
            raise ScenarioFormatError(
                f"folder {str(folder)!r} already holds a scenario; pass overwrite=True to "
                "replace it, or choose a new folder"
            )
        old = _referenced_files(folder)
    ext = ".csv" if fmt == "csv" else ".parquet"
    T, N, J, K = sc.shape
    D, R, M = list(sc.datacenters), list(sc.regions), list(sc.models)
    pue = np.asarray(sc.pue)
    pue_var = [i for i in range(N) if not (pue[:, i] == pue[0, i]).all()]
    cap = np.asarray(sc.capacity)
    cap_var = [i for i in range(N) if not (cap[:, i] == cap[0, i]).all()]
    allowed = np.asarray(sc.allowed_declared)  # as given; rtt_slo_ms is written per region
    # each signal of the schema: a table (pue and capacity only for the datacenters whose
    # value varies; an optional signal such as health_cost only when it is not all 0)
    plain = [
        n
        for n in SIGNALS
        if n not in _CONSTANT_IN_TOML and (not FIELDS[n].optional or np.any(getattr(sc, n)))
    ]
    stems = plain + (["pue"] if pue_var else []) + (["capacity"] if cap_var else [])
    stems += (["routes"] if not allowed.all() else []) + (
        ["latency"] if sc.latency is not None else []
    )
    if folder.is_dir():  # nothing is written until every target is known to be free
        for name in [s + ext for s in stems]:
            entry = folder / name
            if (entry.exists() or entry.is_symlink()) and name not in old:
                raise ScenarioFormatError(
                    f"folder {str(folder)!r} holds {name!r}, which its {SCENARIO_FILE} does "
                    "not name: it is not part of the old scenario and would be replaced; "
                    "move it away or write into a new folder"
                )
            if entry.is_dir() and not entry.is_symlink():
                raise ScenarioFormatError(
                    f"{str(entry)!r} is a folder; remove it or write into a new folder"
                )
    folder.mkdir(parents=True, exist_ok=True)
    written: list[str] = []

    def emit(stem: str, frame: pd.DataFrame) -> str:
        file = stem + ext
        if fmt == "csv":
            text = frame.copy()
            for c in text.columns:
                if pd.api.types.is_float_dtype(text[c].dtype):
                    text[c] = [_fmt_float(v) for v in text[c].tolist()]
            _replace_file(
                folder / file,
                lambda p: text.to_csv(p, index=False, encoding="utf-8", lineterminator="\n"),
            )
        else:
            _replace_file(folder / file, lambda p: frame.to_parquet(p, index=False))
        written.append(file)
        return file

    def time_col() -> Any:
        if fmt == "csv":
            return [t.isoformat() for t in sc.time]
        return sc.time

    def wide(values: np.ndarray, names: list[str]) -> pd.DataFrame:
        cols: dict[str, Any] = {"time": time_col()}
        for c, n in enumerate(names):
            cols[n] = np.asarray(values[:, c], dtype=float)
        return pd.DataFrame(cols)

    series: dict[str, tuple[str, str]] = {}
    for key in plain:
        names = R if FIELDS[key].dims[1] == "region" else D
        frame = wide(np.asarray(getattr(sc, key)), names)
        series[key] = (emit(key, frame), _units.CANONICAL[key])
    if pue_var:
        series["pue"] = (emit("pue", wide(pue[:, pue_var], [D[i] for i in pue_var])), "-")
    if cap_var:
        if sc.capacity_mode == "shared":
            frame = wide(cap[:, cap_var], [D[i] for i in cap_var])
            series["capacity"] = (emit("capacity", frame), "units/slot")
        else:
            cols: dict[str, Any] = {
                "time": np.repeat(np.asarray(time_col(), dtype=object), K)
                if fmt == "csv"
                else sc.time.repeat(K),
                "model": np.tile(np.asarray(M, dtype=object), T),
            }
            for i in cap_var:
                cols[D[i]] = cap[:, i, :].reshape(-1).astype(float)
            series["capacity"] = (emit("capacity", pd.DataFrame(cols)), "requests/slot")
    routing_file = None
    if not allowed.all():
        rows = []
        for i in range(N):
            for j in range(J):
                if allowed[i, j].all():
                    rows.append((D[i], R[j], WILDCARD))
                else:
                    rows.extend((D[i], R[j], M[k]) for k in np.flatnonzero(allowed[i, j]))
        routing_file = emit(
            "routes", pd.DataFrame(rows, columns=["datacenter", "region", "model"], dtype=object)
        )
    latency_file = None
    if sc.latency is not None:
        lat = pd.DataFrame({"datacenter": np.asarray(D, dtype=object)})
        for j, n in enumerate(R):
            lat[n] = np.asarray(sc.latency[:, j], dtype=float)
        latency_file = emit("latency", lat)

    # scenario.toml
    kv = lambda k, v: f"{_toml_key(k)} = {_toml_value(v)}"  # noqa: E731
    out = [
        f"# eqglb scenario folder, format version {FORMAT_VERSION} "
        "(see docs/scenario-format.md); values in canonical units",
        kv("format_version", FORMAT_VERSION),
        kv("name", sc.name),
        kv("description", sc.description),
        kv("capacity_mode", sc.capacity_mode),
        "",
    ]
    for key, (file, unit) in series.items():
        out += [f"[timeseries.{key}]", kv("file", file), kv("unit", unit), ""]
    if routing_file:
        out += [
            "[routing]  # allowed (datacenter, region, model) routes; '*' = all",
            kv("file", routing_file),
            "",
        ]
    if latency_file:
        out += ["[latency]", kv("file", latency_file), kv("unit", "ms"), ""]
    coords = sc.attrs.get("coordinates", {}) if isinstance(sc.attrs, Mapping) else {}
    for i, n in enumerate(D):
        out += ["[[datacenter]]", kv("name", n)]
        if i not in pue_var:
            out.append(kv("pue", float(pue[0, i])))
        if i not in cap_var:
            if sc.capacity_mode == "shared":
                out.append(kv("capacity", float(cap[0, i])) + "  # [units/slot]")
            else:
                out.append(
                    kv("capacity", {m: float(cap[0, i, k]) for k, m in enumerate(M)})
                    + "  # [requests/slot]"
                )
        out += [kv(k, v) for k, v in _coords_of(coords, "datacenter", n).items()] + [""]
    for j, n in enumerate(R):
        out += ["[[region]]", kv("name", n)]
        if sc.home is not None:
            out.append(kv("home", sc.home[j]))
        for key in ("rtt_slo_ms", "rtt_budget_ms"):
            lim = getattr(sc, key)
            if lim is not None and np.isfinite(lim[j]):
                out.append(kv(key, float(lim[j])) + "  # [ms]")
        out += [kv(k, v) for k, v in _coords_of(coords, "region", n).items()] + [""]
    eps = np.asarray(sc.energy_per_request)
    for k, m in enumerate(M):
        e = eps[:, k]
        ev: Any = float(e[0]) if (e == e[0]).all() else {n: float(e[i]) for i, n in enumerate(D)}
        out += [
            "[[model]]",
            kv("name", m),
            kv("energy_per_request", ev),
            kv("energy_unit", "kWh"),
            kv("capacity_per_request", float(sc.capacity_per_request[k])) + "  # [units/request]",
            kv("quality_loss", float(sc.quality_loss[k])),
            "",
        ]
    attrs: dict[str, Any] = {}
    skipped: list[str] = []
    for key, value in (sc.attrs or {}).items():
        if key == "coordinates":
            continue
        try:
            attrs[str(key)] = _plain(value)
        except TypeError:
            skipped.append(str(key))
    if attrs:
        out += [tomli_w.dumps({"attrs": attrs}).rstrip("\n")]
    if skipped:
        out += [f"# attrs not written (no TOML form): {', '.join(skipped)}"]
    body = "\n".join(out).rstrip("\n") + "\n"
    _replace_file(folder / SCENARIO_FILE, lambda p: p.write_text(body, encoding="utf-8"))
    for name in old:
        entry = folder / name
        if name not in written and (entry.is_symlink() or entry.is_file()):
            entry.unlink()  # a link is removed, not what it points to
    return folder


def _coords_of(coords: Any, kind: str, name: str) -> dict[str, float]:
    try:
        c = coords[kind][name]
        return {k: float(c[k]) for k in ("lat", "lon") if k in c}
    except (KeyError, TypeError, ValueError):
        return {}
