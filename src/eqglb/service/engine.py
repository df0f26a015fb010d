"""The dispatch engine behind the HTTP service: one online policy fed slot by slot.

The engine owns the policy, checks each submitted slot against the scenario (names,
order of time, feasibility), asks the policy for the slot's routing, accounts the slot's
costs and turns the routing into integer load-balancer weights. It knows nothing of HTTP;
:mod:`eqglb.service.app` drives it from one thread, so slots are decided strictly one
after another.

The static data (names, allowed routes, energy and capacity per request, quality loss,
capacity mode) comes from a validated :class:`~eqglb.scenario.Scenario`, validated once at
start. Per slot only the submitted signals are checked, by pydantic (finite numbers in
range, :mod:`eqglb.service.schemas`) and here (names, order, feasibility): no Scenario is
built per request.

Cost coefficients of a slot are those of :func:`eqglb.costs.coefficients` for one slot
(``energy_cost = pue price eps``, ``carbon = ci pue eps``, ``water = (wue + pue ewif)
eps``); a test checks that both agree.

Policies see a :class:`LiveView`: the attributes of :class:`eqglb.online.SlotView` with
only the current slot's signals held (a live stream keeps no history in memory); reading
an earlier slot raises ``LookupError``, a later one :class:`~eqglb.online.simulator.
CausalityError`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eqglb._json import json_ready
from eqglb.costs import Objective
from eqglb.metrics import summarize
from eqglb.online.simulator import FEASIBILITY_TOL, SIGNALS, CausalityError
from eqglb.online.state import objective_to_config
from eqglb.scenario import Scenario, ScenarioError
from eqglb.service.schemas import TIME_MAX, TIME_MIN, TIME_RANGE_TEXT, SlotIn
from eqglb.service.store import SlotRow, Store, StoreCorruptError, StoreError

__all__ = [
    "STATE_FORMAT",
    "Engine",
    "LiveView",
    "Outcome",
    "ServiceConfig",
    "ServiceConfigError",
    "largest_remainder",
    "make_online_policy",
]

STATE_FORMAT = "eqglb.service.state"
STATE_VERSION = 1
#: Shares of a region's requests below this are left out of the routing listing [-].
MIN_FRACTION = 1e-12
_ADDRESS_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_[]:")


class ServiceConfigError(ScenarioError):
    """Invalid service configuration (weights, addresses, policy), naming the option."""


# --------------------------------------------------------------------------- helpers
def largest_remainder(fractions: np.ndarray, total: int) -> np.ndarray:
    """Integer weights proportional to ``fractions`` that sum to exactly ``total``.

    Hamilton's largest-remainder rounding along the last axis: each entry gets
    ``floor(total * f)``, and the units left over go to the largest remainders (ties to
    the lower index). Every weight is within 1 of ``total * f``.

    Parameters
    ----------
    fractions : array (..., n)
        Non-negative shares; each row is normalised to sum to 1 (a row of zeros gives
        zeros) [-].
    total : int
        Sum of each row's weights.

    Returns
    -------
    int array (..., n)
    """
    f = np.asarray(fractions, dtype=float)
    s = f.sum(axis=-1, keepdims=True)
    scaled = np.divide(f * total, s, out=np.zeros_like(f), where=s > 0)
    base = np.floor(scaled)
    left = total - base.sum(axis=-1, keepdims=True)  # units still to hand out
    left[s <= 0] = 0
    order = np.argsort(base - scaled, axis=-1, kind="stable")  # largest remainder first
    rank = np.argsort(order, axis=-1, kind="stable")
    return (base + (rank < left)).astype(np.int64)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso(ns: int) -> str:
    """ISO 8601 UTC text of a time [ns since the epoch] (microsecond resolution)."""
    dt = _EPOCH + timedelta(microseconds=ns // 1000)
    return dt.isoformat().replace("+00:00", "Z")


def _time_ns(t: datetime) -> int:
    """A datetime (naive = UTC) as ns since the epoch."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return (t - _EPOCH) // timedelta(microseconds=1) * 1000


#: Accepted slot start times [ns since the epoch], half-open (see schemas.TIME_MIN/MAX).
TIME_MIN_NS = _time_ns(TIME_MIN)
TIME_MAX_NS = _time_ns(TIME_MAX)


def _numpy_default(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"{type(x).__name__} is not JSON serializable")


try:  # orjson (optional) encodes several times faster than the standard library
    import orjson

    def _dumps(x: Any) -> str:
        """Compact JSON with sorted keys (orjson would write NaN as null: values passed
        here are finite by construction, policy states are checked)."""
        return orjson.dumps(
            x, default=_numpy_default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_SORT_KEYS
        ).decode()
except ImportError:  # pragma: no cover - depends on the installation

    def _dumps(x: Any) -> str:
        """Compact JSON with sorted keys; NaN/inf refused."""
        return json.dumps(
            x, separators=(",", ":"), allow_nan=False, sort_keys=True, default=_numpy_default
        )


def _all_finite(x: Any) -> bool:
    """True when no number inside ``x`` (nested dicts and lists) is NaN or infinite."""
    t = type(x)
    if t is float:
        return math.isfinite(x)
    if t is str or t is int or t is bool or x is None:
        return True
    if t is dict:
        return all(map(_all_finite, x.values()))
    if t is list or t is tuple:
        if x and type(x[0]) is float:
            try:
                return bool(np.isfinite(np.asarray(x, dtype=float)).all())
            except (TypeError, ValueError):  # ragged or mixed: element by element
                pass
        return all(map(_all_finite, x))
    if isinstance(x, np.ndarray):
        return x.dtype.kind not in "fc" or bool(np.isfinite(x).all())
    if isinstance(x, np.floating):
        return bool(np.isfinite(x))
    return True


