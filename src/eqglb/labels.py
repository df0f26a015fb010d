"""Labels in, labels out: pandas and xarray inputs aligned by name, results with labels.

The :class:`~eqglb.scenario.Scenario` constructor calls :func:`align` on every array
argument. A plain array (or list) is taken positionally, as before. A labelled one, a
pandas ``DataFrame``/``Series`` or an xarray ``DataArray``, is aligned **by name** to
``datacenters``/``regions``/``models`` and **by time stamp** to ``time``; labels that do not
match (missing, extra, duplicated, or a time index shifted from ``time``) raise a
:class:`~eqglb.scenario.ScenarioError` naming the field, the labels and the fix. Nothing is
silently reordered by position.

Accepted layouts of a field whose dimensions are, e.g., ``(time, region)``:

* wide ``DataFrame``: index (or a ``time`` column) = time stamps, columns = region names
  (or transposed);
* long ``DataFrame``: columns ``time``, ``region`` and one value column (named after the
  field, or the only other column);
* ``Series`` with a ``MultiIndex`` whose level names are the dimensions;
* ``DataArray`` with dims named ``time``, ``region`` (any order), coordinates optional;
* 1-D fields (``pue`` per data centre, ``quality_loss`` per model, ...): a ``Series`` or a
  ``dict`` keyed by name; for 2-D fields a ``dict`` of columns (name -> values) is a wide
  frame whose rows are positional.

An axis whose labels are the default ``RangeIndex`` 0..n-1 has no labels and is taken
positionally. Names are compared as strings; time stamps in UTC (a naive index is UTC).

Out: :func:`scenario_to_xarray`, :func:`dispatch_to_xarray` (a ``DataArray`` with dims
``time, datacenter, region, model``), :func:`evaluation_to_frame` and
:func:`evaluation_to_xarray`; in: :func:`from_frames` (with units, see :mod:`eqglb.units`)
and :func:`from_xarray`. xarray is an optional extra (``pip install eqglb[xarray]``),
imported only where used.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from eqglb.fields import FIELDS, SIGNALS
from eqglb.scenario import DIMS, Dispatch, Scenario, ScenarioError, SolveInfo, SolveStatus

if TYPE_CHECKING:
    import xarray as xr

    from eqglb.simulate import Evaluation

__all__ = [
    "FIELD_DIMS",
    "align",
    "align_home",
    "dispatch_from_xarray",
    "dispatch_to_xarray",
    "evaluation_to_frame",
    "evaluation_to_xarray",
    "from_frames",
    "from_xarray",
    "is_labelled",
    "scenario_to_xarray",
]

_TN = ("time", "datacenter")

#: Accepted dimension tuples of each array field of a Scenario (first = preferred layout),
#: from :data:`eqglb.fields.FIELDS`, plus ``tokens_per_request`` (an input of unit conversion).
FIELD_DIMS: dict[str, tuple[tuple[str, ...], ...]] = {
    **{n: f.layouts for n, f in FIELDS.items()},
    "tokens_per_request": (("model",), ("datacenter", "model")),
}
_CAPACITY = {
    "shared": (("datacenter",), _TN),
    "per_model": (("datacenter", "model"), ("time", "datacenter", "model")),
}
_PLURAL = {"datacenter": "datacenters", "region": "regions", "model": "models"}
_SERIES_FIELDS = tuple(FIELDS)
_LONG_NAMES = {
    "time": "time stamps",
    "datacenter": "data centre",
    "region": "region",
    "model": "model",
}


def _xr() -> Any:
    try:
        import xarray
    except ImportError as exc:  # pragma: no cover - the extra is installed in tests
        raise ImportError(
            "xarray is not installed; install the extra: pip install 'eqglb[xarray]'"
        ) from exc
    return xarray


def _is_dataarray(v: Any) -> bool:
    return type(v).__name__ == "DataArray" and type(v).__module__.startswith("xarray")


def is_labelled(value: Any) -> bool:
    """True for the inputs :func:`align` aligns by label (pandas, xarray, dict)."""
    return isinstance(value, (pd.DataFrame, pd.Series, Mapping)) or _is_dataarray(value)


# ---------------------------------------------------------------------------- layouts
@dataclass
class _Labelled:
    """Values with one label index (or None: positional) per axis, in ``dims`` order."""

    field: str
    dims: tuple[str, ...]
    axes: list[pd.Index | None]
    values: np.ndarray
    what: list[str]  # how each axis is called in messages ("the columns", ...)

    def swapped(self) -> _Labelled:
        return _Labelled(self.field, self.dims, self.axes[::-1], self.values.T, self.what[::-1])


def _axis(index: pd.Index) -> pd.Index | None:
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
        return None
    return index


def _options(field: str, capacity_mode: str | None = None) -> tuple[tuple[str, ...], ...]:
    if field == "capacity" and capacity_mode in _CAPACITY:
        return _CAPACITY[capacity_mode]
    return FIELD_DIMS[field]


def _fmt_opts(opts: Sequence[tuple[str, ...]]) -> str:
    return " or ".join("(" + ", ".join(o) + ")" for o in opts)


def _from_multi(
    field: str, series: pd.Series, opts: Sequence[tuple[str, ...]], source: str
) -> _Labelled:
    """A Series with a MultiIndex (or one long table's value column) as a dense array."""
    names = [str(n) for n in series.index.names]
    match = [o for o in opts if set(o) == set(names) and len(o) == len(names)]
    if not match:
        raise ScenarioError(
            f"{field}: {source} is keyed by {tuple(names)}; expected {_fmt_opts(opts)} "
            "(rename the index levels or columns to these dimension names)"
        )
    dims = match[0]
    ser = series.reorder_levels(list(dims)) if list(dims) != names else series
    if ser.index.has_duplicates:
        dup = ser.index[ser.index.duplicated()][0]
        raise ScenarioError(
            f"{field}: {source} has more than one value for {dict(zip(dims, dup, strict=True))}"
            "; keep one row per combination"
        )
    codes, axes = [], []
    for lev in range(len(dims)):
        vals = ser.index.get_level_values(lev)
        c, uniq = pd.factorize(vals, sort=dims[lev] == "time")
        codes.append(c)
        axes.append(pd.Index(uniq))
    shape = tuple(len(a) for a in axes)
    vals = ser.to_numpy()
    dense = np.zeros(shape, dtype=vals.dtype)
    filled = np.zeros(shape, dtype=bool)
    dense[tuple(codes)] = vals
    filled[tuple(codes)] = True
    if not filled.all():
        first = np.argwhere(~filled)[0]
        combo = {d: axes[i][first[i]] for i, d in enumerate(dims)}
        raise ScenarioError(
            f"{field}: {source} has no value for {combo} ({int((~filled).sum())} "
            "combination(s) missing); give one row for every combination"
        )
    return _Labelled(field, dims, axes, dense, [f"{source} {d!r}" for d in dims])


def _long_frame(field: str, df: pd.DataFrame, opts: Sequence[tuple[str, ...]]) -> _Labelled:
    dimcols = [c for c in df.columns if c in DIMS]
    rest = [c for c in df.columns if c not in DIMS]
    if field in rest:
        value = field
    elif len(rest) == 1:
        value = rest[0]
    else:
        raise ScenarioError(
            f"{field}: the long table has value columns {rest}; name the one to use "
            f"{field!r} (or keep only the dimension columns {dimcols} and one value column)"
        )
    ser = df.set_index(dimcols)[value]
    if len(dimcols) == 1:
        ser.index = pd.MultiIndex.from_arrays([ser.index], names=dimcols)
    return _from_multi(field, ser, opts, "the long table's column")


def _layout(field: str, value: Any, opts: Sequence[tuple[str, ...]]) -> _Labelled:
    """Describe a labelled input (its dims in the natural orientation, labels per axis)."""
    if isinstance(value, Mapping) and not isinstance(value, pd.Series):
        if value and all(np.ndim(v) == 1 for v in value.values()):
            value = pd.DataFrame(dict(value))  # {column name: values}, rows positional
        else:
            value = pd.Series(dict(value))
    if _is_dataarray(value):
        dims = tuple(str(d) for d in value.dims)
        match = [o for o in opts if set(o) == set(dims) and len(o) == len(dims)]
        if not match:
            raise ScenarioError(
                f"{field}: the DataArray has dims {dims}; expected {_fmt_opts(opts)} "
                "(rename them, e.g. da.rename(dc='datacenter'))"
            )
        o = match[0]
        da = value.transpose(*o)
        axes = [_axis(da.indexes[d]) if d in da.indexes else None for d in o]
        return _Labelled(
            field, o, axes, np.asarray(da.values), [f"the coordinate {d!r}" for d in o]
        )
    if isinstance(value, pd.Series):
        if isinstance(value.index, pd.MultiIndex):
            return _from_multi(field, value, opts, "the Series index level")
        one = [o for o in opts if len(o) == 1]
        if not one:
            raise ScenarioError(
                f"{field}: a Series (one dimension) cannot hold {_fmt_opts(opts)}; give a "
                "DataFrame, a Series with a MultiIndex of these levels, or a DataArray"
            )
        return _Labelled(
            field, one[0], [_axis(value.index)], value.to_numpy(), ["the Series index"]
        )
    assert isinstance(value, pd.DataFrame)
    if [c for c in value.columns if c in DIMS] == ["time"]:
        value = value.set_index("time")  # a wide table as read from CSV: time column
    if any(c in DIMS for c in value.columns):
        return _long_frame(field, value, opts)
    two = [o for o in opts if len(o) == 2]
    if not two:
        one = [o for o in opts if len(o) == 1]
        if one and value.shape[1] == 1:
            return _Labelled(
                field, one[0], [_axis(value.index)], value.iloc[:, 0].to_numpy(), ["the index"]
            )
        raise ScenarioError(
            f"{field}: a wide DataFrame (two dimensions) cannot hold {_fmt_opts(opts)}; "
            "give a Series keyed by name, a long table or a DataArray"
        )
    if isinstance(value.columns, pd.MultiIndex):
        raise ScenarioError(
            f"{field}: the DataFrame has MultiIndex columns; stack them into "
            "a long table or give a DataArray"
        )
    return _Labelled(
        field,
        two[0],
        [_axis(value.index), _axis(value.columns)],
        value.to_numpy(),
        ["the index", "the columns"],
    )


# ---------------------------------------------------------------------------- matching
def _utc(labels: pd.Index) -> pd.DatetimeIndex:
    if isinstance(labels, pd.DatetimeIndex):
        t = labels
    else:
        with warnings.catch_warnings():  # pandas warns when it guesses a format
            warnings.simplefilter("ignore")
            t = pd.DatetimeIndex(pd.to_datetime(list(labels), utc=False))
    return t.tz_localize("UTC") if t.tz is None else t.tz_convert("UTC")


def _td(td: pd.Timedelta) -> str:
    sign = "-" if td < pd.Timedelta(0) else "+"
    return sign + str(abs(pd.Timedelta(td))).replace("0 days ", "")


def _verb(what: str) -> str:
    return "do" if what.endswith("s") else "does"


def _match(
    field: str, dim: str, labels: pd.Index, target: Sequence[Any] | pd.DatetimeIndex, what: str
) -> np.ndarray:
    """Positions in ``labels`` of each target label; ScenarioError when they differ."""
    if dim == "time":
        try:
            lab = _utc(labels)
        except (TypeError, ValueError) as exc:
            raise ScenarioError(
                f"{field}: {what} should hold time stamps but holds {list(labels[:3])}...; "
                "give a DatetimeIndex (UTC, or tz-aware)"
            ) from exc
        tgt = pd.DatetimeIndex(target)
    else:
        lab = pd.Index([str(x) for x in labels])
        tgt = pd.Index([str(x) for x in target])
    if lab.has_duplicates:
        dup = lab[lab.duplicated()].unique()
        raise ScenarioError(
            f"{field}: {what} repeats {[str(d) for d in dup[:5]]}; give each "
            f"{_LONG_NAMES[dim]} once"
        )
    pos = lab.get_indexer(tgt)
    if (pos >= 0).all() and len(lab) == len(tgt):
        return pos
    missing = tgt[pos < 0]
    extra = lab[~lab.isin(tgt)]
    if dim == "time":

        def show(ix: pd.Index) -> str:
            return f"{len(ix)} (first {ix[0]:%Y-%m-%d %H:%M} UTC)" if len(ix) else "none"

        msg = (
            f"{field}: {what} {_verb(what)} not match the scenario's time: slots missing "
            f"{show(missing)}, extra {show(extra)}"
        )
        if len(lab) == len(tgt):
            shift = (lab.sort_values() - tgt.sort_values()).unique()
            if len(shift) == 1:
                msg += (
                    f"; it is shifted by {_td(shift[0])} from the scenario's time "
                    "(local time read as UTC?)"
                )
        raise ScenarioError(
            msg + "; give tz-aware time stamps, or naive ones in UTC, for "
            "exactly the scenario's slots"
        )
    plural = _PLURAL[dim]
    raise ScenarioError(
        f"{field}: {what} {_verb(what)} not match the scenario's {plural}: missing "
        f"{[str(m) for m in missing]}, extra {[str(e) for e in extra]}; label them with the "
        f"names in `{plural}` (any order), or pass a plain array in `{plural}` order"
    )


def _targets(sc: Any, time: pd.DatetimeIndex) -> dict[str, Sequence[Any]]:
    return {"time": time, "datacenter": sc.datacenters, "region": sc.regions, "model": sc.models}


def _apply(lab: _Labelled, targets: Mapping[str, Sequence[Any]]) -> np.ndarray:
    idx: list[np.ndarray] = []
    for d, ax, what in zip(lab.dims, lab.axes, lab.what, strict=True):
        if ax is None:
            idx.append(np.arange(lab.values.shape[len(idx)]))
            if len(idx[-1]) != len(targets[d]):
                raise ScenarioError(
                    f"{lab.field}: {what} has {len(idx[-1])} unlabelled entries; the "
                    f"scenario has {len(targets[d])} {_LONG_NAMES[d]} ({d}): label them"
                )
        else:
            idx.append(_match(lab.field, d, ax, targets[d], what))
    return lab.values[np.ix_(*idx)] if idx else lab.values


def _aligned(lab: _Labelled, targets: Mapping[str, Sequence[Any]]) -> np.ndarray:
    try:
        return _apply(lab, targets)
    except ScenarioError:
        if (
            len(lab.dims) == 2
            and all(a is not None for a in lab.axes)
            and lab.what == ["the index", "the columns"]
        ):
            try:
                return _apply(lab.swapped(), targets)
            except ScenarioError:
                pass
        raise


def align(
    field: str, value: Any, sc: Any, time: pd.DatetimeIndex, capacity_mode: str | None = None
) -> Any:
    """``value`` aligned to the scenario's labels, or ``value`` itself when unlabelled.

    Parameters
    ----------
    field : str
        Scenario field name (a key of :data:`FIELD_DIMS`).
    value : any
        The argument as given; plain arrays and lists are returned unchanged.
    sc : object
        Anything with ``datacenters``, ``regions``, ``models`` (tuples of str).
    time : pandas.DatetimeIndex
        The scenario's slots, UTC.

    Returns
    -------
    numpy.ndarray or the unchanged value
        In the order of one of ``FIELD_DIMS[field]`` (the Scenario picks it by shape).

    Raises
    ------
    ScenarioError
        Labels that do not align: the message names the field, the missing and extra
        labels (or the time shift) and the fix.
    """
    if not is_labelled(value):
        return value
    lab = _layout(field, value, _options(field, capacity_mode))
    return _aligned(lab, _targets(sc, time))


def align_home(home: Any, regions: Sequence[str]) -> Any:
    """``home`` given as a Series or dict keyed by region, as a list in ``regions`` order."""
    if not isinstance(home, (pd.Series, Mapping)):
        return home
    ser = home if isinstance(home, pd.Series) else pd.Series(dict(home), dtype=object)
    pos = _match("home", "region", ser.index, regions, "the keys")
    return [str(v) for v in ser.to_numpy()[pos]]


# ---------------------------------------------------------------------------- from_frames
def _broadcast_scalar(value: Any, field: str, sizes: Mapping[str, int], capacity_mode: str) -> Any:
    if np.ndim(value) == 0 and not is_labelled(value) and value is not None:
        dims = _options(field, capacity_mode)[0]
        return np.full(
            tuple(sizes[d] for d in dims),
            value,
            dtype=bool if isinstance(value, (bool, np.bool_)) else float,
        )
    return value


def _labels_along(field: str, value: Any, dim: str, capacity_mode: str) -> list[Any] | None:
    if not is_labelled(value):
        return None
    lab = _layout(field, value, _options(field, capacity_mode))
    if dim not in lab.dims:
        return None
    ax = lab.axes[lab.dims.index(dim)]
    if ax is None:
        return None
    if dim == "time":
        try:
            return list(_utc(ax))
        except (TypeError, ValueError):
            return None
    return [str(x) for x in ax]


_INFER = {
    "time": ("demand", *(n for n in SIGNALS if n != "demand")),
    "region": ("demand", "latency", "allowed"),
    "datacenter": (
        *(n for n in SIGNALS if n != "demand"),
        "energy_per_request",
        "latency",
        "allowed",
    ),
    "model": (
        "quality_loss",
        "capacity_per_request",
        "energy_per_request",
        "tokens_per_request",
        "allowed",
    ),
}


def from_frames(
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
    units: Mapping[str, str] | None = None,
    datacenters: Sequence[str] | None = None,
    regions: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    time: Any = None,
    capacity_mode: str = "shared",
    name: str = "scenario",
    description: str = "",
    attrs: Mapping[str, Any] | None = None,
    validate_feasibility: bool = True,
    strict: bool = False,
) -> Scenario:
    """A Scenario from labelled pandas inputs (see :meth:`Scenario.from_frames`)."""
    given = dict(
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
        tokens_per_request=tokens_per_request,
    )
    names: dict[str, Any] = {
        "datacenter": datacenters,
        "region": regions,
        "model": models,
        "time": time,
    }
    for dim, fields in _INFER.items():
        if names[dim] is not None:
            continue
        for f in fields:
            got = _labels_along(f, given[f], dim, capacity_mode)
            if got is not None:
                names[dim] = got
                break
        else:
            arg = "time" if dim == "time" else _PLURAL[dim]
            raise ScenarioError(
                f"from_frames: no labelled input names the {_PLURAL.get(dim, 'time stamps')}; "
                f"give {arg}=[...] or label {fields[0]} (e.g. a DataFrame with "
                f"{'a time index' if dim == 'time' else dim + ' columns'})"
            )
    for dim in ("datacenter", "region", "model"):
        names[dim] = tuple(str(n) for n in names[dim])
    t = names["time"]
    t = pd.DatetimeIndex(t) if not isinstance(t, pd.DatetimeIndex) else t
    t = t.tz_localize("UTC") if t.tz is None else t.tz_convert("UTC")
    if time is None:  # inferred from a frame whose rows may be in any order
        t = t.sort_values()

    _Names = SimpleNamespace(
        datacenters=names["datacenter"], regions=names["region"], models=names["model"]
    )

    sizes = {
        "time": len(t),
        "datacenter": len(_Names.datacenters),
        "region": len(_Names.regions),
        "model": len(_Names.models),
    }
    arrays: dict[str, Any] = {}
    for f, v in given.items():
        if v is None:
            arrays[f] = None
            continue
        v = _broadcast_scalar(v, f, sizes, capacity_mode)
        arrays[f] = align(f, v, _Names, t, capacity_mode)
    if units:
        from eqglb.units import UnitError, convert

        slot_h = None if len(t) < 2 else (t[1] - t[0]) / pd.Timedelta(hours=1)
        tok = arrays.pop("tokens_per_request")
        for f, u in units.items():
            if f not in _SERIES_FIELDS or f == "allowed":
                raise UnitError(
                    f"units: {f!r} is not a Scenario field with a unit; use one "
                    f"of {[x for x in _SERIES_FIELDS if x != 'allowed']}"
                )
            if arrays[f] is None:
                raise UnitError(f"units: a unit is given for {f!r} but {f} is not given")
            a = np.asarray(arrays[f], dtype=float)
            tk = None
            if tok is not None:
                tk = np.asarray(tok, dtype=float)
                if f == "energy_per_request" and a.ndim == 2 and tk.ndim == 1:
                    tk = tk[None, :]
            arrays[f] = convert(
                f, a, u, slot_hours=slot_h, tokens_per_request=tk, capacity_mode=capacity_mode
            )
    else:
        arrays.pop("tokens_per_request")
    return Scenario(
        datacenters=_Names.datacenters,
        regions=_Names.regions,
        models=_Names.models,
        time=t,
        home=home,
        capacity_mode=capacity_mode,
        name=name,
        description=description,
        attrs=dict(attrs or {}),
        validate_feasibility=validate_feasibility,
        strict=strict,
        **arrays,
    )


# ---------------------------------------------------------------------------- xarray
def _naive_utc(time: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return time.tz_convert("UTC").tz_localize(None)


def _coords(sc: Scenario) -> dict[str, Any]:
    return {
        "time": ("time", _naive_utc(sc.time), {"timezone": "UTC"}),
        "datacenter": ("datacenter", np.array(sc.datacenters, dtype=object)),
        "region": ("region", np.array(sc.regions, dtype=object)),
        "model": ("model", np.array(sc.models, dtype=object)),
    }


def scenario_to_xarray(sc: Scenario) -> xr.Dataset:
    """The scenario as an ``xarray.Dataset`` in canonical units (``units`` attrs).

    Coordinates ``time`` (naive UTC, attr ``timezone="UTC"``), ``datacenter``, ``region``,
    ``model``; one variable per field, with ``pue`` (time, datacenter) and capacity
    (time, datacenter[, model]) as stored. ``home`` (when given) is a string variable
    on ``region``. Dataset attrs: ``name``, ``description``, ``capacity_mode``,
    ``eqglb_attrs`` (the free metadata as JSON). :func:`from_xarray` reads it back.
    """
    from eqglb._json import json_ready
    from eqglb.units import CANONICAL

    xr = _xr()
    data: dict[str, Any] = {}
    for f, fd in FIELDS.items():
        a = getattr(sc, f)
        if a is None or (fd.optional and fd.kind == "float" and not np.any(a)):
            continue  # absent, or an optional signal that is 0 (health_cost not modelled)
        at = {"long_name": fd.doc}
        if fd.kind == "float":
            at["units"] = CANONICAL["capacity_" + sc.capacity_mode if f == "capacity" else f]
        dims = fd.dims + (("model",) if np.ndim(a) > len(fd.dims) else ())
        data[f] = (dims, np.array(a), at)
    if sc.home is not None:
        data["home"] = (
            "region",
            np.array(sc.home, dtype=object),
            {"long_name": "home (nearest) datacenter of each region"},
        )
    return xr.Dataset(
        data,
        coords=_coords(sc),
        attrs={
            "eqglb_kind": "scenario",
            "name": sc.name,
            "description": sc.description,
            "capacity_mode": sc.capacity_mode,
            "eqglb_attrs": json.dumps(json_ready(sc.attrs, "string"), default=str),
        },
    )


def from_xarray(
    ds: xr.Dataset,
    *,
    units: Mapping[str, str] | None = None,
    tokens_per_request: Any = None,
    name: str | None = None,
    validate_feasibility: bool = True,
    strict: bool = False,
) -> Scenario:
    """A Scenario from an ``xarray.Dataset`` (see :meth:`Scenario.from_xarray`)."""
    required = [n for n, f in FIELDS.items() if not f.optional]
    missing = [v for v in required if v not in ds.data_vars]
    if missing:
        raise ScenarioError(
            f"from_xarray: the Dataset lacks variable(s) {missing}; it has "
            f"{list(ds.data_vars)} (rename or add them)"
        )
    for d in ("time", "datacenter", "region", "model"):
        if d not in ds.coords:
            raise ScenarioError(
                f"from_xarray: the Dataset has no {d!r} coordinate (its coordinates: "
                f"{list(ds.coords)}); give the {d} labels, e.g. ds.assign_coords({d}=[...])"
            )
    attrs = dict(ds.attrs)
    mode = attrs.get("capacity_mode")
    if mode is None:
        mode = "per_model" if "model" in ds["capacity"].dims else "shared"
    unit_of = {
        f: str(ds[f].attrs["units"])
        for f in _SERIES_FIELDS
        if f in ds.data_vars and "units" in ds[f].attrs and FIELDS[f].kind == "float"
    }
    unit_of.update(units or {})
    if tokens_per_request is None and "tokens_per_request" in ds.data_vars:
        tokens_per_request = ds["tokens_per_request"]
    extra = attrs.get("eqglb_attrs")
    meta = (
        json.loads(extra)
        if isinstance(extra, str)
        else {
            k: v
            for k, v in attrs.items()
            if k not in ("name", "description", "capacity_mode", "eqglb_kind")
        }
    )
    kw = {f: ds[f] for f in _SERIES_FIELDS if f in ds.data_vars}
    home = None
    if "home" in ds.data_vars:
        home = pd.Series(
            [str(h) for h in ds["home"].values], index=[str(r) for r in ds["region"].values]
        )
    time = pd.DatetimeIndex(ds.indexes["time"])
    tz = ds["time"].attrs.get("timezone")
    if tz and time.tz is None:
        time = time.tz_localize(tz)
    return from_frames(
        **kw,
        home=home,
        tokens_per_request=tokens_per_request,
        units=unit_of,
        datacenters=[str(x) for x in ds["datacenter"].values],
        regions=[str(x) for x in ds["region"].values],
        models=[str(x) for x in ds["model"].values],
        time=time,
        capacity_mode=mode,
        name=name or str(attrs.get("name", "scenario")),
        description=str(attrs.get("description", "")),
        attrs=meta,
        validate_feasibility=validate_feasibility,
        strict=strict,
    )


def dispatch_to_xarray(dispatch: Dispatch, sc: Scenario) -> xr.DataArray:
    """``y`` as a ``DataArray`` with dims ``time, datacenter, region, model``
    [requests/slot]; attrs ``policy`` and the solve status (when known)."""
    from eqglb.scenario import check_dispatch_shape

    check_dispatch_shape(sc, dispatch)
    xr = _xr()
    attrs: dict[str, Any] = {
        "units": "requests/slot",
        "policy": dispatch.policy,
        "long_name": "requests of each region served by each model at each datacenter",
    }
    if dispatch.info is not None:
        info = dispatch.info
        attrs.update(
            solve_status=str(info.status), solver=info.solver, solve_time_s=float(info.solve_time)
        )
        for k in ("objective", "dual_bound", "iterations"):
            if getattr(info, k) is not None:
                attrs[f"solve_{k}"] = getattr(info, k)
    c = _coords(sc)
    return xr.DataArray(
        np.array(dispatch.y),
        dims=DIMS,
        coords={d: c[d] for d in DIMS},
        name="dispatch",
        attrs=attrs,
    )


def dispatch_from_xarray(da: xr.DataArray, sc: Scenario, policy: str | None = None) -> Dispatch:
    """Inverse of :func:`dispatch_to_xarray`: aligned by label to ``sc`` (refused if not)."""
    dims = tuple(str(d) for d in da.dims)
    if set(dims) != set(DIMS) or len(dims) != 4:
        raise ScenarioError(f"dispatch: the DataArray has dims {dims}; expected {DIMS}")
    da = da.transpose(*DIMS)
    idx = [
        _match("dispatch", d, da.indexes[d], _targets(sc, sc.time)[d], f"the coordinate {d!r}")
        if d in da.indexes
        else np.arange(da.shape[i])
        for i, d in enumerate(DIMS)
    ]
    y = np.asarray(da.values, dtype=float)[np.ix_(*idx)]
    a = da.attrs
    info = None
    if "solve_status" in a:
        it = a.get("solve_iterations")
        info = SolveInfo(
            status=SolveStatus.parse(str(a["solve_status"])),
            solver=str(a.get("solver", "")),
            solve_time=float(a.get("solve_time_s", 0.0)),
            objective=None if "solve_objective" not in a else float(a["solve_objective"]),
            dual_bound=None if "solve_dual_bound" not in a else float(a["solve_dual_bound"]),
            iterations=None if it is None else int(it),
        )
    return Dispatch(y=y, policy=policy or str(a.get("policy", "dispatch")), info=info)


# ---------------------------------------------------------------------------- evaluations
_EV_UNITS = {"carbon": "kg CO2", "water": "L", "energy_cost": "USD", "objective": "USD"}


def evaluation_to_frame(ev: Evaluation) -> pd.DataFrame:
    """Long table: one row per (quantity, name) with columns policy, quantity, dimension,
    name, value, unit.

    Rows: ``carbon`` and ``water`` per datacenter [kg CO2], [L]; ``social`` per region
    (quality loss; unit ``-`` when averaged per request, ``requests`` when totalled);
    ``energy_cost`` [USD] and ``objective`` [USD] with dimension ``total`` and an empty
    name. ``pd.concat`` of several policies' tables compares them.
    """
    social_unit = (
        "-" if (ev.objective_spec is None or ev.objective_spec.social_average) else "requests"
    )
    rows: list[tuple[str, str, str, str, float, str]] = []
    for q, dim, unit in (
        ("carbon", "datacenter", _EV_UNITS["carbon"]),
        ("water", "datacenter", _EV_UNITS["water"]),
        ("social", "region", social_unit),
    ):
        for n, v in getattr(ev, q).items():
            rows.append((ev.policy, q, dim, n, float(v), unit))
    rows.append((ev.policy, "energy_cost", "total", "", float(ev.energy_cost), "USD"))
    rows.append(
        (
            ev.policy,
            "objective",
            "total",
            "",
            np.nan if ev.objective is None else float(ev.objective),
            "USD",
        )
    )
    return pd.DataFrame(rows, columns=["policy", "quantity", "dimension", "name", "value", "unit"])


def evaluation_to_xarray(ev: Evaluation) -> xr.Dataset:
    """An ``xarray.Dataset``: ``carbon(datacenter)`` [kg CO2], ``water(datacenter)`` [L],
    ``social(region)`` [-], scalars ``energy_cost`` and ``objective`` [USD], and one
    ``<cost>_summary(metric)`` per summarised cost; scalar coordinate ``policy`` (so
    ``xr.concat([...], dim="policy")`` stacks policies); scalars ``feasibility_<kind>``
    (largest violations), ``flagged`` and ``solve_status`` ("" when unknown)."""
    xr = _xr()
    social_unit = (
        "-" if (ev.objective_spec is None or ev.objective_spec.social_average) else "requests"
    )
    data: dict[str, Any] = {
        "carbon": (
            "datacenter",
            np.array(list(ev.carbon.values()), dtype=float),
            {"units": "kg CO2", "long_name": "carbon emitted at each datacenter"},
        ),
        "water": (
            "datacenter",
            np.array(list(ev.water.values()), dtype=float),
            {"units": "L", "long_name": "water consumed for each datacenter"},
        ),
        "social": (
            "region",
            np.array(list(ev.social.values()), dtype=float),
            {"units": social_unit, "long_name": "quality loss of each region"},
        ),
        "energy_cost": ((), float(ev.energy_cost), {"units": "USD"}),
        "objective": (
            (),
            np.nan if ev.objective is None else float(ev.objective),
            {"units": "USD"},
        ),
    }
    coords: dict[str, Any] = {
        "datacenter": ("datacenter", np.array(list(ev.carbon), dtype=object)),
        "region": ("region", np.array(list(ev.social), dtype=object)),
        "policy": ((), ev.policy),
    }
    metric_names: list[str] | None = None
    for cost, m in ev.summary.items():
        if cost == "totals":
            for k, v in m.items():
                data[f"total_{k}"] = ((), float(v))
            continue
        if metric_names is None:
            metric_names = list(m)
        if list(m) == metric_names:
            data[f"{cost}_summary"] = ("metric", np.array([float(m[k]) for k in metric_names]))
    if metric_names is not None:
        coords["metric"] = ("metric", np.array(metric_names, dtype=object))
    for k, v in vars(ev.feasibility).items():
        data[f"feasibility_{k}"] = ((), float(v), {"long_name": f"largest {k} violation"})
    data["flagged"] = ((), bool(ev.flagged))
    data["solve_status"] = ((), "" if ev.info is None else str(ev.info.status))
    return xr.Dataset(data, coords=coords)
