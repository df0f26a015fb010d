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
(payload -> result dict), run by the one executor of eqglb
(:class:`eqglb._workers.Executor`): ``backend="process"`` (default) in a process pool
(``forkserver`` start method, so workers fork from a clean single-threaded server that
has the solvers imported), ``"serial"`` in this process, ``"ray"`` as Ray tasks with
``max_retries`` on a local Ray instance started on demand, or on an existing cluster
given by ``address`` (each scenario is put once in Ray's object store). ``"local"`` is
the deprecated name of ``"process"``.

Resuming
--------
The driver writes each point's result as soon as it completes, one JSON file per point
``<store_dir>/<key>.json`` (written to a temporary file, then ``os.replace``: a file is
either complete or absent). The key is a hash of the point's canonical JSON, which
includes a fingerprint of the scenario's numbers, so a changed scenario is never matched
with stale results. Running the same sweep again skips points whose file holds a result;
points recorded as failed (with their error) are retried. A worker process that dies
(killed, out of memory) breaks only the points in flight: the process backend restarts
its pool and resubmits them (up to ``max_retries`` times), Ray retries the task itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import os
import socket
import time as _time
import tomllib
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from eqglb import defaults as _defaults
from eqglb._json import json_ready, write_json
from eqglb._workers import Executor, check_backend, resolve, silence_highs_banner
from eqglb.burdens import BURDENS
from eqglb.errors import SweepSpecError
from eqglb.metrics import parse_q
from eqglb.scenario import Scenario, scenario_fingerprint

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
    "spec_from_options",
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
    *(f"mu_{name}" for name in BURDENS),
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


# --------------------------------------------------------------------------- specification
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _shown(values: dict[str, Any]) -> list[str]:
    """Burdens a weight setting names (label, key): every burden but those not priced by
    default (health) that it does not price either, so that earlier sweeps keep their
    keys."""
    return [
        n
        for n, b in BURDENS.items()
        if b.side == "region" or _defaults.default_mu(n) != 0 or values.get(n)
    ]


class _WeightsBase(_Model):
    """One weight setting of the objective: ``mu_<burden>`` for every burden of
    :data:`eqglb.burdens.BURDENS` [its weight unit]; ``mu_social`` None = the default of
    :mod:`eqglb.defaults` (quality value x mean requests per region, per scenario)."""

    def mu(self, name: str) -> float | None:
        """Weight of burden ``name``."""
        value: float | None = getattr(self, f"mu_{name}")
        return value

    def values(self) -> dict[str, float | None]:
        """``{burden: weight}`` of every burden."""
        return {n: self.mu(n) for n in BURDENS}

    def canonical(self) -> dict[str, float | None]:
        """What enters a point's key: ``mu_<burden>`` of the burdens it names."""
        v = self.values()
        return {f"mu_{n}": v[n] for n in _shown(v)}

    @property
    def label(self) -> str:
        """Short label, e.g. ``mu_s=1e+06 mu_c=0.5 mu_w=0.05``."""
        v = self.values()
        parts = []
        for n in _shown(v):
            x = v[n]
            parts.append(
                f"mu_{BURDENS[n].symbol.lower()}=" + ("default" if x is None else f"{x:g}")
            )
        return " ".join(parts)


def _weight_type(name: str) -> Any:
    if BURDENS[name].side == "region":
        return float | None
    return float


def _weight_default(name: str) -> float | None:
    return None if BURDENS[name].side == "region" else _defaults.default_mu(name)


if TYPE_CHECKING:
    Weights = _WeightsBase
else:
    Weights = create_model(
        "Weights",
        __base__=_WeightsBase,
        __module__=__name__,
        **{
            f"mu_{n}": (
                _weight_type(n),
                Field(default=_weight_default(n), ge=0, allow_inf_nan=False),
            )
            for n in BURDENS
        },
    )
    Weights.__doc__ = _WeightsBase.__doc__


class _WeightGridBase(_Model):
    """Cartesian grid of weights: ``mu_<burden>`` a list for every burden; each list
    defaults to the single default value."""

    def expand(self) -> list[_WeightsBase]:
        """Every combination, the first burden (mu_social) varying slowest."""
        lists = [getattr(self, f"mu_{n}") for n in BURDENS]
        return [
            Weights(**{f"mu_{n}": v for n, v in zip(BURDENS, combo, strict=True)})
            for combo in itertools.product(*lists)
        ]


if TYPE_CHECKING:
    WeightGrid = _WeightGridBase
else:
    WeightGrid = create_model(
        "WeightGrid",
        __base__=_WeightGridBase,
        __module__=__name__,
        **{
            f"mu_{n}": (
                list[Annotated[_weight_type(n), Field(ge=0, allow_inf_nan=False)]],
                Field(
                    default_factory=functools.partial(lambda d: [d], _weight_default(n)),
                    min_length=1,
                ),
            )
            for n in BURDENS
        },
    )
    WeightGrid.__doc__ = _WeightGridBase.__doc__


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
        Norm orders swept [-], each >= 1 (one q for every term of a point, but those of
        ``q_terms``).
    q_terms : dict burden -> float or "inf"
        A fixed norm order for some terms at every point (e.g. ``{carbon = "inf"}``).
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
    q_terms: dict[str, float] = Field(default_factory=dict)
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

    @field_validator("q_terms", mode="before")
    @classmethod
    def _parse_q_terms(cls, value: Any) -> dict[str, float]:
        if not isinstance(value, dict):
            raise ValueError('give a table of burden = q, e.g. {carbon = "inf"}')
        out = {}
        for name, q in value.items():
            if name not in BURDENS:
                raise ValueError(f"unknown burden {name!r}; use one of {', '.join(BURDENS)}")
            try:
                out[name] = parse_q(q)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}: {exc}") from None
        return out

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
    q_terms: tuple[tuple[str, float], ...] = ()

    def canonical(self) -> dict[str, Any]:
        """What determines the result (the scenario's label does not)."""
        return {
            "format": STORE_FORMAT,
            "scenario": self.fingerprint,
            "policy": self.policy,
            "role": self.role,
            "q": _q_json(self.q),
            "weights": None if self.weights is None else self.weights.canonical(),
            "combined_environment": self.combined_environment,
            "social_average": not self.total_quality,
            "options": dict(self.options),
            **({"normalized": list(self.norm_sizes)} if self.norm_sizes else {}),
            **({"q_terms": {k: _q_json(v) for k, v in self.q_terms}} if self.q_terms else {}),
        }

    @property
    def key(self) -> str:
        """First 20 hex digits of the SHA-256 of the canonical JSON."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def objective_fields(self) -> dict[str, Any]:
        """Keyword arguments of :class:`eqglb.costs.Objective` for this point."""
        w = self.weights or Weights(**{f"mu_{n}": 0.0 for n in BURDENS})
        q = 2.0 if self.q is None else self.q
        fixed = dict(self.q_terms)
        mus = {f"mu_{n}": float(w.mu(n) or 0.0) for n in BURDENS}
        qs = {f"q_{n}": fixed.get(n, q) for n in BURDENS}
        fields: dict[str, Any] = {
            **mus,
            **qs,
            "combined_environment": self.combined_environment,
            "social_average": not self.total_quality,
        }
        if self.norm_sizes is not None:  # normalised norms (eqglb.defaults)
            from eqglb.costs import Objective

            n_region, n_datacenter = self.norm_sizes
            o = Objective.normalized(n_region, n_datacenter, **mus, **qs)
            fields.update({f"mu_{n}": o.terms[n].mu for n in BURDENS})
            fields["norm_sizes"] = list(self.norm_sizes)
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
    fixed = tuple(sorted(spec.q_terms.items()))
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
                if w.mu("social") is None:  # the one default, resolved per scenario
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
                            label,
                            fp,
                            policy,
                            "point",
                            q,
                            w,
                            popts,
                            norm_sizes=sizes,
                            q_terms=fixed,
                            **common,
                        )
                    )
    unique: dict[str, SweepPoint] = {}
    for p in points:
        unique.setdefault(p.key, p)
    return list(unique.values())


# --------------------------------------------------------------------------- the worker
def _solve_point(payload: dict[str, Any]) -> dict[str, Any]:
    """Solve one point and evaluate it; the single code path of every backend.

    Parameters
    ----------
    payload : dict
        ``scenario`` (Scenario, or its :meth:`eqglb._workers.Executor.share` handle),
        ``policy`` (registered name), ``options`` (dict of policy options), ``objective``
        (keyword arguments of :class:`eqglb.costs.Objective`).

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
        silence_highs_banner()
        obj = Objective(**payload["objective"])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            policy = make_policy(payload["policy"], obj, **payload.get("options", {}))
            _, ev = run_policy(resolve(payload["scenario"]), policy, obj)
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


