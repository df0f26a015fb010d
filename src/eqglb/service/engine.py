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

The online loop itself is :class:`eqglb.online.stepper.Stepper`, the object the offline
simulator steps too: it keeps the signal history, shows the policy a
:class:`~eqglb.online.SlotView`, checks the decision and accounts the slot's costs by
:mod:`eqglb.costs` over every burden of :data:`eqglb.burdens.BURDENS`. The engine keeps
what is the service's own: the request checks, idempotency, the state it persists (with
each slot's resolved signals, so that a restarted service rebuilds the history a policy
reads), integer weights and the response. Served the same signals, the service and
:func:`eqglb.online.simulate_online` decide the same routing (tested for every registered
online policy, across a restart).
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
from eqglb.burdens import BURDENS
from eqglb.costs import Objective
from eqglb.fields import SITE_SIGNALS
from eqglb.metrics import summarize
from eqglb.online.simulator import static_of
from eqglb.online.state import objective_to_config
from eqglb.online.stepper import Stepper
from eqglb.scenario import Scenario, ScenarioError
from eqglb.service.schemas import TIME_MAX, TIME_MIN, TIME_RANGE_TEXT, SlotIn, signal_kind
from eqglb.service.store import SlotRow, Store, StoreCorruptError, StoreError

__all__ = [
    "STATE_FORMAT",
    "Engine",
    "Outcome",
    "ServiceConfig",
    "ServiceConfigError",
    "largest_remainder",
    "make_online_policy",
]

STATE_FORMAT = "eqglb.service.state"
STATE_VERSION = 2
#: Shares of a region's requests below this are left out of the routing listing [-].
MIN_FRACTION = 1e-12
_ADDRESS_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_[]:")


from eqglb.errors import ServiceConfigError  # noqa: E402  (one errors module)


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
    if (s > 0).all():  # every row has a share (the service's rows): no masked division
        scaled = f * total / s
    else:
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
            try:  # fast path: a sum of finite numbers is finite (unless it overflows)
                if math.isfinite(sum(x)):
                    return True
            except TypeError:  # not all numbers
                pass
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


