"""Trade-off sweeps: a grid over q, weights, policies and scenarios, on processes or Ray.

A sweep solves one policy per grid point ``(scenario, policy, q, weights)`` and records
the energy cost [USD] against the peak-to-average ratio (max/mean) of each regional cost
(carbon [kg CO2] and water [L] per data centre, quality loss [-] per user region): the
trade-off frontier of equity against efficiency. A baseline policy (``"energy"`` by
default) is solved once per scenario; every point's energy-cost overhead [%] is measured
against it.

Execution
---------
Every point, on every backend, is solved by the same function :func:`_solve_point`
(payload -> result dict). ``backend="local"`` runs it in a
:class:`concurrent.futures.ProcessPoolExecutor` (``forkserver`` start method, so workers
fork from a clean single-threaded server that has the solvers imported);
``backend="ray"`` wraps it with ``ray.remote(max_retries=...)`` and runs it on a local Ray
instance started on demand, or on an existing cluster given by ``address``.

Resuming
--------
The driver writes each point's result as soon as it completes, one JSON file per point
``<store_dir>/<key>.json`` (written to a temporary file, then ``os.replace``: a file is
either complete or absent). The key is a hash of the point's canonical JSON, which
includes a fingerprint of the scenario's numbers, so a changed scenario is never matched
with stale results. Running the same sweep again skips points whose file holds a result;
points recorded as failed (with their error) are retried. A worker process that dies
(killed, out of memory) breaks only the points in flight: the local backend restarts its
pool and resubmits them (up to ``max_retries`` times), Ray retries the task itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import socket
import sys
import tempfile
import time as _time
import tomllib
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pandas as pd
import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from eqglb import defaults as _defaults
from eqglb._json import json_ready
from eqglb._workers import Reaper, watch_parent
from eqglb.metrics import parse_q
from eqglb.scenario import Scenario, ScenarioError, scenario_fingerprint

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

__all__ = [
    "DEFAULT_MU_CARBON",
    "DEFAULT_MU_SOCIAL",
    "DEFAULT_MU_WATER",
    "DEFAULT_Q",
    "FRONTIER_COLUMNS",
    "RESULT_COLUMNS",
    "ScenarioSpec",
    "SweepPoint",
    "SweepSpec",
    "SweepSpecError",
    "WeightGrid",
    "Weights",
    "frontier_table",
    "load_results",
    "plot_frontier",
    "render_frontier",
    "run_sweep",
    "scenario_fingerprint",
    "sweep_app",
    "sweep_command",
    "sweep_points",
    "write_outputs",
]

#: Default weight of the quality-loss norm: None = the one default of eqglb.defaults
#: (quality value x mean requests per region of each scenario) [USD per unit of S].
DEFAULT_MU_SOCIAL: float | None = None
#: Default weight of the carbon norm [USD/kg CO2] (eqglb.defaults).
DEFAULT_MU_CARBON = _defaults.DEFAULT_MU_CARBON
#: Default weight of the water norm [USD/L] (eqglb.defaults).
DEFAULT_MU_WATER = _defaults.DEFAULT_MU_WATER
#: Default norm orders swept [-].
DEFAULT_Q: tuple[float | str, ...] = (1, 2, 4, 8, "inf")
#: Default horizon of the built-in scenario in a sweep [days].
DEFAULT_DAYS = 7
#: Version of the stored result format; part of every key.
STORE_FORMAT = 1

#: Columns of the DataFrame returned by :func:`run_sweep`, in order.
RESULT_COLUMNS: tuple[str, ...] = (
    "scenario",
    "policy",
    "role",
    "weights",
    "q",
    "mu_social",
    "mu_carbon",
    "mu_water",
    "status",
    "ok",
    "flagged",
    "energy_cost",
    "objective",
    "baseline_energy_cost",
    "energy_overhead_pct",
    "carbon_max",
    "carbon_mean",
    "carbon_max_over_mean",
    "carbon_jain",
    "carbon_total",
    "water_max",
    "water_mean",
    "water_max_over_mean",
    "water_jain",
    "water_total",
    "quality_max",
    "quality_mean",
    "quality_max_over_mean",
    "quality_jain",
    "mean_quality_loss",
    "solver",
    "solve_time_s",
    "wall_time_s",
    "error",
    "key",
)
#: Columns of :func:`frontier_table`.
FRONTIER_COLUMNS: tuple[str, ...] = (
    "scenario",
    "policy",
    "weights",
    "q",
    "energy_cost",
    "energy_overhead_pct",
    "carbon_max_over_mean",
    "water_max_over_mean",
    "quality_max_over_mean",
    "status",
)
#: (column prefix, Evaluation summary key, label, unit) of the regional costs.
_COSTS = (
    ("carbon", "carbon", "carbon", "kg CO2"),
    ("water", "water", "water", "L"),
    ("quality", "social", "quality loss", "-"),
)


class SweepSpecError(ScenarioError):
    """A sweep specification is invalid; the message names the file, the field and the fix."""


# --------------------------------------------------------------------------- specification
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Weights(_Model):
    """One weight setting of the objective.

    Attributes
    ----------
    mu_social : float
        Weight of the quality-loss norm [USD per unit of average quality loss per request]
        ([USD per request of loss] with ``total_quality``).
    mu_carbon : float
        Weight of the carbon norm [USD/kg CO2].
    mu_water : float
        Weight of the water norm [USD/L].
    """

    mu_social: float | None = Field(default=DEFAULT_MU_SOCIAL, ge=0, allow_inf_nan=False)
    mu_carbon: float = Field(default=DEFAULT_MU_CARBON, ge=0, allow_inf_nan=False)
    mu_water: float = Field(default=DEFAULT_MU_WATER, ge=0, allow_inf_nan=False)

    @property
    def label(self) -> str:
        """Short label, e.g. ``mu_s=1e+06 mu_c=0.5 mu_w=0.05``."""
        mus = "default" if self.mu_social is None else f"{self.mu_social:g}"
        return f"mu_s={mus} mu_c={self.mu_carbon:g} mu_w={self.mu_water:g}"


class WeightGrid(_Model):
    """Cartesian grid of weights; each list defaults to the single default value.

    Attributes
    ----------
    mu_social : list of float [USD per unit of average quality loss per request]
    mu_carbon : list of float [USD/kg CO2]
    mu_water : list of float [USD/L]
    """

    mu_social: list[Annotated[float | None, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=lambda: [DEFAULT_MU_SOCIAL], min_length=1
    )
    mu_carbon: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=lambda: [DEFAULT_MU_CARBON], min_length=1
    )
    mu_water: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=lambda: [DEFAULT_MU_WATER], min_length=1
    )

    def expand(self) -> list[Weights]:
        """Every combination, mu_social varying slowest."""
        return [
            Weights(mu_social=s, mu_carbon=c, mu_water=w)
            for s, c, w in itertools.product(self.mu_social, self.mu_carbon, self.mu_water)
        ]


class ScenarioSpec(_Model):
    """Scenarios of a sweep: a scenario folder, or the built-in scenario for some seeds.

    Attributes
    ----------
    path : Path or None
        Scenario folder (``scenario.toml`` + tables, see docs/scenario-format.md); relative
        paths in a spec file are relative to that file's folder. ``None``: the built-in
        scenario.
    days : int
        Horizon of the built-in scenario [days].
    seeds : list of int
        Seeds of the built-in scenario; one scenario per seed.
    start : str
        Start of the built-in scenario's first slot (ISO 8601, UTC).
    name : str or None
        Label of the scenario in the results (default: the folder name, or
        ``builtin-<days>d-seed<seed>``).
    """

    path: Path | None = None
    days: int = Field(default=DEFAULT_DAYS, ge=1)
    seeds: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [0], min_length=1)
    start: str = "2022-09-22"
    name: str | None = None

    def expand(self) -> list[tuple[str, Callable[[], Scenario]]]:
        """(label, loader) of every scenario this entry stands for."""
        if self.path is not None:
            path = self.path

            def load_folder() -> Scenario:
                from eqglb.io.scenario_format import read_scenario

                return read_scenario(path)

            label = (
                self.name
                or (path.parent.name if path.suffix.lower() == ".toml" else path.name)
                or str(path)
            )
            return [(label, load_folder)]
        out: list[tuple[str, Callable[[], Scenario]]] = []
        for seed in self.seeds:
            label = (
                f"{self.name}-seed{seed}"
                if self.name and len(self.seeds) > 1
                else self.name or f"builtin-{self.days}d-seed{seed}"
            )
            out.append((label, functools.partial(_builtin, self.days, seed, self.start)))
        return out


def _builtin(days: int, seed: int, start: str) -> Scenario:
    from eqglb.builtin import builtin_scenario

    return builtin_scenario(days=days, seed=seed, start=start)


class SweepSpec(_Model):
    """A sweep: the grid of ``(scenario, policy, q, weights)`` points and how to score them.

    Attributes
    ----------
    q : list of float or "inf"
        Norm orders swept [-], each >= 1 (one q for every term of a point).
    weights : list of Weights
        Explicit weight settings.
    weight_grid : WeightGrid or None
        A Cartesian grid of weights, added after ``weights``. With neither, the single
        default setting of :mod:`eqglb.defaults` (mu_social = quality value x mean requests
        per region, mu_carbon = 0.19 USD/kg, mu_water = 0.01 USD/L).
    policies : list of str
        Registered policies solved at every point (default ``["equitable"]``).
    baseline : str or None
        Policy solved once per scenario; overheads [%] are measured against it (default
        ``cost-only``, the true cost-only optimum).
    scenarios : list of ScenarioSpec
        Default: the built-in scenario, 7 days, seed 0.
    policy_options : dict
        Options passed to the swept policies (e.g. ``model_rule``, ``solver``).
    baseline_options : dict
        Options passed to the baseline policy (e.g. ``model_rule = "free"``).
    combined_environment : bool
        One norm of ``mu_carbon C_i + mu_water W_i`` instead of two.
    total_quality : bool
        Quality cost of a region = total loss [requests] instead of the average [-].
    normalize : bool
        Apply the weights to normalised norms ``n^(1-1/q) ||v||_q`` (eqglb.defaults),
        so one weight setting means the same at every q.
    """

    q: list[float] = Field(default_factory=lambda: [parse_q(v) for v in DEFAULT_Q], min_length=1)
    weights: list[Weights] = Field(default_factory=list)
    weight_grid: WeightGrid | None = None
    policies: list[str] = Field(default_factory=lambda: ["equitable"], min_length=1)
    baseline: str | None = "cost-only"
    scenarios: list[ScenarioSpec] = Field(default_factory=lambda: [ScenarioSpec()], min_length=1)
    policy_options: dict[str, Any] = Field(default_factory=dict)
    baseline_options: dict[str, Any] = Field(default_factory=dict)
    combined_environment: bool = False
    total_quality: bool = False
    normalize: bool = True

    @field_validator("q", mode="before")
    @classmethod
    def _parse_q(cls, value: Any) -> list[float]:
        if isinstance(value, (str, int, float)):
            value = [value]
        try:
            return [parse_q(v) for v in value]
        except (TypeError, ValueError) as exc:
            raise ValueError(f'{exc}; give a list such as [1, 2, 4, 8, "inf"]') from None

    @field_validator("baseline_options")
    @classmethod
    def _baseline_rule(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("model_rule") == "weighted":
            raise ValueError(
                "model_rule = 'weighted' depends on the weights, but the "
                "baseline is solved once per scenario; use 'best' or 'free'"
            )
        return value

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_toml(cls, path: str | Path) -> SweepSpec:
        """Read a spec from a TOML file (relative scenario paths are taken from its folder).

        Raises
        ------
        SweepSpecError
            The file is missing, not TOML, or a field is invalid (the message names it).
        """
        path = Path(path)
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SweepSpecError(
                f"{path}: no such sweep spec file; give a TOML file (see docs/sweep.md)"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise SweepSpecError(f"{path}: TOML syntax error: {exc}; fix the syntax") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SweepSpecError(f"{path}: cannot read the sweep spec ({exc})") from None
        for entry in doc.get("scenarios", []) if isinstance(doc.get("scenarios"), list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                p = Path(entry["path"])
                entry["path"] = str(p if p.is_absolute() else path.parent / p)
        return cls.from_dict(doc, source=str(path))

    @classmethod
    def from_dict(cls, doc: dict[str, Any], source: str = "sweep spec") -> SweepSpec:
        """Validate a mapping; errors become :class:`SweepSpecError` naming the field."""
        try:
            return cls.model_validate(doc)
        except ValidationError as exc:
            errs = exc.errors()
            first = errs[0]
            field = ".".join(str(p) for p in first["loc"]) or "(top level)"
            more = f" (and {len(errs) - 1} more problem(s))" if len(errs) > 1 else ""
            value = first.get("input")
            shown = "" if isinstance(value, dict) else f" (got {value!r})"
            msg = str(first["msg"]).removeprefix("Value error, ")
            raise SweepSpecError(
                f"{source}: field {field!r}: {msg}{shown}{more}; "
                "fix it (see docs/sweep.md for the fields)"
            ) from None

    def weight_settings(self) -> list[Weights]:
        """The explicit weights, then the grid; the default setting when both are empty."""
        ws = list(self.weights)
        if self.weight_grid is not None:
            ws += self.weight_grid.expand()
        return list(dict.fromkeys(ws)) or [Weights()]


# --------------------------------------------------------------------------- points
def _q_json(q: float | None) -> float | str | None:
    return None if q is None else ("inf" if math.isinf(q) else float(q))


@dataclasses.dataclass(frozen=True)
class SweepPoint:
    """One grid point: a policy solved on a scenario with one q and one weight setting.

    Attributes
    ----------
    scenario : str
        Scenario label.
    fingerprint : str
        :func:`scenario_fingerprint` of the scenario.
    policy : str
    role : {"point", "baseline"}
    q : float or None
        Norm order of every term [-] (None for the baseline).
    weights : Weights or None
        Weight setting (None for the baseline, which is solved with zero weights).
    options : dict
        Policy options.
    combined_environment, total_quality : bool
    """

    scenario: str
    fingerprint: str
    policy: str
    role: str
    q: float | None
    weights: Weights | None
    options: tuple[tuple[str, Any], ...] = ()
    combined_environment: bool = False
    total_quality: bool = False
    norm_sizes: tuple[int, int] | None = None

    def canonical(self) -> dict[str, Any]:
        """What determines the result (the scenario's label does not)."""
        return {
            "format": STORE_FORMAT,
            "scenario": self.fingerprint,
            "policy": self.policy,
            "role": self.role,
            "q": _q_json(self.q),
            "weights": None if self.weights is None else self.weights.model_dump(),
            "combined_environment": self.combined_environment,
            "social_average": not self.total_quality,
            "options": dict(self.options),
            **({"normalized": list(self.norm_sizes)} if self.norm_sizes else {}),
        }

    @property
    def key(self) -> str:
        """First 20 hex digits of the SHA-256 of the canonical JSON."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def objective_fields(self) -> dict[str, Any]:
        """Keyword arguments of :class:`eqglb.costs.Objective` for this point."""
        w = self.weights or Weights(mu_social=0.0, mu_carbon=0.0, mu_water=0.0)
        q = 2.0 if self.q is None else self.q
        fields: dict[str, Any] = {
            "mu_social": float(w.mu_social or 0.0),
            "mu_carbon": w.mu_carbon,
            "mu_water": w.mu_water,
            "q_social": q,
            "q_carbon": q,
            "q_water": q,
            "combined_environment": self.combined_environment,
            "social_average": not self.total_quality,
        }
        if self.norm_sizes is not None:  # normalised norms (eqglb.defaults)
            from eqglb.costs import Objective

            o = Objective.normalized(
                *self.norm_sizes,
                mu_social=fields["mu_social"],
                mu_carbon=w.mu_carbon,
                mu_water=w.mu_water,
                q_social=q,
                q_carbon=q,
                q_water=q,
            )
            fields.update(
                mu_social=o.mu_social,
                mu_carbon=o.mu_carbon,
                mu_water=o.mu_water,
                norm_sizes=list(self.norm_sizes),
            )
        return fields


def _check_policies(spec: SweepSpec) -> None:
    from eqglb.policies import REGISTRY

    with contextlib.suppress(ImportError):
        import eqglb.online  # noqa: F401  (registers online policies)
    names = list(spec.policies) + ([spec.baseline] if spec.baseline else [])
    for name in names:
        if name not in REGISTRY:
            raise SweepSpecError(
                f"unknown policy {name!r} in the sweep; choose from {list(REGISTRY)}"
            )


def load_scenarios(spec: SweepSpec) -> list[tuple[str, Scenario]]:
    """Load every scenario of ``spec`` once, as ``(label, Scenario)`` with unique labels."""
    out: list[tuple[str, Scenario]] = []
    seen: dict[str, int] = {}
    for entry in spec.scenarios:
        for label, loader in entry.expand():
            n = seen.get(label, 0)
            seen[label] = n + 1
            out.append((label if n == 0 else f"{label}-{n + 1}", loader()))
    return out


def sweep_points(spec: SweepSpec, scenarios: Sequence[tuple[str, Scenario]]) -> list[SweepPoint]:
    """Every point of ``spec`` in a stable order: per scenario the baseline first, then
    policy x weights x q. Duplicate points (same key) are kept once."""
    points: list[SweepPoint] = []
    common: dict[str, Any] = {
        "combined_environment": spec.combined_environment,
        "total_quality": spec.total_quality,
    }
    popts = tuple(sorted(spec.policy_options.items()))
    bopts = tuple(sorted(spec.baseline_options.items()))
    for label, sc in scenarios:
        fp = scenario_fingerprint(sc)
        if spec.baseline:
            points.append(
                SweepPoint(label, fp, spec.baseline, "baseline", None, None, bopts, **common)
            )
        sizes = (len(sc.regions), len(sc.datacenters)) if spec.normalize else None
        for policy in spec.policies:
            for w in spec.weight_settings():
                if w.mu_social is None:  # the one default, resolved per scenario
                    w = w.model_copy(
                        update={
                            "mu_social": _defaults.default_mu_social(
                                sc, total_quality=spec.total_quality
                            )
                        }
                    )
                for q in spec.q:
                    points.append(
                        SweepPoint(
                            label, fp, policy, "point", q, w, popts, norm_sizes=sizes, **common
                        )
                    )
    unique: dict[str, SweepPoint] = {}
    for p in points:
        unique.setdefault(p.key, p)
    return list(unique.values())


# --------------------------------------------------------------------------- the worker
_HIGHS_QUIET = False


def _silence_highs_banner() -> None:
    """Create one HiGHS instance with stdout redirected, once per process.

    HiGHS prints a banner to the C-level stdout the first time it is created in a process;
    in a worker that would scribble over the driver's progress bar.
    """
    global _HIGHS_QUIET
    if _HIGHS_QUIET:
        return
    _HIGHS_QUIET = True
    try:
        import highspy
    except ImportError:
        return
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        del h
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None).fflush(None)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


def _solve_point(payload: dict[str, Any]) -> dict[str, Any]:
    """Solve one point and evaluate it; the single code path of every backend.

    Parameters
    ----------
    payload : dict
        ``scenario`` (Scenario), ``policy`` (registered name), ``options`` (dict of policy
        options), ``objective`` (keyword arguments of :class:`eqglb.costs.Objective`).

    Returns
    -------
    dict
        JSON-ready: ``ok``, ``status``, ``error``, ``solver``, ``solve_time_s`` [s],
        ``wall_time_s`` [s], ``energy_cost`` [USD], ``objective`` [USD], ``carbon``
        {datacenter: kg CO2}, ``water`` {datacenter: L}, ``quality`` {region: -},
        ``summary`` (the Evaluation's), ``feasible``, ``flagged``, ``warnings``, ``host``,
        ``pid``. Exceptions are caught and returned as ``ok = False`` with the error.
    """
    t0 = _time.perf_counter()
    base: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    try:
        from eqglb.costs import Objective
        from eqglb.policies import make_policy
        from eqglb.simulate import run_policy

        with contextlib.suppress(ImportError):
            import eqglb.online  # noqa: F401  (registers online policies)
        _silence_highs_banner()
        obj = Objective(**payload["objective"])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            policy = make_policy(payload["policy"], obj, **payload.get("options", {}))
            _, ev = run_policy(payload["scenario"], policy, obj)
        info = ev.info
        status = info.status if info is not None else "done"
        result = {
            "ok": True,
            "status": status,
            "error": None,
            "solver": info.solver if info is not None else None,
            "solve_time_s": info.solve_time if info is not None else None,
            "energy_cost": ev.energy_cost,
            "objective": ev.objective,
            "carbon": ev.carbon,
            "water": ev.water,
            "quality": ev.social,
            "summary": ev.summary,
            "feasible": ev.feasibility.ok(),
            "flagged": ev.flagged,
            "warnings": sorted({str(w.message) for w in caught}),
        }
    except Exception as exc:
        result = {
            "ok": False,
            "status": "error",
            "error": f"{type(exc).__name__}: {' '.join(str(exc).split())}",
            "traceback": traceback.format_exc(limit=8),
        }
    result.update(base, wall_time_s=_time.perf_counter() - t0)
    return json_ready(result, "string")


def _ray_solve(payload: dict[str, Any], scenario: Scenario) -> dict[str, Any]:
    """Ray task body: the scenario arrives as a shared object, then the common path."""
    return _solve_point({**payload, "scenario": scenario})


# --------------------------------------------------------------------------- the store
def _result_path(store: Path, key: str) -> Path:
    return store / f"{key}.json"


def _write_atomic(path: Path, record: dict[str, Any]) -> None:
    """Write JSON to a temporary file in the same folder, then rename it into place."""
    text = json.dumps(json_ready(record, "string"), indent=1, allow_nan=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read_record(store: Path, key: str) -> dict[str, Any] | None:
    """The stored record of ``key``, or None if absent or unreadable."""
    path = _result_path(store, key)
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("key") == key else None


def load_results(store_dir: str | Path, points: Sequence[SweepPoint]) -> dict[str, dict]:
    """Stored records of ``points`` keyed by point key (failed ones included)."""
    store = Path(store_dir)
    out = {}
    for p in points:
        rec = _read_record(store, p.key)
        if rec is not None:
            out[p.key] = rec
    return out


def _record(point: SweepPoint, result: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": point.key,
        "point": {**point.canonical(), "label": point.scenario},
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **result,
    }


# --------------------------------------------------------------------------- backends
def _mp_context() -> Any:
    """``forkserver`` where available (workers fork from a clean, single-threaded server
    that has imported this module), else ``spawn``."""
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["eqglb.sweep", "eqglb.policies", "eqglb.simulate"])
        return ctx
    return multiprocessing.get_context("spawn")


def _worker_died(exc: BaseException, attempts: int) -> dict[str, Any]:
    return {
        "ok": False,
        "status": "error",
        "error": f"worker died {attempts} time(s) while solving this point "
        f"({type(exc).__name__}: {exc}); run the sweep again to retry",
    }


def _terminate(ex: ProcessPoolExecutor) -> None:
    """Kill the pool's workers and cancel what is queued (finished points are stored)."""
    if hasattr(ex, "terminate_workers"):  # Python >= 3.14
        ex.terminate_workers()
        return
    for proc in list((getattr(ex, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            proc.terminate()
    ex.shutdown(wait=False, cancel_futures=True)


def _run_local(
    payloads: list[dict[str, Any]],
    workers: int,
    max_retries: int,
    on_done: Callable[[dict[str, Any], dict[str, Any]], None],
    on_retry: Callable[[dict[str, Any]], None],
) -> None:
    """Solve payloads in a process pool; restart the pool when a worker dies."""
    ctx = _mp_context()
    attempts = {p["key"]: 0 for p in payloads}
    queue = list(payloads)
    while queue:
        retry: list[dict[str, Any]] = []
        ex = ProcessPoolExecutor(
            max_workers=max(1, min(workers, len(queue))),
            mp_context=ctx,
            initializer=watch_parent,
            initargs=(os.getpid(),),
        )
        try:
            futures = {ex.submit(_solve_point, p): p for p in queue}
            for fut in as_completed(futures):
                p = futures[fut]
                try:
                    res = fut.result()
                except BrokenProcessPool as exc:
                    attempts[p["key"]] += 1
                    if attempts[p["key"]] <= max_retries:
                        retry.append(p)
                        on_retry(p)
                    else:
                        on_done(p, _worker_died(exc, attempts[p["key"]]))
                    continue
                except Exception as exc:  # e.g. a result that cannot be unpickled
                    res = {"ok": False, "status": "error", "error": f"{type(exc).__name__}: {exc}"}
                on_done(p, res)
        except BaseException:  # interrupted: stop the workers now, not after their points
            _terminate(ex)
            raise
        ex.shutdown(wait=True)
        queue = retry


def _run_ray(
    payloads: list[dict[str, Any]],
    scenarios: dict[str, Scenario],
    workers: int | None,
    address: str | None,
    max_retries: int,
    on_done: Callable[[dict[str, Any], dict[str, Any]], None],
) -> None:
    """Solve payloads as Ray tasks (``max_retries`` on worker death); start Ray if needed."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            "backend='ray' needs Ray; install it with "
            "`pip install 'eqglb[ray]'` (or `pip install 'ray[default]'`)"
        ) from exc
    import logging

    started = False
    reaper: Reaper | None = None
    if not ray.is_initialized():
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            reaper = Reaper()  # the local instance dies with this process
            with reaper.marking():
                ray.init(
                    num_cpus=workers or os.cpu_count() or 1,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
        started = True
    pending: dict[Any, dict[str, Any]] = {}
    try:
        task = ray.remote(num_cpus=1, max_retries=max_retries)(_ray_solve)
        refs = {fp: ray.put(sc) for fp, sc in scenarios.items()}
        for p in payloads:
            body = {k: v for k, v in p.items() if k != "scenario"}
            pending[task.remote(body, refs[p["fingerprint"]])] = p
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                p = pending.pop(ref)
                try:
                    res = ray.get(ref)
                except Exception as exc:  # RayTaskError, WorkerCrashedError after retries
                    res = {
                        "ok": False,
                        "status": "error",
                        "error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}",
                    }
                on_done(p, res)
    except BaseException:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()
        if reaper is not None:
            reaper.stop()


# --------------------------------------------------------------------------- the driver
@contextlib.contextmanager
def _progress(
    total: int, done: int, description: str, enabled: bool, console: Console | None
) -> Iterator[Callable[..., None]]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    con = console or Console(stderr=True, highlight=False)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=con,
        disable=not enabled,
    ) as bar:
        task = bar.add_task(description, total=total, completed=done)

        def update(advance: int = 1, message: str | None = None) -> None:
            bar.advance(task, advance)
            if message and enabled:
                bar.console.print(message, highlight=False)

        yield update


def run_sweep(
    spec: SweepSpec,
    store_dir: str | Path,
    backend: Literal["local", "ray"] = "local",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    *,
    max_retries: int = 3,
    console: Console | None = None,
    scenarios: Sequence[tuple[str, Scenario]] | None = None,
) -> pd.DataFrame:
    """Solve every point of ``spec`` not yet stored in ``store_dir``; return all results.

    Parameters
    ----------
    spec : SweepSpec
        The grid (see :class:`SweepSpec`).
    store_dir : str or Path
        Folder of the result files, one ``<key>.json`` per point (created if missing).
        Points already stored there are not solved again; failed ones are retried.
    backend : {"local", "ray"}
        ``"local"``: a process pool on this machine. ``"ray"``: Ray tasks, on a local Ray
        instance started here (and shut down afterwards) unless Ray is already initialised
        or ``address`` names a cluster.
    workers : int, optional
        Worker processes (local, default 2) or CPUs of the local Ray instance (default:
        all cores). Ignored with ``address``.
    address : str, optional
        Address of an existing Ray cluster (``"auto"``, ``"ray://host:10001"``, ...).
    progress : bool
        Show a rich progress bar over the points (on stderr, or ``console``).
    max_retries : int
        How often a point is resubmitted after its worker process died, within one run.
    console : rich.console.Console, optional
    scenarios : sequence of (label, Scenario), optional
        Scenarios built in Python, used instead of ``spec.scenarios``.

    Returns
    -------
    pandas.DataFrame
        One row per point (columns :data:`RESULT_COLUMNS`), baseline rows first per
        scenario: energy cost [USD], objective [USD], overhead versus the baseline's energy
        cost [%], max, mean, max/mean and Jain's index of carbon [kg CO2], water [L] (per
        data centre) and quality loss [-] (per region), solver status, solve and wall times
        [s], the error of a failed point.

    Raises
    ------
    SweepSpecError
        Unknown policy or backend.
    ScenarioError
        A scenario cannot be loaded.
    """
    if backend not in ("local", "ray"):
        raise SweepSpecError(f"backend = {backend!r}; use 'local' or 'ray'")
    if workers is not None and workers < 1:
        raise SweepSpecError(f"workers = {workers}; give at least 1")
    _check_policies(spec)
    store = Path(store_dir)
    store.mkdir(parents=True, exist_ok=True)
    if scenarios is None:
        scenarios = load_scenarios(spec)
    else:
        scenarios = list(scenarios)
        labels = [label for label, _ in scenarios]
        if len(set(labels)) != len(labels):
            raise SweepSpecError(
                f"scenario labels {labels} are not unique; give each scenario its own label"
            )
    by_label = dict(scenarios)
    points = sweep_points(spec, scenarios)
    stored = load_results(store, points)
    todo = [p for p in points if not (p.key in stored and stored[p.key].get("ok"))]

    payloads: list[dict[str, Any]] = []
    for p in todo:
        payloads.append(
            {
                "key": p.key,
                "fingerprint": p.fingerprint,
                "policy": p.policy,
                "options": dict(p.options),
                "objective": p.objective_fields(),
                "scenario": by_label[p.scenario],
            }
        )
    point_of = {p.key: p for p in points}
    failures: list[str] = []

    where = (
        f"ray ({address})"
        if backend == "ray" and address
        else f"{backend} x{workers or (2 if backend == 'local' else os.cpu_count())}"
    )
    with _progress(
        len(points), len(points) - len(todo), f"sweep on {where}", progress, console
    ) as update:

        def on_done(payload: dict[str, Any], result: dict[str, Any]) -> None:
            point = point_of[payload["key"]]
            _write_atomic(_result_path(store, point.key), _record(point, result))
            msg = None
            if not result.get("ok"):
                failures.append(point.key)
                msg = (
                    f"[red]failed[/] {point.scenario} {point.policy} q={_q_json(point.q)}: "
                    f"{result.get('error')}"
                )
            update(1, msg)

        def on_retry(payload: dict[str, Any]) -> None:
            update(0, f"[yellow]worker died; resubmitting[/] {payload['key']}")

        if payloads:
            if backend == "local":
                _run_local(payloads, workers or 2, max_retries, on_done, on_retry)
            else:
                fps: dict[str, Scenario] = {p["fingerprint"]: p["scenario"] for p in payloads}
                _run_ray(payloads, fps, workers, address, max_retries, on_done)

    return _frame(points, load_results(store, points))


# --------------------------------------------------------------------------- tables
def _num(x: Any) -> float:
    if x is None:
        return math.nan
    if isinstance(x, str):
        return float(x)  # "inf" / "-inf"
    return float(x)


def _frame(points: Sequence[SweepPoint], records: dict[str, dict]) -> pd.DataFrame:
    """Rows of the results DataFrame from points and their stored records."""
    base_energy: dict[str, float] = {}
    for p in points:
        rec = records.get(p.key)
        if p.role == "baseline" and rec and rec.get("ok"):
            base_energy[p.scenario] = _num(rec.get("energy_cost"))
    rows = []
    for p in points:
        rec = records.get(p.key) or {"ok": False, "status": "missing", "error": "not solved"}
        w = p.weights
        row: dict[str, Any] = {
            "scenario": p.scenario,
            "policy": p.policy,
            "role": p.role,
            "weights": w.label if w is not None else "",
            "q": math.nan if p.q is None else p.q,
            "mu_social": w.mu_social if w else math.nan,
            "mu_carbon": w.mu_carbon if w else math.nan,
            "mu_water": w.mu_water if w else math.nan,
            "status": rec.get("status"),
            "ok": bool(rec.get("ok")),
            "flagged": bool(rec.get("flagged", not rec.get("ok"))),
            "energy_cost": _num(rec.get("energy_cost")),
            "objective": _num(rec.get("objective")) if p.role == "point" else math.nan,
            "baseline_energy_cost": base_energy.get(p.scenario, math.nan),
            "solver": rec.get("solver"),
            "solve_time_s": _num(rec.get("solve_time_s")),
            "wall_time_s": _num(rec.get("wall_time_s")),
            "error": rec.get("error"),
            "key": p.key,
        }
        b = row["baseline_energy_cost"]
        row["energy_overhead_pct"] = (
            100.0 * (row["energy_cost"] - b) / abs(b) if b and math.isfinite(b) else math.nan
        )
        summary = rec.get("summary") or {}
        for prefix, key, _, _ in _COSTS:
            s = summary.get(key) or {}
            for m in ("max", "mean", "max_over_mean", "jain"):
                row[f"{prefix}_{m}"] = _num(s.get(m))
        totals = summary.get("totals") or {}
        row["carbon_total"] = _num(totals.get("carbon"))
        row["water_total"] = _num(totals.get("water"))
        row["mean_quality_loss"] = _num(totals.get("mean_quality_loss"))
        rows.append(row)
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def frontier_table(df: pd.DataFrame) -> pd.DataFrame:
    """The trade-off frontier: energy cost versus max/mean of each regional cost.

    One row per point (baselines first within a scenario), sorted by scenario, policy,
    weight setting and increasing q. Columns :data:`FRONTIER_COLUMNS`: energy cost [USD],
    its overhead versus the baseline [%], max/mean of carbon, water and quality loss [-].
    """
    f = df.loc[:, [c for c in FRONTIER_COLUMNS]].copy()
    f["_base"] = (df["role"] != "baseline").astype(int)
    f = f.sort_values(
        ["scenario", "_base", "policy", "weights", "q"], kind="stable", na_position="first"
    )
    return f.drop(columns="_base").reset_index(drop=True)


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:.{digits}g}"


def render_frontier(frontier: pd.DataFrame, title: str = "trade-off frontier") -> Table:
    """A rich table of :func:`frontier_table`'s output (units in the headers)."""
    from rich.markup import escape
    from rich.table import Table

    # columns with one value throughout (one scenario, one policy) go to the caption
    show_scen = frontier["scenario"].nunique() > 1
    show_pol = frontier.loc[frontier["weights"] != "", "policy"].nunique() > 1
    caption = []
    if not show_scen and len(frontier):
        caption.append(f"scenario {frontier['scenario'].iloc[0]}")
    if not show_pol and (frontier["weights"] != "").any():
        caption.append(f"policy {frontier.loc[frontier['weights'] != '', 'policy'].iloc[0]}")
    tab = Table(
        title=title + (f" ({', '.join(caption)})" if caption else ""),
        title_justify="left",
        header_style="bold",
    )
    heads = (
        ([("scenario", "left")] if show_scen else [])
        + [("policy", "left")]
        + [
            ("mu_s/mu_c/mu_w", "left"),
            ("q", "right"),
            ("energy [USD]", "right"),
            ("overhead [%]", "right"),
            ("carbon max/mean", "right"),
            ("water max/mean", "right"),
            ("quality max/mean", "right"),
            ("status", "left"),
        ]
    )
    for h, justify in heads:
        tab.add_column(h, justify=justify, no_wrap=h in ("scenario", "mu_s/mu_c/mu_w"))  # type: ignore[arg-type]
    for r in frontier.itertuples(index=False):
        q = "-" if math.isnan(r.q) else ("inf" if math.isinf(r.q) else f"{r.q:g}")
        status = str(r.status)
        weights = str(r.weights).replace("mu_s=", "").replace(" mu_c=", "/").replace(" mu_w=", "/")
        cells = [escape(str(r.scenario))] if show_scen else []
        cells += [
            escape(str(r.policy)) + (" (baseline)" if not weights else ""),
            escape(weights),
            q,
            _fmt(r.energy_cost, 6),
            _fmt(r.energy_overhead_pct, 3),
            _fmt(r.carbon_max_over_mean),
            _fmt(r.water_max_over_mean),
            _fmt(r.quality_max_over_mean),
            escape(status) if status == "optimal" else f"[red]{escape(status)}[/]",
        ]
        tab.add_row(*cells)
    return tab


def plot_frontier(df: pd.DataFrame, path: str | Path, *, dpi: int = 120) -> Path:
    """PNG of the frontier: max/mean of carbon, water and quality loss against overhead.

    Three panels sharing the x axis (energy-cost overhead versus the baseline [%], or the
    energy cost [USD] when the sweep has no baseline); one
    line per (scenario, policy, weight setting) through its points in increasing q, each
    point labelled with its q; the baseline is a black star at its own overhead (0 %).

    Raises
    ------
    ImportError
        If matplotlib is not installed (``pip install 'eqglb[plot]'``).
    """
    from eqglb.report import new_figure

    fig = new_figure("plot_frontier", (7.5, 9.0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok = df[df["ok"]]

    axes = fig.subplots(3, 1, sharex=True)
    # without a baseline there is no overhead: plot the energy cost itself
    xcol = "energy_overhead_pct" if ok["energy_overhead_pct"].notna().any() else "energy_cost"
    xlabel = (
        "energy-cost overhead vs baseline [%]"
        if xcol == "energy_overhead_pct"
        else "energy cost [USD]"
    )
    n_scen = ok["scenario"].nunique()
    n_pol = ok.loc[ok["role"] == "point", "policy"].nunique()
    for ax, (prefix, _, label, _) in zip(axes, _COSTS, strict=True):
        col = f"{prefix}_max_over_mean"
        lines = ok[ok["role"] == "point"].groupby(["scenario", "policy", "weights"], sort=False)
        for (scen, pol, wl), g in lines:
            g = g.sort_values("q")
            name = " ".join(
                s for s, show in ((scen, n_scen > 1), (pol, n_pol > 1), (wl, True)) if show
            )
            (ln,) = ax.plot(g[xcol], g[col], marker="o", label=name)
            for x, y, q in zip(g[xcol], g[col], g["q"], strict=True):
                ax.annotate(
                    "q=inf" if math.isinf(q) else f"q={q:g}",
                    (x, y),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                    color=ln.get_color(),
                )
        base = ok[ok["role"] == "baseline"]
        for i, (_, b) in enumerate(base.iterrows()):
            ax.plot(
                [b[xcol]],
                [b[col]],
                marker="*",
                markersize=11,
                color="black",
                linestyle="none",
                label=f"baseline ({b['policy']})" if i == 0 else None,
            )
        ax.set_ylabel(f"{label} max/mean [-]")
        ax.grid(alpha=0.3)
    axes[0].set_title("trade-off frontier: equity of regional costs vs energy cost")
    axes[0].legend(fontsize="small", loc="best")
    axes[-1].set_xlabel(xlabel)
    fig.savefig(path, dpi=dpi)
    return path


def write_outputs(df: pd.DataFrame, out_dir: str | Path, *, plot: bool = True) -> dict[str, Path]:
    """Write ``results.csv`` (every column), ``frontier.csv`` and ``frontier.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": out / "results.csv", "frontier_csv": out / "frontier.csv"}
    df.to_csv(paths["results"], index=False)
    frontier_table(df).to_csv(paths["frontier_csv"], index=False)
    if plot:
        paths["frontier_png"] = plot_frontier(df, out / "frontier.png")
    return paths


# --------------------------------------------------------------------------- command line
_o = typer.Option
SpecOpt = Annotated[
    Path | None,
    _o(
        "--spec",
        metavar="FILE",
        help="Sweep specification (TOML, see docs/sweep.md). Options "
        "given below override its fields.",
    ),
]
QListOpt = Annotated[
    list[str] | None,
    _o(
        "--q",
        metavar="Q",
        help="Norm order q >= 1 of every equity term, or 'inf'; repeat for "
        "several. Default: 1 2 4 8 inf.",
    ),
]
MuSocialListOpt = Annotated[
    list[float] | None,
    _o(
        "--mu-social",
        min=0.0,
        metavar="USD",
        help="Weight of the quality-loss norm [USD per unit "
        "of average quality loss per request]; repeat for a grid. Default: the quality value "
        f"{_defaults.DEFAULT_QUALITY_VALUE:g} USD per request x mean requests per region "
        "(eqglb.defaults).",
    ),
]
MuCarbonListOpt = Annotated[
    list[float] | None,
    _o(
        "--mu-carbon",
        min=0.0,
        metavar="USD/KG",
        help="Weight of the carbon norm [USD/kg CO2]; "
        f"repeat for a grid. Default: {DEFAULT_MU_CARBON:g}.",
    ),
]
MuWaterListOpt = Annotated[
    list[float] | None,
    _o(
        "--mu-water",
        min=0.0,
        metavar="USD/L",
        help=f"Weight of the water norm [USD/L]; repeat for a grid. Default: {DEFAULT_MU_WATER:g}.",
    ),
]
PolicyListOpt = Annotated[
    list[str] | None,
    _o(
        "--policy",
        "-p",
        metavar="NAME",
        help="Policy solved at every point; repeat for several. Default: equitable.",
    ),
]
BaselineNameOpt = Annotated[
    str | None,
    _o(
        "--baseline",
        metavar="POLICY",
        help="Policy solved once per scenario; the energy-cost "
        "overhead [%] is measured against it ('none': no baseline). Default: energy.",
    ),
]
SweepDaysOpt = Annotated[
    int | None,
    _o(
        "--days",
        min=1,
        metavar="N",
        help=f"Horizon of the built-in scenario [days]. Default: {DEFAULT_DAYS}.",
    ),
]
SeedListOpt = Annotated[
    list[int] | None,
    _o(
        "--seed",
        min=0,
        metavar="SEED",
        help="Seed of the built-in scenario; repeat for several scenarios. Default: 0.",
    ),
]
ScenarioListOpt = Annotated[
    list[Path] | None,
    _o(
        "--scenario",
        "-s",
        metavar="DIR",
        help="Scenario folder (scenario.toml + tables); repeat "
        "for several. Default: the built-in scenario.",
    ),
]
BackendOpt = Annotated[
    str,
    _o(
        "--backend",
        metavar="local|ray",
        help="Where points are solved: local worker processes, "
        "or Ray tasks (a local Ray instance started on demand, or the cluster at --address).",
    ),
]
AddressOpt = Annotated[
    str | None,
    _o(
        "--address",
        metavar="ADDR",
        help="Address of an existing Ray cluster, e.g. 'auto' or "
        "'ray://host:10001' (with --backend ray).",
    ),
]
WorkersOpt = Annotated[
    int | None,
    _o(
        "--workers",
        min=1,
        metavar="N",
        help="Worker processes (local; default 2) or CPUs of the "
        "local Ray instance (default: all cores).",
    ),
]
RetriesOpt = Annotated[
    int,
    _o(
        "--max-retries",
        min=0,
        metavar="N",
        help="Resubmissions of a point whose worker process died.",
    ),
]
SweepOutOpt = Annotated[
    Path,
    _o(
        "--out",
        "-o",
        metavar="DIR",
        help="Output folder: points/ (one result file per point, "
        "reused by the next run), results.csv, frontier.csv, frontier.png.",
    ),
]
PlotOpt = Annotated[bool, _o("--plot/--no-plot", help="Write frontier.png.")]
ProgressOpt = Annotated[bool, _o("--progress/--no-progress", help="Show a progress bar on stderr.")]


def sweep_command(
    spec: SpecOpt = None,
    q: QListOpt = None,
    mu_social: MuSocialListOpt = None,
    mu_carbon: MuCarbonListOpt = None,
    mu_water: MuWaterListOpt = None,
    policy: PolicyListOpt = None,
    baseline: BaselineNameOpt = None,
    days: SweepDaysOpt = None,
    seed: SeedListOpt = None,
    scenario: ScenarioListOpt = None,
    backend: BackendOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
    max_retries: RetriesOpt = 3,
    out: SweepOutOpt = Path("eqglb-sweep"),
    plot: PlotOpt = True,
    progress: ProgressOpt = True,
) -> None:
    """Sweep q and weights; print the trade-off frontier; write results under --out.

    Each point solves a policy (default: equitable) with one norm order q for every term
    and one weight setting; a baseline policy (default: energy) is solved once per
    scenario and the energy-cost overhead [%] is measured against it. Results are stored
    per point under OUT/points as they complete, so running the same command again
    resumes an interrupted sweep. Writes OUT/results.csv, OUT/frontier.csv and
    OUT/frontier.png.
    """
    from rich.console import Console
    from rich.markup import escape

    sweep = _spec_from_options(
        spec,
        q=q,
        mu_social=mu_social,
        mu_carbon=mu_carbon,
        mu_water=mu_water,
        policy=policy,
        baseline=baseline,
        days=days,
        seed=seed,
        scenario=scenario,
    )
    if backend not in ("local", "ray"):
        raise SweepSpecError(f"--backend {backend!r}; use 'local' or 'ray'")
    err = Console(stderr=True, highlight=False)
    con = Console(highlight=False)
    if not con.is_terminal and "COLUMNS" not in os.environ:
        con = Console(highlight=False, width=150)
    store = Path(out) / "points"
    df = run_sweep(
        sweep,
        store,
        backend=backend,  # type: ignore[arg-type]
        workers=workers,
        address=address,
        progress=progress,
        max_retries=max_retries,
        console=err,
    )
    con.print(render_frontier(frontier_table(df), title=f"trade-off frontier, {len(df)} points"))
    con.print(
        "[dim]overhead: energy cost versus the baseline \\[%]; max/mean: peak-to-average "
        "ratio of carbon and water per data centre and of quality loss per region "
        "\\[-][/]"
    )
    paths = write_outputs(df, out, plot=plot)
    con.print(
        f"wrote {', '.join(escape(str(p)) for p in paths.values())} and "
        f"{len(df)} point files under {escape(str(store))}"
    )
    n_bad = int((~df["ok"]).sum())
    if n_bad:
        err.print(
            f"[red]{n_bad} point(s) failed[/] (see the error column of results.csv); "
            "run the same command again to retry them"
        )
        raise typer.Exit(1)


def _spec_from_options(
    spec: Path | None,
    *,
    q: list[str] | None = None,
    mu_social: list[float] | None = None,
    mu_carbon: list[float] | None = None,
    mu_water: list[float] | None = None,
    policy: list[str] | None = None,
    baseline: str | None = None,
    days: int | None = None,
    seed: list[int] | None = None,
    scenario: list[Path] | None = None,
) -> SweepSpec:
    """The spec file's fields (if any), overridden by the options that were given."""
    doc: dict[str, Any] = {}
    if spec is not None:
        doc = SweepSpec.from_toml(spec).model_dump(exclude_unset=True)
    if q:
        doc["q"] = q
    if mu_social or mu_carbon or mu_water:
        doc["weights"] = []
        doc["weight_grid"] = {
            k: v
            for k, v in (("mu_social", mu_social), ("mu_carbon", mu_carbon), ("mu_water", mu_water))
            if v
        }
    if policy:
        doc["policies"] = policy
    if baseline is not None:
        doc["baseline"] = None if baseline.strip().lower() in ("", "none") else baseline
    if scenario:
        doc["scenarios"] = [{"path": str(p)} for p in scenario]
    elif days is not None or seed:
        entry: dict[str, Any] = {}
        if days is not None:
            entry["days"] = days
        if seed:
            entry["seeds"] = seed
        doc["scenarios"] = [entry]
    return SweepSpec.from_dict(doc, source=str(spec) if spec else "command-line options")


#: A typer app whose single command is :func:`sweep_command`. The main CLI registers the
#: command with ``app.command("sweep")(sweep_command)``.
sweep_app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Trade-off sweeps over q and weights (see docs/sweep.md).",
)
sweep_app.command("sweep")(sweep_command)