def _policy_json(state: Any, name: str) -> str:
    """A policy's state as JSON; NaN and infinities are refused (JSON cannot hold them)."""
    if not _all_finite(state):
        raise ValueError(
            f"policy {name!r} returned a state with NaN or infinite values; it cannot be stored"
        )
    return _dumps(state)


def make_online_policy(name: str, objective: Objective) -> Any:
    """An online policy by name: ``"online"`` is :class:`eqglb.online.OnlineDMD`; other
    names are looked up in :data:`eqglb.policies.REGISTRY` and must have ``decide``."""
    if name in ("online", "dmd"):
        from eqglb.online import OnlineDMD

        return OnlineDMD(objective=objective, name=name)
    from eqglb.policies import make_policy

    try:
        pol = make_policy(name, objective)
    except ValueError as exc:
        raise ServiceConfigError(f"--policy {name!r}: {exc}; the service runs 'online'") from None
    if not callable(getattr(pol, "decide", None)):
        raise ServiceConfigError(
            f"--policy {name!r} is an offline policy (plan); the service "
            "needs an online policy with decide(view), e.g. 'online'"
        )
    return pol


# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class ServiceConfig:
    """What the service serves: a scenario's static data, an objective and a policy.

    Parameters
    ----------
    scenario : Scenario
        Names, allowed routes, energy and capacity per request, quality loss and capacity
        mode. Its first slot gives the initial ``pue``, ``ewif`` and ``capacity``; its
        length is the default ``horizon``. Its signals are not used otherwise.
    objective : Objective
        Weights [USD per unit] and norm orders of the equitable objective.
    policy : str
        Name of the online policy (``"online"``: dual mirror descent, OnlineDMD).
    horizon : int, optional
        Number of slots the service decides (the policy's ``n_time``: its averaged quality
        cost and step sizes are taken over it) [slots]; default the scenario's length. A
        slot beyond it is refused (409); a new period needs a new database.
    weight_total : int
        Sum of each region's integer load-balancer weights (e.g. 100 or 1000).
    addresses : mapping, optional
        ``{datacenter: "host:port"}`` upstream address of each data centre for the proxy
        configurations; others follow ``address_template``.
    address_template : str
        Default address, formatted with ``datacenter`` (a DNS-safe lower-case form of the
        name) and ``dc_index`` (0-based), e.g. ``"{datacenter}.internal:8000"`` or
        ``"10.0.{dc_index}.1:8000"``. NGINX resolves host names when it loads its
        configuration: they must resolve there.
    model_address_template : str
        Address of one model at one data centre (``level=model`` proxy configurations),
        with the fields above and ``model``, ``model_index``.
    synchronous : {"full", "normal"}
        SQLite durability (see :mod:`eqglb.service.store`).
    max_batch : int
        Most slots committed in one transaction (group commit).
    """

    scenario: Scenario
    objective: Objective = field(default_factory=Objective)
    policy: str = "online"
    horizon: int | None = None
    weight_total: int = 100
    addresses: Mapping[str, str] = field(default_factory=dict)
    address_template: str = "{datacenter}.internal:8000"
    model_address_template: str = "{model}.{datacenter}.internal:8000"
    synchronous: str = "full"
    max_batch: int = 64

    def __post_init__(self) -> None:
        if not isinstance(self.scenario, Scenario):
            raise ServiceConfigError("scenario must be a validated eqglb.Scenario")
        budget = self.scenario.rtt_budget_ms
        if budget is not None and np.isfinite(budget).any():
            raise ServiceConfigError(
                "scenario has an rtt_budget_ms (mean-RTT budget per region and slot), which "
                "the service's online policies do not model; drop it (the hard rtt_slo_ms is "
                'honoured) or plan offline with policy "reference"'
            )
        wt = self.weight_total
        if isinstance(wt, bool) or not isinstance(wt, (int, np.integer)) or not 1 <= wt <= 10**6:
            raise ServiceConfigError(
                f"weight_total = {wt!r}; give a whole number in [1, 1000000], e.g. 100 or 1000"
            )
        if self.horizon is not None and (isinstance(self.horizon, bool) or int(self.horizon) < 1):
            raise ServiceConfigError(f"horizon = {self.horizon!r}; give a number of slots >= 1")
        if not 1 <= int(self.max_batch) <= 10_000:
            raise ServiceConfigError(f"max_batch = {self.max_batch!r}; give 1..10000")
        if str(self.synchronous).lower() not in ("full", "normal"):
            raise ServiceConfigError(f"synchronous = {self.synchronous!r}; use 'full' or 'normal'")
        for dc, addr in self.addresses.items():
            if dc not in self.scenario.datacenters:
                raise ServiceConfigError(
                    f"address given for unknown datacenter {dc!r}; known: "
                    f"{list(self.scenario.datacenters)}"
                )
            _check_address(addr, f"address of datacenter {dc!r}")
        for tpl, keys in (
            (self.address_template, ("datacenter", "dc_index")),
            (self.model_address_template, ("datacenter", "dc_index", "model", "model_index")),
        ):
            try:
                sample = tpl.format(**{k: 1 if k.endswith("index") else "x" for k in keys})
            except (KeyError, IndexError, ValueError) as exc:
                raise ServiceConfigError(
                    f"address template {tpl!r} is not valid ({exc}); use the fields {keys} only"
                ) from None
            _check_address(sample, f"address template {tpl!r}")

    @classmethod
    def from_scenario(
        cls,
        scenario: Scenario,
        *,
        q: str | None = None,
        q_social: str | None = None,
        q_carbon: str | None = None,
        q_water: str | None = None,
        mu_social: float | None = None,
        mu_carbon: float | None = None,
        mu_water: float | None = None,
        combined_env: bool = False,
        total_quality: bool = False,
        **kw: Any,
    ) -> ServiceConfig:
        """Config with the objective built as ``eqglb run`` builds it (eqglb.defaults)."""
        from eqglb.defaults import DEFAULT_MU_CARBON, DEFAULT_MU_WATER, build_objective

        obj = build_objective(
            scenario,
            q=q,
            q_social=q_social,
            q_carbon=q_carbon,
            q_water=q_water,
            mu_social=mu_social,
            mu_carbon=DEFAULT_MU_CARBON if mu_carbon is None else mu_carbon,
            mu_water=DEFAULT_MU_WATER if mu_water is None else mu_water,
            combined_env=combined_env,
            total_quality=total_quality,
        )
        return cls(scenario=scenario, objective=obj, **kw)

    @property
    def n_time(self) -> int:
        return int(self.horizon) if self.horizon is not None else self.scenario.n_time

    def address(self, datacenter: str) -> str:
        """Upstream address (host:port) of a data centre."""
        if datacenter in self.addresses:
            return self.addresses[datacenter]
        return self.address_template.format(
            datacenter=dns_label(datacenter), dc_index=self.scenario.datacenters.index(datacenter)
        )

    def model_address(self, datacenter: str, model: str) -> str:
        """Upstream address (host:port) of one model at one data centre."""
        return self.model_address_template.format(
            datacenter=dns_label(datacenter),
            model=dns_label(model),
            dc_index=self.scenario.datacenters.index(datacenter),
            model_index=self.scenario.models.index(model),
        )


