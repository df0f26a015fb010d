"""netCDF files of scenarios and results (the ``xarray`` extra: xarray + h5netcdf).

One netCDF-4 file holds a scenario (the variables of :meth:`Scenario.to_xarray
<eqglb.scenario.Scenario.to_xarray>`: one per field of :data:`eqglb.fields.FIELDS`,
canonical units in ``units`` attrs; ``health_cost`` only when it is not 0) and,
optionally, results:

* ``dispatch(policy, time, datacenter, region, model)`` [requests/slot] for each
  :class:`~eqglb.scenario.Dispatch`, with its solve status in ``solve_status(policy)``,
  ``solver``, ``solve_time`` [s], ``solve_objective``, ``solve_dual_bound`` (NaN when
  unknown) and ``solve_iterations`` (-1 when unknown);
* the :meth:`Evaluation.to_xarray <eqglb.simulate.Evaluation.to_xarray>` variables of each
  evaluation, prefixed ``eval_`` and stacked along ``eval_policy``.

:func:`read_netcdf` gives back a :class:`NetcdfContents`; ``write_netcdf`` then
``read_netcdf`` returns equal arrays, names, times, metadata and solve status. The
``extra`` dict of a :class:`~eqglb.scenario.SolveInfo` is not stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eqglb.fields import FIELDS
from eqglb.scenario import DIMS, Dispatch, Scenario, ScenarioError, SolveInfo, SolveStatus

if TYPE_CHECKING:
    from eqglb.simulate import Evaluation

__all__ = ["ENGINE", "NetcdfContents", "read_netcdf", "write_netcdf"]

#: xarray backend used to read and write (netCDF-4 through h5py).
ENGINE = "h5netcdf"
_FORMAT = 1


@dataclass(frozen=True)
class NetcdfContents:
    """What :func:`read_netcdf` found in a file.

    Attributes
    ----------
    scenario : Scenario
        Validated again on reading.
    dispatches : dict policy -> Dispatch
        In file order; empty when the file holds none.
    results : xarray.Dataset or None
        The evaluations (variables of ``Evaluation.to_xarray`` stacked along ``policy``),
        or None.
    """

    scenario: Scenario
    dispatches: dict[str, Dispatch] = field(default_factory=dict)
    results: Any = None


def _xr() -> Any:
    try:
        import h5netcdf  # noqa: F401
        import xarray
    except ImportError as exc:
        raise ImportError(
            "netCDF files need the xarray extra: pip install 'eqglb[xarray]' "
            "(xarray, h5netcdf, h5py)"
        ) from exc
    return xarray


def _as_list(items: Mapping[str, Any] | Iterable[Any] | None, what: str) -> list[Any]:
    if items is None:
        return []
    out = list(items.values()) if isinstance(items, Mapping) else list(items)
    names = [x.policy for x in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ScenarioError(
            f"write_netcdf: {what} has policy name(s) {dup} more than once; "
            "give each policy one entry"
        )
    return out


def write_netcdf(
    path: str | Path,
    scenario: Scenario,
    *,
    dispatches: Mapping[str, Dispatch] | Iterable[Dispatch] | None = None,
    evaluations: Mapping[str, Evaluation] | Iterable[Evaluation] | None = None,
) -> Path:
    """Write ``scenario`` (and results) to one netCDF-4 file; returns the path.

    Parameters
    ----------
    path : str or Path
        File to write (replaced if it exists; its folder must exist).
    dispatches : Dispatch objects (or a mapping policy -> Dispatch), optional
        Each must have the scenario's shape; policy names must be unique.
    evaluations : Evaluation objects (or a mapping), optional
    """
    xr = _xr()
    path = Path(path)
    if not path.parent.is_dir():
        raise ScenarioError(
            f"write_netcdf: folder {str(path.parent)!r} does not exist; create it first"
        )
    ds = scenario.to_xarray()
    ds.attrs["eqglb_netcdf_format"] = _FORMAT
    disp = _as_list(dispatches, "dispatches")
    if disp:
        das = [d.to_xarray(scenario) for d in disp]
        stack = xr.concat(
            [da.drop_attrs() for da in das], dim="policy", coords="minimal", compat="override"
        )
        ds["dispatch"] = stack.assign_coords(
            policy=np.array([d.policy for d in disp], dtype=object)
        ).transpose("policy", *DIMS)
        ds["dispatch"].attrs = {"units": "requests/slot", "long_name": das[0].attrs["long_name"]}
        infos = [d.info for d in disp]
        nan = float("nan")
        ds["solve_status"] = (
            "policy",
            np.array(["" if i is None else str(i.status) for i in infos], dtype=object),
        )
        ds["solver"] = (
            "policy",
            np.array(["" if i is None else i.solver for i in infos], dtype=object),
        )
        ds["solve_time"] = (
            "policy",
            np.array([nan if i is None else float(i.solve_time) for i in infos]),
            {"units": "s"},
        )
        for k in ("objective", "dual_bound"):
            ds[f"solve_{k}"] = (
                "policy",
                np.array(
                    [
                        nan if i is None or getattr(i, k) is None else float(getattr(i, k))
                        for i in infos
                    ]
                ),
            )
        ds["solve_iterations"] = (
            "policy",
            np.array(
                [-1 if i is None or i.iterations is None else int(i.iterations) for i in infos],
                dtype=np.int64,
            ),
        )
    evs = _as_list(evaluations, "evaluations")
    if evs:
        res = xr.concat([e.to_xarray() for e in evs], dim="policy")
        res = res.rename({"policy": "eval_policy", **{v: f"eval_{v}" for v in res.data_vars}})
        ds = ds.merge(
            res.drop_vars(["datacenter", "region"], errors="ignore"), compat="override", join="left"
        )
    ds.attrs["eqglb_contents"] = json.dumps(
        {"dispatches": [d.policy for d in disp], "evaluations": [e.policy for e in evs]}
    )
    ds.to_netcdf(path, engine=ENGINE)
    return path


def read_netcdf(
    path: str | Path, *, strict: bool = False, validate_feasibility: bool = True
) -> NetcdfContents:
    """Read a file written by :func:`write_netcdf` (or any Dataset that
    :meth:`Scenario.from_xarray <eqglb.scenario.Scenario.from_xarray>` accepts).

    Raises
    ------
    ScenarioError
        The file is missing, not netCDF, or holds an invalid scenario (prefixed with the
        file name).
    """
    xr = _xr()
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(
            f"read_netcdf: {str(path)!r} does not exist; give the path of a "
            "file written by write_netcdf"
        )
    try:
        ds = xr.open_dataset(path, engine=ENGINE).load()
    except (OSError, ValueError) as exc:
        raise ScenarioError(
            f"read_netcdf: {str(path)!r} is not a readable netCDF-4 file ({exc})"
        ) from exc
    ds.close()
    contents = json.loads(ds.attrs.get("eqglb_contents", "{}"))
    # the scenario: the variables of the field schema (plus home); the rest are results
    scen_vars = [v for v in ds.data_vars if v in FIELDS or v in ("home", "tokens_per_request")]
    try:
        sc = Scenario.from_xarray(
            ds[scen_vars], strict=strict, validate_feasibility=validate_feasibility
        )
    except ScenarioError as exc:
        raise type(exc)(
            f"{path}: {exc}", field=exc.field, coordinate=exc.coordinate, fix=exc.fix
        ) from exc
    dispatches: dict[str, Dispatch] = {}
    if "dispatch" in ds.data_vars:
        for p in [str(x) for x in ds["policy"].values]:
            row = ds.sel(policy=p)
            status = str(row["solve_status"].values)
            info = None
            if status:
                it = int(row["solve_iterations"].values)
                obj, bound = (float(row[k].values) for k in ("solve_objective", "solve_dual_bound"))
                info = SolveInfo(
                    status=SolveStatus.parse(status),
                    solver=str(row["solver"].values),
                    solve_time=float(row["solve_time"].values),
                    objective=None if np.isnan(obj) else obj,
                    dual_bound=None if np.isnan(bound) else bound,
                    iterations=None if it < 0 else it,
                )
            d = Dispatch.from_xarray(sc, row["dispatch"], policy=p)
            dispatches[p] = Dispatch(y=d.y, policy=p, info=info)
    results = None
    ev_vars = [v for v in ds.data_vars if str(v).startswith("eval_")]
    if ev_vars:
        results = ds[ev_vars].rename(
            {"eval_policy": "policy", **{v: str(v).removeprefix("eval_") for v in ev_vars}}
        )
        results = results.drop_vars([c for c in ("time", "model") if c in results.coords])
        results.attrs = {}
    if contents.get("dispatches") is not None and list(dispatches) != contents["dispatches"]:
        raise ScenarioError(
            f"read_netcdf: {path}: the dispatches {list(dispatches)} differ "
            f"from the ones recorded {contents['dispatches']}; the file was "
            "changed after writing: write it again"
        )
    return NetcdfContents(scenario=sc, dispatches=dispatches, results=results)