def make_online_policy(
    name: str, objective: Objective, window: int | None = None, max_change: float | None = None
) -> Any:
    """An online policy by name: ``"online"`` is :class:`eqglb.online.OnlineDMD` (with
    fairness windows of ``window`` slots and the hard per-slot change limit ``max_change``
    [-] when given); other names are looked up in :data:`eqglb.policies.REGISTRY` and must
    have ``decide``."""
    if name in ("online", "dmd"):
        from eqglb.online import OnlineDMD

        return OnlineDMD(objective=objective, name=name, window=window, max_change=max_change)
    if window is not None:
        raise ServiceConfigError(
            f"--window is a fairness window of the 'online' policy; --policy {name!r} "
            "needs a horizon (leave --window out)"
        )
    if max_change is not None:
        raise ServiceConfigError(
            f"--max-change is a change limit of the 'online' policy; --policy {name!r} "
            "does not hold one (leave --max-change out, or serve 'online')"
        )
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
        slot beyond it is refused (409); a new period needs a new database. Ignored with
        ``window``.
    window : int, optional
        Fairness window of the ``online`` policy [slots] (:class:`eqglb.online.OnlineDMD`):
        the service has no horizon and accepts slots indefinitely, accounting fairness
        over calendar windows of this many slots (docs/horizon-free.md).
    max_change : float, optional
        Hard per-slot change limit of the ``online`` policy [-]: the share of each region's
        requests whose destination (data centre, model) may change from one slot to the
        next, in [0, 1] (docs/switching.md). Where a capacity drop forces more, the least
        possible excess is taken and counted. None (default): no limit.
    signals : SignalSource, optional
        Grid signals the service fetches itself for slots that omit them
        (:mod:`eqglb.service.fill`; ``eqglb serve --signals PROVIDER --zone DC=ZONE``).
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
    window: int | None = None
    max_change: float | None = None
    signals: Any = None
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
        if self.window is not None and (isinstance(self.window, bool) or int(self.window) < 1):
            raise ServiceConfigError(f"window = {self.window!r}; give a number of slots >= 1")
        if self.max_change is not None:
            from eqglb.online.switching import check_change_limit

            try:
                check_change_limit(self.max_change)
            except ValueError as exc:
                raise ServiceConfigError(str(exc)) from None
            if self.policy not in ("online", "dmd"):
                raise ServiceConfigError(
                    f"--max-change is a change limit of the 'online' policy; --policy "
                    f"{self.policy!r} does not hold one (leave --max-change out)"
                )
        if self.signals is not None:
            from eqglb.errors import ConfigError
            from eqglb.service.fill import SignalSource

            if not isinstance(self.signals, SignalSource):
                raise ServiceConfigError("signals must be an eqglb.service.fill.SignalSource")
            try:
                self.signals.check(list(self.scenario.datacenters))
            except ConfigError as exc:
                raise ServiceConfigError(str(exc)) from None
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
        mu_social: float | None = None,
        combined_env: bool = False,
        total_quality: bool = False,
        normalize: bool = True,
        switching_cost: float = 0.0,
        **kw: Any,
    ) -> ServiceConfig:
        """Config with the objective built as ``eqglb run`` builds it (eqglb.defaults):
        ``mu_<burden>=`` / ``q_<burden>=`` of any registered burden (None: the default)
        go to :func:`eqglb.defaults.build_objective`, the rest to the config."""
        from eqglb.burdens import BURDENS
        from eqglb.defaults import build_objective

        terms = {
            k: kw.pop(k)
            for k in list(kw)
            if k.partition("_")[0] in ("mu", "q") and k.partition("_")[2] in BURDENS
        }
        obj = build_objective(
            scenario,
            q=q,
            mu_social=mu_social,
            combined_env=combined_env,
            total_quality=total_quality,
            normalize=normalize,
            switching_cost=switching_cost,
            **terms,
        )
        return cls(scenario=scenario, objective=obj, **kw)

    @property
    def n_time(self) -> int:
        """Slots of the policy's horizon; with a fairness window, the window."""
        if self.window is not None:
            return int(self.window)
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
        self.capacity_mode = sc.capacity_mode
        self._step_ns = int(round(sc.slot_hours * 3600e9))
        if policy is None:
            policy = config.policy
        if isinstance(policy, str):
            policy = make_online_policy(policy, config.objective, config.window, config.max_change)
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
        self.stepper = Stepper(policy, static_of(sc), config.n_time)
        self._fresh_policy_state = json_ready(policy.state(), "none")
        self._pending: dict[str, tuple[str, bytes]] = {}
        self._keys: set[str] = set()  # idempotency keys of the committed slots
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
                **({"window": self.config.window} if self.config.window is not None else {}),
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
            for t, time_ns, key, signals in self.store.signal_history():
                self.stepper.record(t, signals, time_ns)
                self._keys.add(key)
        self._load(self._committed)

    def _initial_state(self) -> dict[str, Any]:
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
            "signals": self._initial_signals(),
            "cumulative": {k: v for k, v in self.stepper.state().items() if k != "t"},
            "weights_datacenter": w_dc.tolist(),
            "weights_route": w_route.tolist(),
            "weights_slot": None,
        }

    def _initial_signals(self) -> dict[str, Any]:
        """Sticky signals before the first slot: the scenario's values at its first slot."""
        sc = self.config.scenario
        return {n: np.asarray(getattr(sc, n))[0].tolist() for n in ("pue", "ewif", "capacity")}

    def _load(self, st: dict[str, Any]) -> None:
        """Set every mutable part of the engine from a state dict (no policy decision)."""
        self.time0_ns = st["time0_ns"]
        self.last_time_ns = st["last_time_ns"]
        self.signals = {k: np.asarray(v, dtype=float) for k, v in st["signals"].items()}
        self.stepper.load_state(st["cumulative"])
        self.stepper.t = int(st["slot"])
        self.w_dc = np.asarray(st["weights_datacenter"], dtype=np.int64)
        self.w_route = np.asarray(st["weights_route"], dtype=np.int64)
        self.weights_slot = st.get("weights_slot")
        self.policy.load_state(st["policy"])
        self._state = st

    @property
    def slot(self) -> int:
        """Index of the next slot (slots applied so far)."""
        return self.stepper.t

    def _dump_state(self) -> dict[str, Any]:
        acc = self.stepper.state()
        del acc["t"]
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "slot": self.slot,
            "time0_ns": self.time0_ns,
            "last_time_ns": self.last_time_ns,
            "policy": self.policy.state(),
            "signals": {k: v.tolist() for k, v in self.signals.items()},
            "cumulative": acc,
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
            self._keys.update(self._pending)
            self._pending.clear()
        else:
            for k in keys:
                self._keys.add(k)
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
        if hit is None and key in self._keys:  # a key never stored needs no read
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
        current = self.signals["capacity"]
        if not values:
            return current
        out = current.copy()
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
        sig = {"demand": self._vector(req.demand, regs, "demand", "region", errors)}
        for name in SITE_SIGNALS:
            given = getattr(req, name)
            kind = signal_kind(name)
            if kind == "sticky":
                sig[name] = self._sticky(given, self.signals[name], name, errors)
            elif kind == "optional" and not given:
                sig[name] = np.zeros(len(dcs))
            else:
                sig[name] = self._vector(given, dcs, name, "datacenter", errors)
        sig["capacity"] = self._capacity(req.capacity, errors)
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
        if self.config.window is None and self.slot >= self.config.n_time:
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

    def _infeasible(self, sig: Mapping[str, np.ndarray], t_ns: int) -> Outcome | None:
        """422 naming the first region whose demand the slot cannot serve, or None."""
        from eqglb._feasibility import first_unservable

        sc = self.config.scenario
        one: dict[str, Any] = {k: np.asarray(v)[None] for k, v in sig.items()}
        try:
            sc1 = Scenario(
                datacenters=sc.datacenters,
                regions=sc.regions,
                models=sc.models,
                time=pd.DatetimeIndex([pd.Timestamp(t_ns, tz="UTC")]),
                **one,
                energy_per_request=sc.energy_per_request,
                capacity_per_request=sc.capacity_per_request,
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

    # ------------------------------------------------------------------ deciding
    def _decide(
        self, req: SlotIn, key: str, text: str, digest: str, sig: dict[str, np.ndarray], t_ns: int
    ) -> Outcome:
        t = self.slot
        demand = sig["demand"]
        try:
            step = self.stepper.step(sig, t_ns)
        except Exception as exc:  # the policy failed: infeasible slot or a policy error
            self._load(self._state)  # undo whatever the policy changed
            bad = self._infeasible(sig, t_ns)
            if bad is not None:
                raise _Rejected(bad) from None
            raise RuntimeError(
                f"policy {self.policy_name!r} failed on a feasible slot: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        y = step.y

        # routing fractions and integer weights
        N, J, K = self.shape
        served = demand > 0
        frac = np.zeros((J, N, K))
        frac[served] = y.transpose(1, 0, 2)[served] / demand[served, None, None]
        total = self.config.weight_total
        if served.any():
            fs = frac[served]
            w_route = self.w_route.copy()
            w_route[served] = largest_remainder(fs.reshape(-1, N * K), total).reshape(-1, N, K)
            w_dc = self.w_dc.copy()
            w_dc[served] = largest_remainder(fs.sum(axis=2), total)
            self.w_route, self.w_dc = w_route, w_dc
        self.signals = sig
        if self.time0_ns is None:
            self.time0_ns = t_ns
        self.last_time_ns = t_ns
        iso = _iso(t_ns)
        self.weights_slot = {"slot": t, "time": iso}

        costs = {"energy_cost": step.costs.energy_cost}
        for name, b in BURDENS.items():
            if b.side == "datacenter":
                costs[name] = float(step.costs.vectors[name].sum())
        body = self._response(t, iso, key, y, frac, demand, served, costs)
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
        costs: dict[str, float],
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
            "costs": costs,
        }
        return _dumps(out).encode()

    # ------------------------------------------------------------------ reads
    def burden_vectors(self, st: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
        """Regional vector of every burden of a committed state: per data centre [its
        unit], quality loss per region (average per request with the average social
        rule, else the total [requests])."""
        st = self._committed if st is None else st
        cum = st["cumulative"]
        out = {n: np.asarray(cum[n], dtype=float) for n in BURDENS}
        if self.config.objective.social_average:
            dem = np.asarray(cum["demand"], dtype=float)
            for n, b in BURDENS.items():
                if b.side == "region":
                    out[n] = np.divide(out[n], dem, out=np.zeros_like(out[n]), where=dem > 0)
        return out

    def summary(self, st: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Duals, cumulative regional costs and fairness metrics of a committed state."""
        st = self._committed if st is None else st
        obj = self.config.objective
        cum = st["cumulative"]
        vectors = self.burden_vectors(st)

        def places(name: str) -> tuple[str, ...]:
            side = BURDENS[name].side if name in BURDENS else "datacenter"
            return self.regions if side == "region" else self.datacenters

        duals: dict[str, Any] = {}
        for g, v in (st["policy"].get("duals") or {}).items():
            names = places(g)
            duals[g] = dict(zip(names, v, strict=True)) if len(v) == len(names) else v
        cap = np.asarray(st["signals"]["capacity"])
        if cap.ndim == 1:
            capacity: Any = dict(zip(self.datacenters, cap.tolist(), strict=True))
        else:
            capacity = {
                dc: dict(zip(self.models, row, strict=True))
                for dc, row in zip(self.datacenters, cap.tolist(), strict=True)
            }
        social_unit = (
            "average quality loss per request [-]"
            if obj.social_average
            else "quality loss [requests]"
        )
        units: dict[str, str] = {"energy_cost": "USD"}
        for n, b in BURDENS.items():
            units[n] = social_unit if b.side == "region" else b.unit
        units["demand"] = "requests"
        for n, b in BURDENS.items():
            units[f"duals.{n}"] = "USD per unit of S" if b.side == "region" else f"USD/{b.unit}"
        units["capacity"] = "units/slot" if self.capacity_mode == "shared" else "requests/slot"
        last = st["last_time_ns"]
        first = st["time0_ns"]
        sticky = {n: st["signals"][n] for n in SITE_SIGNALS if signal_kind(n) == "sticky"}
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
                    **{
                        n: dict(zip(places(n), v.tolist(), strict=True)) for n, v in vectors.items()
                    },
                    "demand": dict(zip(self.regions, cum["demand"], strict=True)),
                },
                "fairness": {n: summarize(v, getattr(obj, f"q_{n}")) for n, v in vectors.items()},
                "signals": {
                    **{n: dict(zip(self.datacenters, v, strict=True)) for n, v in sticky.items()},
                    "capacity": capacity,
                },
                "units": units,
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