def _check_address(addr: str, what: str) -> None:
    host, sep, port = str(addr).rpartition(":")
    if (
        not sep
        or not host
        or not port.isdigit()
        or not 0 < int(port) < 65536
        or not set(host) <= _ADDRESS_CHARS
    ):
        raise ServiceConfigError(
            f"{what} is {addr!r}; give host:port, e.g. dc1.internal:8000 or 10.0.0.5:8000"
        )


def dns_label(name: str) -> str:
    """Lower-case DNS-safe form of a name: characters other than a-z, 0-9 become '-'."""
    out = "".join(c if c.isascii() and c.isalnum() else "-" for c in name.lower()).strip("-")
    return out or "x"


def load_config_scenario(source: Any, *, days: int = 7, seed: int = 0) -> Scenario:
    """Scenario from a Scenario, a scenario folder or ``"builtin"``."""
    if isinstance(source, Scenario):
        return source
    if source is None or (isinstance(source, str) and source == "builtin"):
        from eqglb.builtin import builtin_scenario

        return builtin_scenario(days=days, seed=seed)
    from eqglb.io.scenario_format import read_scenario

    return read_scenario(Path(source))


# --------------------------------------------------------------------------- live view
class _Latest:
    """One signal of the live stream: only the current slot's row is held."""

    __slots__ = ("_name", "_row", "_t")

    def __init__(self, name: str, t: int, row: np.ndarray) -> None:
        self._name, self._t, self._row = name, t, row

    def __getitem__(self, idx: Any) -> Any:
        if isinstance(idx, (int, np.integer)):
            i = int(idx)
            if i == self._t or i == -1:
                return self._row
            if i > self._t:
                raise CausalityError(f"slot {i} is in the future of the current slot {self._t}")
            raise LookupError(
                f"the dispatch service keeps only the current slot of {self._name!r} "
                f"(slot {self._t}); a policy that reads slot {i} needs its own history"
            )
        raise LookupError(f"the dispatch service's signal {self._name!r} supports [t] only")

    def __len__(self) -> int:
        return self._t + 1

    @property
    def shape(self) -> tuple[int, ...]:
        return (self._t + 1, *self._row.shape)


class _LiveTime(_Latest):
    """Slot start times: the first accepted slot (time[0]) and the current one."""

    __slots__ = ("_first",)

    def __init__(self, t: int, first_ns: int, now_ns: int) -> None:
        super().__init__("time", t, now_ns)  # type: ignore[arg-type]
        self._first = first_ns

    def __getitem__(self, idx: Any) -> Any:
        if isinstance(idx, (int, np.integer)) and int(idx) == 0:
            return pd.Timestamp(self._first, tz="UTC")
        return pd.Timestamp(super().__getitem__(idx), tz="UTC")


class LiveView:
    """What a policy knows at live slot ``t`` (the interface of :class:`eqglb.online.SlotView`).

    Static attributes as in SlotView; each signal of :data:`eqglb.online.simulator.SIGNALS`
    supports ``view.<signal>[t]`` (and ``[-1]``) for the current slot only.
    """

    __slots__ = (
        "t",
        "n_time",
        "time",
        "slot_hours",
        "datacenters",
        "regions",
        "models",
        "allowed",
        "energy_per_request",
        "capacity_per_request",
        "quality_loss",
        "capacity_mode",
        "latency",
        *SIGNALS,
    )
    datacenters: tuple[str, ...]
    regions: tuple[str, ...]
    models: tuple[str, ...]

    def __init__(
        self, t: int, static: Mapping[str, Any], time: _LiveTime, rows: Mapping[str, np.ndarray]
    ) -> None:
        self.t = t
        for name, value in static.items():
            setattr(self, name, value)
        self.time = time
        for name, row in rows.items():
            setattr(self, name, _Latest(name, t, row))

    def at(self, name: str, slot: int) -> np.ndarray:
        """Signal ``name`` at ``slot`` (only the current slot is held)."""
        if name not in SIGNALS:
            raise KeyError(f"unknown signal {name!r}; known: {list(SIGNALS)}")
        return getattr(self, name)[slot]  # type: ignore[no-any-return]

    def now(self, name: str) -> np.ndarray:
        """Signal ``name`` at the current slot."""
        return self.at(name, self.t)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.datacenters), len(self.regions), len(self.models))