# --------------------------------------------------------------------------- the store
def _result_path(store: Path, key: str) -> Path:
    return store / f"{key}.json"


def _write_atomic(path: Path, record: dict[str, Any]) -> None:
    """Write a record (standard JSON, infinities as strings) atomically and durably."""
    write_json(path, record, indent=1, fsync=True)


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
#: Modules the forkserver imports once, so that every worker forks with them loaded.
_PRELOAD = ("eqglb.sweep", "eqglb.policies", "eqglb.simulate")


def _failed(exc: BaseException) -> dict[str, Any]:
    """The result of a point whose task raised (in the executor, not in the solve)."""
    return {
        "ok": False,
        "status": "error",
        "error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}",
    }


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
    backend: str = "process",
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
    backend : {"process", "serial", "ray"}
        ``"process"``: a process pool on this machine; ``"serial"``: this process;
        ``"ray"``: Ray tasks, on a local Ray instance started here (and shut down
        afterwards) unless Ray is already initialised or ``address`` names a cluster
        (:class:`eqglb._workers.Executor`). ``"local"``: deprecated name of ``"process"``.
    workers : int, optional
        Worker processes (process, default 2) or CPUs of the local Ray instance (default:
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
    try:
        backend = check_backend(backend)
    except ValueError as exc:
        raise SweepSpecError(str(exc)) from None
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

    if workers is None:
        workers = {"serial": 1, "process": 2}.get(backend, os.cpu_count() or 1)
    where = f"ray ({address})" if backend == "ray" and address else f"{backend} x{workers}"
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

        def on_retry(index: int) -> None:
            update(0, f"[yellow]worker died; resubmitting[/] {payloads[index]['key']}")

        if payloads:
            with Executor(
                backend,
                workers,
                address=address,
                start_method="forkserver",
                preload=_PRELOAD,
                max_retries=max_retries,
            ) as ex:
                shared: dict[str, Any] = {}
                for body in payloads:  # each scenario once in Ray's object store
                    fp = body["fingerprint"]
                    if fp not in shared:
                        shared[fp] = ex.share(body["scenario"])
                    body["scenario"] = shared[fp]
                for i, res, error in ex.as_completed(_solve_point, payloads, on_retry):
                    on_done(payloads[i], res if error is None else _failed(error))

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
            **{f"mu_{n}": (w.mu(n) if w else math.nan) for n in BURDENS},
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


def _weight_keys(labels: Any) -> list[str]:
    """The ``mu_x`` names in weight labels (``mu_s=1 mu_c=2 mu_w=3``), in registry order."""
    found = {part.split("=")[0] for label in labels for part in str(label).split()}
    keys = [f"mu_{b.symbol.lower()}" for b in BURDENS.values()]
    return [k for k in keys if k in found] or keys[:3]


def _weights_cell(label: str, keys: Sequence[str]) -> str:
    """``1/2/3`` from ``mu_s=1 mu_c=2 mu_w=3`` (``-`` for a key the label lacks)."""
    if not label:
        return ""
    values = dict(part.split("=", 1) for part in label.split())
    return "/".join(values.get(k, "-") for k in keys)


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
    weight_keys = _weight_keys(frontier["weights"])
    weights_head = "/".join(weight_keys)
    heads = (
        ([("scenario", "left")] if show_scen else [])
        + [("policy", "left")]
        + [
            (weights_head, "left"),
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
        tab.add_column(h, justify=justify, no_wrap=h in ("scenario", weights_head))  # type: ignore[arg-type]
    for r in frontier.itertuples(index=False):
        q = "-" if math.isnan(r.q) else ("inf" if math.isinf(r.q) else f"{r.q:g}")
        status = str(r.status)
        weights = _weights_cell(str(r.weights), weight_keys)
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


# --------------------------------------------------------------------------- options
def spec_from_options(
    spec: str | Path | None = None,
    *,
    q: Sequence[str | float] | None = None,
    mu: dict[str, Sequence[float] | None] | None = None,
    q_terms: dict[str, str | float | None] | None = None,
    combined_environment: bool | None = None,
    total_quality: bool | None = None,
    normalize: bool | None = None,
    policy: Sequence[str] | None = None,
    baseline: str | None = None,
    days: int | None = None,
    seed: Sequence[int] | None = None,
    scenario: Sequence[Path] | None = None,
) -> SweepSpec:
    """The spec file's fields (if any), overridden by the options that were given.

    ``mu`` maps a burden to the weights to sweep (a grid over the burdens given, which
    replaces the file's weights); ``q_terms`` a burden to a fixed norm order; None or an
    empty list leaves the file's value. ``baseline`` ``"none"`` means no baseline.
    """
    doc: dict[str, Any] = {}
    if spec is not None:
        doc = SweepSpec.from_toml(spec).model_dump(exclude_unset=True)
    if q:
        doc["q"] = list(q)
    grid = {f"mu_{n}": list(v) for n, v in (mu or {}).items() if v}
    if grid:
        doc["weights"] = []
        doc["weight_grid"] = grid
    fixed = {n: v for n, v in (q_terms or {}).items() if v is not None}
    if fixed:
        doc["q_terms"] = {**doc.get("q_terms", {}), **fixed}
    for key, value in (
        ("combined_environment", combined_environment),
        ("total_quality", total_quality),
        ("normalize", normalize),
    ):
        if value is not None:
            doc[key] = value
    if policy:
        doc["policies"] = list(policy)
    if baseline is not None:
        doc["baseline"] = None if baseline.strip().lower() in ("", "none") else baseline
    if scenario:
        doc["scenarios"] = [{"path": str(p)} for p in scenario]
    elif days is not None or seed:
        entry: dict[str, Any] = {}
        if days is not None:
            entry["days"] = days
        if seed:
            entry["seeds"] = list(seed)
        doc["scenarios"] = [entry]
    return SweepSpec.from_dict(doc, source=str(spec) if spec else "command-line options")