# --------------------------------------------------------------------------- outcomes
@dataclass
class Outcome:
    """Result of one submission: HTTP status, JSON body, extra headers, row to commit."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    row: SlotRow | None = None


def _error(
    status: int, items: list[tuple[list[Any], str, str]], headers: dict[str, str] | None = None
) -> Outcome:
    detail = [{"loc": loc, "msg": msg, "type": typ} for loc, msg, typ in items]
    return Outcome(status, _dumps({"detail": detail}).encode(), headers or {})


class _Rejected(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.body.decode())
        self.outcome = outcome


# --------------------------------------------------------------------------- engine
class Engine:
    """Sequential core of the service (see the module docstring). Not thread-safe: one
    thread calls :meth:`apply`, :meth:`committed` and :meth:`rollback`.

    Parameters
    ----------
    config : ServiceConfig
    store : Store
        Database holding accepted slots; the engine resumes from its last slot.
    policy : str, object or callable, optional
        Online policy object (``decide``, ``state``, ``load_state``), a factory
        ``f(objective)`` or a name (default ``config.policy``).
    """

    def __init__(self, config: ServiceConfig, store: Store, policy: Any = None) -> None:
        self.config = config
        self.store = store
        sc = config.scenario
        self.datacenters, self.regions, self.models = sc.datacenters, sc.regions, sc.models
        N, J, K = len(sc.datacenters), len(sc.regions), len(sc.models)
        self.shape = (N, J, K)
        self._dc_index = {n: i for i, n in enumerate(sc.datacenters)}
        self._region_index = {n: j for j, n in enumerate(sc.regions)}
        self._model_index = {n: k for k, n in enumerate(sc.models)}
        self._allowed = np.asarray(sc.allowed, dtype=bool)
        self._eps = np.asarray(sc.energy_per_request, dtype=float)  # (N, K)
        self._r = np.asarray(sc.capacity_per_request, dtype=float)  # (K,)
        self._s = np.asarray(sc.quality_loss, dtype=float)  # (K,)
        self.capacity_mode = sc.capacity_mode
        self._step_ns = int(round(sc.slot_hours * 3600e9))
        self._static = {
            "n_time": config.n_time,
            "slot_hours": sc.slot_hours,
            "datacenters": sc.datacenters,
            "regions": sc.regions,
            "models": sc.models,
            "allowed": sc.allowed,
            "energy_per_request": sc.energy_per_request,
            "capacity_per_request": sc.capacity_per_request,
            "quality_loss": sc.quality_loss,
            "capacity_mode": sc.capacity_mode,
            "latency": sc.latency,
        }
        if policy is None:
            policy = config.policy
        if isinstance(policy, str):
            policy = make_online_policy(policy, config.objective)
        elif not callable(getattr(policy, "decide", None)) and callable(policy):
            policy = policy(config.objective)
        for attr in ("decide", "state", "load_state"):
            if not callable(getattr(policy, attr, None)):
                raise ServiceConfigError(
                    f"policy {policy!r} has no {attr}(); the service needs "
                    "an online policy (decide, state, load_state)"
                )
        self.policy = policy
        self.policy_name = str(getattr(policy, "name", type(policy).__name__))
        self._fresh_policy_state = json_ready(policy.state(), "none")
        self._pending: dict[str, tuple[str, bytes]] = {}
        self._fingerprint = self._config_fingerprint()
        self._attach_store()

    # ------------------------------------------------------------------ state
    def _config_fingerprint(self) -> dict[str, Any]:
        """What must not change between restarts on one database."""
        sc = self.config.scenario

        def digest(a: Any) -> str:
            return hashlib.sha256(
                np.ascontiguousarray(np.asarray(a, dtype=float)).tobytes()
            ).hexdigest()[:16]

        cfg = getattr(self.policy, "config", None)
        return json_ready(
            {
                "datacenters": list(sc.datacenters),
                "regions": list(sc.regions),
                "models": list(sc.models),
                "capacity_mode": sc.capacity_mode,
                "allowed": digest(sc.allowed),
                "energy_per_request": digest(sc.energy_per_request),
                "capacity_per_request": digest(sc.capacity_per_request),
                "quality_loss": digest(sc.quality_loss),
                "horizon": self.config.n_time,
                "slot_ns": self._step_ns,
                "objective": objective_to_config(self.config.objective),
                "policy": self.policy_name,
                "policy_config": cfg() if callable(cfg) else None,
            },
            "none",
        )

    def _attach_store(self) -> None:
        saved = self.store.get_meta("config")
        if saved is None:
            self.store.set_meta({"config": self._fingerprint})
        elif saved != self._fingerprint:
            diff = [k for k in self._fingerprint if saved.get(k) != self._fingerprint.get(k)]
            raise StoreError(
                f"database {self.store.path} was written by a service with other settings "
                f"({', '.join(diff)} differ); start with the same scenario, objective and "
                "policy, or give a new --db"
            )
        latest = self.store.latest_state()
        if latest is None:
            self._committed = self._initial_state()
        else:
            slot, text, policy_text = latest
            st = json.loads(text)
            st["policy"] = json.loads(policy_text)
            if st.get("format") != STATE_FORMAT or st.get("version") != STATE_VERSION:
                raise StoreError(
                    f"database {self.store.path}: slot {slot} holds no "
                    f"{STATE_FORMAT} v{STATE_VERSION} state"
                )
            self._committed = st
        self._load(self._committed)

    def _initial_state(self) -> dict[str, Any]:
        sc = self.config.scenario
        N, J, K = self.shape
        allowed_dc = self._allowed.any(axis=2).astype(float)  # (N, J)
        w_dc = largest_remainder(allowed_dc.T, self.config.weight_total)  # (J, N)
        w_route = largest_remainder(
            self._allowed.transpose(1, 0, 2).reshape(J, N * K).astype(float),
            self.config.weight_total,
        ).reshape(J, N, K)
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "slot": 0,
            "time0_ns": None,
            "last_time_ns": None,
            "policy": self._fresh_policy_state,
            "pue": np.asarray(sc.pue)[0].tolist(),
            "ewif": np.asarray(sc.ewif)[0].tolist(),
            "capacity": np.asarray(sc.capacity)[0].tolist(),
            "cumulative": {
                "energy_cost": 0.0,
                "carbon": [0.0] * N,
                "water": [0.0] * N,
                "quality": [0.0] * J,
                "demand": [0.0] * J,
            },
            "weights_datacenter": w_dc.tolist(),
            "weights_route": w_route.tolist(),
            "weights_slot": None,
        }

    def _load(self, st: dict[str, Any]) -> None:
        """Set every mutable part of the engine from a state dict (no policy decision)."""
        self.slot = int(st["slot"])
        self.time0_ns = st["time0_ns"]
        self.last_time_ns = st["last_time_ns"]
        self.pue = np.asarray(st["pue"], dtype=float)
        self.ewif = np.asarray(st["ewif"], dtype=float)
        self.capacity = np.asarray(st["capacity"], dtype=float)
        cum = st["cumulative"]
        self.energy_cost = float(cum["energy_cost"])
        self.cum = {
            k: np.asarray(cum[k], dtype=float) for k in ("carbon", "water", "quality", "demand")
        }
        self.w_dc = np.asarray(st["weights_datacenter"], dtype=np.int64)
        self.w_route = np.asarray(st["weights_route"], dtype=np.int64)
        self.weights_slot = st.get("weights_slot")
        self.policy.load_state(st["policy"])
        self._state = st

    def _dump_state(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "slot": self.slot,
            "time0_ns": self.time0_ns,
            "last_time_ns": self.last_time_ns,
            "policy": self.policy.state(),
            "pue": self.pue.tolist(),
            "ewif": self.ewif.tolist(),
            "capacity": self.capacity.tolist(),
            "cumulative": {
                "energy_cost": self.energy_cost,
                **{k: v.tolist() for k, v in self.cum.items()},
            },
            "weights_datacenter": self.w_dc.tolist(),
            "weights_route": self.w_route.tolist(),
            "weights_slot": self.weights_slot,
        }

    @property
    def committed_state(self) -> dict[str, Any]:
        """State after the last committed slot (a dict never mutated afterwards)."""
        return self._committed

    @property
    def current_state(self) -> dict[str, Any]:
        """State after the last applied slot (committed or not)."""
        return self._state

    def committed(self, state: Mapping[str, Any] | None = None, keys: Any = None) -> None:
        """Slots applied up to ``state`` (default: all) are durable; ``keys`` (default:
        all pending) are now found in the database."""
        self._committed = dict(self._state if state is None else state)
        if keys is None:
            self._pending.clear()
        else:
            for k in keys:
                self._pending.pop(k, None)

    def rollback(self) -> None:
        """Forget every slot applied since the last :meth:`committed` (commit failed)."""
        self._pending.clear()
        self._load(self._committed)

    # ------------------------------------------------------------------ one submission
    def apply(self, req: SlotIn, key: str) -> Outcome:
        """Check, decide and account one slot; the returned row must be committed before the
        response is sent (then call :meth:`committed`). Rejections change nothing."""
        canon = self._canonical(req)
        text = _dumps(canon)
        digest = hashlib.sha256(text.encode()).hexdigest()
        replay = self._replay(key, digest)
        if replay is not None:
            return replay
        try:
            sig, t_ns = self._check(req)
            return self._decide(req, key, text, digest, sig, t_ns)
        except _Rejected as rej:
            return rej.outcome
        except BaseException:
            # any failure before the row exists leaves the engine as it was before this
            # slot: the state in memory advances only with a row that can be committed
            self._load(self._state)
            raise

    def _canonical(self, req: SlotIn) -> dict[str, Any]:
        d = req.model_dump(exclude={"idempotency_key"}, exclude_none=True)
        if req.time is not None:
            d["time"] = _iso(_time_ns(req.time))
        return d

    def _replay(self, key: str, digest: str) -> Outcome | None:
        hit: tuple[str, bytes] | None = self._pending.get(key)
        if hit is None:
            try:
                stored = self.store.lookup(key)
            except StoreCorruptError as exc:  # never replay a damaged response
                return _error(500, [(["header", "Idempotency-Key"], str(exc), "store_damaged")])
            if stored is not None:
                hit = (stored[0], stored[1])
        if hit is None:
            return None
        if hit[0] != digest:
            return _error(
                409,
                [
                    (
                        ["header", "Idempotency-Key"],
                        f"idempotency key {key!r} was already used for a different "
                        "request; use a new key for a new slot",
                        "idempotency_conflict",
                    )
                ],
            )
        return Outcome(200, hit[1], {"Idempotency-Replayed": "true"})

    # ------------------------------------------------------------------ checks
    def _vector(
        self,
        values: Mapping[str, float],
        index: Mapping[str, int],
        field_: str,
        dim: str,
        errors: list[tuple[list[Any], str, str]],
    ) -> np.ndarray:
        """Dense vector of a map that must name every ``dim``."""
        out = np.empty(len(index))
        if values.keys() == index.keys():
            for n, v in values.items():
                out[index[n]] = v
            return out
        unknown = [n for n in values if n not in index]
        for n in unknown:
            errors.append(
                (
                    ["body", field_, n],
                    f"unknown {dim} {n!r} in {field_}; known: {list(index)}",
                    f"unknown_{dim}",
                )
            )
        missing = [n for n in index if n not in values]
        if missing:
            errors.append(
                (
                    ["body", field_],
                    f"{field_} is missing {dim}(s) {missing}; give a value for every {dim}",
                    "missing",
                )
            )
        return out

    def _sticky(
        self,
        values: Mapping[str, float] | None,
        current: np.ndarray,
        field_: str,
        errors: list[tuple[list[Any], str, str]],
    ) -> np.ndarray:
        if not values:
            return current
        out = current.copy()
        for n, v in values.items():
            i = self._dc_index.get(n)
            if i is None:
                errors.append(
                    (
                        ["body", field_, n],
                        f"unknown datacenter {n!r} in {field_}; known: {list(self._dc_index)}",
                        "unknown_datacenter",
                    )
                )
            else:
                out[i] = v
        return out

    def _capacity(
        self, values: Mapping[str, Any] | None, errors: list[tuple[list[Any], str, str]]
    ) -> np.ndarray:
        if not values:
            return self.capacity
        out = self.capacity.copy()
        shared = self.capacity_mode == "shared"
        for n, v in values.items():
            i = self._dc_index.get(n)
            if i is None:
                errors.append(
                    (
                        ["body", "capacity", n],
                        f"unknown datacenter {n!r} in capacity; known: {list(self._dc_index)}",
                        "unknown_datacenter",
                    )
                )
                continue
            if shared:
                if isinstance(v, dict):
                    errors.append(
                        (
                            ["body", "capacity", n],
                            "capacity is shared per data centre "
                            "in this scenario: give one number [units/slot], not a map "
                            "by model",
                            "capacity_mode",
                        )
                    )
                else:
                    out[i] = v
                continue
            if not isinstance(v, dict):
                errors.append(
                    (
                        ["body", "capacity", n],
                        "capacity is per (data centre, model) in "
                        "this scenario: give {model: requests/slot}",
                        "capacity_mode",
                    )
                )
                continue
            for m, c in v.items():
                k = self._model_index.get(m)
                if k is None:
                    errors.append(
                        (
                            ["body", "capacity", n, m],
                            f"unknown model {m!r} in capacity; known: {list(self._model_index)}",
                            "unknown_model",
                        )
                    )
                else:
                    out[i, k] = c
        return out

    def _check(self, req: SlotIn) -> tuple[dict[str, np.ndarray], int]:
        errors: list[tuple[list[Any], str, str]] = []
        dcs, regs = self._dc_index, self._region_index
        sig = {
            "demand": self._vector(req.demand, regs, "demand", "region", errors),
            "price": self._vector(req.price, dcs, "price", "datacenter", errors),
            "carbon_intensity": self._vector(
                req.carbon_intensity, dcs, "carbon_intensity", "datacenter", errors
            ),
            "wue": self._vector(req.wue, dcs, "wue", "datacenter", errors),
            "ewif": self._sticky(req.ewif, self.ewif, "ewif", errors),
            "pue": self._sticky(req.pue, self.pue, "pue", errors),
            "capacity": self._capacity(req.capacity, errors),
        }
        if req.time is None and self.last_time_ns is None:
            errors.append(
                (
                    ["body", "time"],
                    "time is required for the first slot (ISO 8601, e.g. 2022-09-22T00:00:00Z)",
                    "missing",
                )
            )
        if errors:
            raise _Rejected(_error(422, errors))
        if self.slot >= self.config.n_time:
            raise _Rejected(
                _error(
                    409,
                    [
                        (
                            ["body"],
                            f"the horizon of {self.config.n_time} slots is complete (the policy accounts "
                            "its averaged costs over it); start a new period with a new database, or "
                            "configure a longer horizon",
                            "horizon_complete",
                        )
                    ],
                )
            )
        if req.time is None:
            assert self.last_time_ns is not None
            t_ns = self.last_time_ns + self._step_ns
            if not TIME_MIN_NS <= t_ns < TIME_MAX_NS:
                raise _Rejected(
                    _error(
                        422,
                        [
                            (
                                ["body", "time"],
                                f"the next slot would start at {_iso(t_ns)}, outside the accepted range "
                                f"{TIME_RANGE_TEXT}; start a new period with a new database",
                                "time_range",
                            )
                        ],
                    )
                )
        else:
            t_ns = _time_ns(req.time)
            if self.last_time_ns is not None and t_ns <= self.last_time_ns:
                what = "duplicates" if t_ns == self.last_time_ns else "is before"
                raise _Rejected(
                    _error(
                        409,
                        [
                            (
                                ["body", "time"],
                                f"time {_iso(t_ns)} {what} the last accepted slot's time "
                                f"{_iso(self.last_time_ns)}; slots must arrive in order, each after the last",
                                "out_of_order",
                            )
                        ],
                    )
                )
        return sig, t_ns

    def _coefficients(self, sig: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per-request costs of the slot (datacenter, model) [USD], [kg CO2], [L]."""
        pue, eps = sig["pue"], self._eps
        return {
            "energy_cost": (pue * sig["price"])[:, None] * eps,
            "carbon": (sig["carbon_intensity"] * pue)[:, None] * eps,
            "water": (sig["wue"] + pue * sig["ewif"])[:, None] * eps,
        }

    def _infeasible(self, sig: Mapping[str, np.ndarray], t_ns: int) -> Outcome | None:
        """422 naming the first region whose demand the slot cannot serve, or None."""
        from eqglb._feasibility import first_unservable

        sc = self.config.scenario
        one = {k: np.asarray(v)[None] for k, v in sig.items()}
        try:
            sc1 = Scenario(
                datacenters=sc.datacenters,
                regions=sc.regions,
                models=sc.models,
                time=pd.DatetimeIndex([pd.Timestamp(t_ns, tz="UTC")]),
                demand=one["demand"],
                price=one["price"],
                carbon_intensity=one["carbon_intensity"],
                wue=one["wue"],
                ewif=one["ewif"],
                pue=one["pue"],
                energy_per_request=sc.energy_per_request,
                capacity_per_request=sc.capacity_per_request,
                capacity=one["capacity"],
                quality_loss=sc.quality_loss,
                allowed=sc.allowed,
                capacity_mode=sc.capacity_mode,
                validate_feasibility=False,
                plausibility_checks=False,
            )  # a diagnostic rebuild
        except ScenarioError as exc:  # pragma: no cover - inputs were validated already
            return _error(422, [(["body"], str(exc), "invalid")])
        res = first_unservable(sc1)
        if res is None:
            return None
        _, j, missing = res
        name = sc.regions[j]
        return _error(
            422,
            [
                (
                    ["body", "demand", name],
                    f"demand of region {name!r} cannot be served in this slot: "
                    f"{missing:.6g} of {sig['demand'][j]:.6g} requests exceed the "
                    "capacity its allowed (datacenter, model) routes reach; lower "
                    "demand or raise capacity",
                    "infeasible",
                )
            ],
        )

    def _check_decision(self, y: Any, demand: np.ndarray, cap: np.ndarray) -> np.ndarray | str:
        """The decision as an array, or a message saying what is wrong with it."""
        try:
            a = np.asarray(y, dtype=float)
        except (TypeError, ValueError) as exc:
            return f"non-numeric decision ({exc})"
        if a.shape != self.shape:
            return f"decision of shape {a.shape}; expected {self.shape}"
        if not np.isfinite(a).all():
            return "decision holds NaN/inf"
        tol = FEASIBILITY_TOL * np.maximum(1.0, demand)
        if (a < -tol.max()).any():
            return f"negative flow {a.min():g}"
        a = np.clip(a, 0.0, None)
        if (a[~self._allowed] > 0).any():
            return "flow on a route that is not allowed"
        served = a.sum(axis=(0, 2))
        if (np.abs(served - demand) > tol).any():
            return "demand not served exactly"
        used = (
            np.einsum("njk,k->n", a, self._r) if self.capacity_mode == "shared" else a.sum(axis=1)
        )
        if (used - cap > FEASIBILITY_TOL * np.maximum(1.0, cap)).any():
            return "capacity exceeded"
        return a

    # ------------------------------------------------------------------ deciding
    def _decide(
        self, req: SlotIn, key: str, text: str, digest: str, sig: dict[str, np.ndarray], t_ns: int
    ) -> Outcome:
        t = self.slot
        time0 = self.time0_ns if self.time0_ns is not None else t_ns
        coef = self._coefficients(sig)
        rows = {**sig, **coef}
        for v in rows.values():
            v.setflags(write=False)
        view = LiveView(t, self._static, _LiveTime(t, time0, t_ns), rows)
        demand, cap = sig["demand"], sig["capacity"]
        try:
            y = self.policy.decide(view)
            checked = self._check_decision(y, demand, cap)
        except Exception as exc:  # the policy failed: infeasible slot or a policy error
            checked = f"{type(exc).__name__}: {exc}"
        if isinstance(checked, str):
            self._load(self._state)  # undo whatever the policy changed
            bad = self._infeasible(sig, t_ns)
            if bad is not None:
                raise _Rejected(bad)
            raise RuntimeError(f"policy {self.policy_name!r} failed on a feasible slot: {checked}")
        y = checked

        # accounting [USD], [kg CO2], [L], [-], [requests]
        load = y.sum(axis=1)  # (N, K)
        e_slot = float(np.sum(coef["energy_cost"] * load))
        c_slot = (coef["carbon"] * load).sum(axis=1)
        w_slot = (coef["water"] * load).sum(axis=1)
        self.energy_cost += e_slot
        self.cum["carbon"] = self.cum["carbon"] + c_slot
        self.cum["water"] = self.cum["water"] + w_slot
        self.cum["quality"] = self.cum["quality"] + y.sum(axis=0) @ self._s
        self.cum["demand"] = self.cum["demand"] + demand

        # routing fractions and integer weights
        N, J, K = self.shape
        served = demand > 0
        frac = np.zeros((J, N, K))
        frac[served] = y.transpose(1, 0, 2)[served] / demand[served, None, None]
        total = self.config.weight_total
        if served.any():
            w_route = self.w_route.copy()
            w_route[served] = largest_remainder(frac[served].reshape(-1, N * K), total).reshape(
                -1, N, K
            )
            w_dc = self.w_dc.copy()
            w_dc[served] = largest_remainder(frac[served].sum(axis=2), total)
            self.w_route, self.w_dc = w_route, w_dc
        self.pue, self.ewif, self.capacity = sig["pue"], sig["ewif"], sig["capacity"]
        if self.time0_ns is None:
            self.time0_ns = t_ns
        self.last_time_ns = t_ns
        self.slot = t + 1
        iso = _iso(t_ns)
        self.weights_slot = {"slot": t, "time": iso}

        body = self._response(
            t, iso, key, y, frac, demand, served, (e_slot, float(c_slot.sum()), float(w_slot.sum()))
        )
        state = self._dump_state()
        policy_text = _policy_json(state["policy"], self.policy_name)
        row = SlotRow(
            slot=t,
            time=iso,
            time_ns=t_ns,
            idempotency_key=key,
            request_hash=digest,
            request=text,
            response=body,
            state=_dumps({k: v for k, v in state.items() if k != "policy"}),
            policy_state=policy_text,
        )
        # everything is encoded: only now does the slot count as applied (a failure above
        # is undone by apply(), which reloads self._state)
        self._state = state
        self._pending[key] = (digest, body)
        return Outcome(200, body, {}, row)

    def _response(
        self,
        t: int,
        iso: str,
        key: str,
        y: np.ndarray,
        frac: np.ndarray,
        demand: np.ndarray,
        served: np.ndarray,
        costs: tuple[float, float, float],
    ) -> bytes:
        dcs, models, regions = self.datacenters, self.models, self.regions
        routes: list[list[dict[str, Any]]] = [[] for _ in regions]
        jj, ii, kk = np.nonzero(frac >= MIN_FRACTION)  # regions without demand: all 0
        for j, i, k, f, r in zip(
            jj.tolist(),
            ii.tolist(),
            kk.tolist(),
            frac[jj, ii, kk].tolist(),
            y[ii, jj, kk].tolist(),
            strict=True,
        ):
            routes[j].append(
                {"datacenter": dcs[i], "model": models[k], "fraction": f, "requests": r}
            )
        wdc: list[dict[str, int]] = [{} for _ in regions]
        jj, ii = np.nonzero(self.w_dc)
        for j, i, w in zip(jj.tolist(), ii.tolist(), self.w_dc[jj, ii].tolist(), strict=True):
            wdc[j][dcs[i]] = w
        wr: list[list[dict[str, Any]]] = [[] for _ in regions]
        jj, ii, kk = np.nonzero(self.w_route)
        for j, i, k, w in zip(
            jj.tolist(), ii.tolist(), kk.tolist(), self.w_route[jj, ii, kk].tolist(), strict=True
        ):
            wr[j].append({"datacenter": dcs[i], "model": models[k], "weight": w})
        dem = demand.tolist()
        srv = served.tolist()
        out = {
            "slot": t,
            "time": iso,
            "idempotency_key": key,
            "policy": self.policy_name,
            "routing": {r: {"demand": dem[j], "routes": routes[j]} for j, r in enumerate(regions)},
            "weights": {
                "total": self.config.weight_total,
                "regions": {
                    r: {"datacenters": wdc[j], "routes": wr[j], "carried_over": not srv[j]}
                    for j, r in enumerate(regions)
                },
            },
            "costs": {"energy_cost": costs[0], "carbon": costs[1], "water": costs[2]},
        }
        return _dumps(out).encode()

    # ------------------------------------------------------------------ reads
    def summary(self, st: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Duals, cumulative regional costs and fairness metrics of a committed state."""
        st = self._committed if st is None else st
        obj = self.config.objective
        cum = st["cumulative"]
        dem = np.asarray(cum["demand"], dtype=float)
        qual = np.asarray(cum["quality"], dtype=float)
        if obj.social_average:
            social = np.divide(qual, dem, out=np.zeros_like(qual), where=dem > 0)
        else:
            social = qual
        vectors = {
            "carbon": (np.asarray(cum["carbon"]), self.datacenters, obj.q_carbon),
            "water": (np.asarray(cum["water"]), self.datacenters, obj.q_water),
            "social": (social, self.regions, obj.q_social),
        }
        duals: dict[str, Any] = {}
        for g, v in (st["policy"].get("duals") or {}).items():
            names = self.regions if g == "social" else self.datacenters
            duals[g] = dict(zip(names, v, strict=True)) if len(v) == len(names) else v
        cap = np.asarray(st["capacity"])
        if cap.ndim == 1:
            capacity: Any = dict(zip(self.datacenters, cap.tolist(), strict=True))
        else:
            capacity = {
                dc: dict(zip(self.models, row, strict=True))
                for dc, row in zip(self.datacenters, cap.tolist(), strict=True)
            }
        last = st["last_time_ns"]
        first = st["time0_ns"]
        return json_ready(
            {
                "slots": st["slot"],
                "first_time": None if first is None else _iso(first),
                "last_time": None if last is None else _iso(last),
                "policy": self.policy_name,
                "objective": objective_to_config(obj),
                "duals": duals,
                "cumulative": {
                    "energy_cost": cum["energy_cost"],
                    "carbon": dict(
                        zip(self.datacenters, vectors["carbon"][0].tolist(), strict=True)
                    ),
                    "water": dict(zip(self.datacenters, vectors["water"][0].tolist(), strict=True)),
                    "social": dict(zip(self.regions, social.tolist(), strict=True)),
                    "demand": dict(zip(self.regions, dem.tolist(), strict=True)),
                },
                "fairness": {name: summarize(v, q) for name, (v, _, q) in vectors.items()},
                "signals": {
                    "pue": dict(zip(self.datacenters, st["pue"], strict=True)),
                    "ewif": dict(zip(self.datacenters, st["ewif"], strict=True)),
                    "capacity": capacity,
                },
                "units": {
                    "energy_cost": "USD",
                    "carbon": "kg CO2",
                    "water": "L",
                    "social": (
                        "average quality loss per request [-]"
                        if obj.social_average
                        else "quality loss [requests]"
                    ),
                    "demand": "requests",
                    "duals.carbon": "USD/kg CO2",
                    "duals.water": "USD/L",
                    "duals.social": "USD per unit of S",
                    "capacity": (
                        "units/slot" if self.capacity_mode == "shared" else "requests/slot"
                    ),
                },
            },
            "none",
        )

    def weights_table(
        self, st: Mapping[str, Any] | None = None, level: str = "datacenter"
    ) -> dict[str, dict[str, int]]:
        """``{region: {address: weight}}`` (positive weights) of a committed state."""
        st = self._committed if st is None else st
        out: dict[str, dict[str, int]] = {}
        if level == "datacenter":
            w = np.asarray(st["weights_datacenter"], dtype=np.int64)
            for j, region in enumerate(self.regions):
                row: dict[str, int] = {}
                for i in np.flatnonzero(w[j]):
                    addr = self.config.address(self.datacenters[i])
                    row[addr] = row.get(addr, 0) + int(w[j, i])
                out[region] = row
        else:
            wr = np.asarray(st["weights_route"], dtype=np.int64)
            for j, region in enumerate(self.regions):
                row = {}
                for i, k in zip(*np.nonzero(wr[j]), strict=True):
                    addr = self.config.model_address(self.datacenters[i], self.models[k])
                    row[addr] = row.get(addr, 0) + int(wr[j, i, k])
                out[region] = row
        return out
