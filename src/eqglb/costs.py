"""Per-request cost coefficients and the equitable objective's weights.

Every cost of docs/model.md is linear in the dispatch ``y[t, i, j, k]`` [requests/slot], so it is
fully described by per-request coefficients, computed once here and used by the solvers
and by the evaluator alike (the physics lives in one place):

* energy cost   ``energy_cost[t, i, k] = pue[t, i] * price[t, i] * eps[i, k]``  [USD/request]
* carbon        ``carbon[t, i, k] = ci[t, i] * pue[t, i] * eps[i, k]``          [kg CO2/request]
* water         ``water[t, i, k] = (wue[t, i] + pue[t, i] * ewif[t, i]) * eps[i, k]``  [L/request]
* health        ``health[t, i, k] = health_cost[t, i] * pue[t, i] * eps[i, k]``  [USD/request]
* quality loss  ``quality[j, k] = s[k] / sum_t demand[t, j]`` (average, the default) or
  ``s[k]`` (total)                                                              [-/request]

Regional costs: carbon ``C_i``, water ``W_i`` and health ``H_i`` are located at data centre
i; quality loss ``S_j`` at user region j. The burdens are declared once in
:mod:`eqglb.burdens`; everything here iterates that registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from eqglb.burdens import BURDENS
from eqglb.burdens import burden as _burden
from eqglb.metrics import lq_norm, parse_q
from eqglb.scenario import Scenario

__all__ = [
    "Coefficients",
    "Objective",
    "RegionalCosts",
    "Term",
    "coefficients",
    "coefficients_of",
    "site_coefficients",
    "norm_terms",
    "objective_terms",
    "objective_value",
    "regional_costs",
]


class Term(NamedTuple):
    """Weight and norm order of one burden's term ``mu ||v||_q``."""

    mu: float
    q: float


class Objective:
    """Weights and norm orders of ``energy cost + sum_b mu_b ||v_b||_q_b`` over the burdens.

    One term per registered burden (:data:`eqglb.burdens.BURDENS`: ``social`` (quality
    loss S, per user region), ``carbon`` (C), ``water`` (W), ``health`` (H, per data
    centre)); a term with weight 0 is absent.

    Parameters
    ----------
    terms : mapping ``{burden: (mu, q)}``, optional
        Weight [the burden's weight unit, e.g. USD/kg for carbon] and norm order (>= 1,
        ``math.inf`` or ``"inf"`` for the worst region) of each term; unnamed burdens get
        ``(0, 2)``.
    combined_environment : bool
        Replace the norms of the combinable burdens (carbon, water) by one norm (order
        ``q_carbon``) of the combined regional cost ``mu_c C_i + mu_w W_i`` [USD].
    social_average : bool
        Quality cost per region as the average loss per request (True) or the total.
    energy_weight : float
        Weight of the energy cost [-]: 1 in every equitable objective; 0 for a baseline
        that minimises only an environmental total.
    norm_sizes : (int, int) or None
        ``(regions, datacenters)`` when the weights were derived from per-unit weights
        by :meth:`normalized`: each ``mu`` is then ``mu_unit * n ** (1 - 1/q)`` (n the
        length of the term's vector), so that ``mu ||v||_q`` equals ``mu_unit * sum(v)``
        when the burden is spread evenly, at every q. :meth:`with_q` keeps the per-unit
        weights. None: the weights are used as given.
    switching_cost : float
        Price of moving requests between routes from one slot to the next [USD per
        request moved], 0 (the default) for none: adds ``switching_cost * sum_t M_t``
        with the movement ``M_t`` [requests] of docs/switching.md
        (:func:`eqglb.simulate.movement`). It couples consecutive slots, so only the
        cvxpy model (:class:`eqglb.policies.EquitableOffline`) solves it exactly.
    **weights
        ``mu_<burden>=`` and ``q_<burden>=`` keywords, the same as ``terms`` entries.

    Notes
    -----
    The attributes ``mu_<burden>`` and ``q_<burden>`` read one term.
    """

    __slots__ = (
        "combined_environment",
        "energy_weight",
        "norm_sizes",
        "social_average",
        "switching_cost",
        "terms",
    )

    terms: Mapping[str, Term]
    combined_environment: bool
    social_average: bool
    energy_weight: float
    norm_sizes: tuple[int, int] | None
    switching_cost: float

    def __init__(
        self,
        terms: Mapping[str, tuple[float, float | str]] | None = None,
        *,
        combined_environment: bool = False,
        social_average: bool = True,
        energy_weight: float = 1.0,
        norm_sizes: tuple[int, int] | None = None,
        switching_cost: float = 0.0,
        **weights: Any,
    ) -> None:
        given: dict[str, list[Any]] = {name: [0.0, 2.0] for name in BURDENS}
        for name, value in (terms or {}).items():
            _burden(name)
            mu, q = value
            given[name] = [mu, q]
        for key, value in weights.items():
            kind, _, name = key.partition("_")
            if kind not in ("mu", "q") or name not in BURDENS:
                raise TypeError(
                    f"Objective got an unexpected keyword {key!r}; give mu_<burden> or "
                    f"q_<burden> with a burden of {', '.join(BURDENS)}"
                )
            given[name][0 if kind == "mu" else 1] = value
        out: dict[str, Term] = {}
        for name, (mu, q) in given.items():
            try:
                qv = parse_q(q)
            except ValueError as exc:
                raise ValueError(f"q_{name}: {exc}") from None
            v = float(mu)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"mu_{name} = {mu!r}; weights must be finite and >= 0")
            out[name] = Term(v, qv)
        ew = float(energy_weight)
        if not (math.isfinite(ew) and ew >= 0):
            raise ValueError(f"energy_weight = {ew!r}; weights must be finite and >= 0")
        try:
            sw = float(switching_cost)
        except (TypeError, ValueError):
            raise ValueError(
                f"switching_cost = {switching_cost!r}; give a price in USD per request moved"
            ) from None
        if not (math.isfinite(sw) and sw >= 0):
            raise ValueError(
                f"switching_cost = {sw!r} [USD per request moved]; it must be finite and >= 0"
            )
        sizes: tuple[int, int] | None = None
        if norm_sizes is not None:
            sz = tuple(int(n) for n in norm_sizes)
            if len(sz) != 2 or min(sz) < 1:
                raise ValueError(
                    f"norm_sizes = {norm_sizes!r}; give (regions, datacenters), both >= 1"
                )
            sizes = (sz[0], sz[1])
        set_ = object.__setattr__
        set_(self, "terms", MappingProxyType(out))
        set_(self, "combined_environment", bool(combined_environment))
        set_(self, "social_average", bool(social_average))
        set_(self, "energy_weight", ew)
        set_(self, "norm_sizes", sizes)
        set_(self, "switching_cost", sw)

    def __getattr__(self, key: str) -> float:
        kind, _, name = key.partition("_")
        if kind in ("mu", "q") and name in BURDENS:
            term = object.__getattribute__(self, "terms")[name]
            return term.mu if kind == "mu" else term.q
        raise AttributeError(f"'Objective' object has no attribute {key!r}")

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Objective is immutable; use with_terms() or replace()")

    def _key(self) -> tuple[Any, ...]:
        return (
            tuple(self.terms.items()),
            self.combined_environment,
            self.social_average,
            self.energy_weight,
            self.norm_sizes,
            self.switching_cost,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Objective) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> Any:
        return (_rebuild, (dict(self.terms), self._flags()))

    def _flags(self) -> dict[str, Any]:
        return {
            "combined_environment": self.combined_environment,
            "social_average": self.social_average,
            "energy_weight": self.energy_weight,
            "norm_sizes": self.norm_sizes,
            "switching_cost": self.switching_cost,
        }

    def __repr__(self) -> str:
        parts = [f"{k}=({t.mu:g}, {t.q:g})" for k, t in self.terms.items() if t.mu > 0]
        parts += [
            f"{k}={v!r}"
            for k, v in self._flags().items()
            if k != "switching_cost" or self.switching_cost > 0
        ]
        return f"Objective({', '.join(parts)})"

    def replace(self, **changes: Any) -> Objective:
        """A copy with flags or ``mu_*``/``q_*`` changed, weights used as given (no
        per-unit rescaling; see :meth:`with_terms`)."""
        terms = {k: [t.mu, t.q] for k, t in self.terms.items()}
        flags = self._flags()
        for key, value in changes.items():
            kind, _, name = key.partition("_")
            if key in flags:
                flags[key] = value
            elif kind in ("mu", "q") and name in BURDENS:
                terms[name][0 if kind == "mu" else 1] = value
            else:
                raise TypeError(f"Objective has no field {key!r}")
        return Objective({k: (v[0], v[1]) for k, v in terms.items()}, **flags)

    def to_config(self) -> dict[str, Any]:
        """JSON-ready dict of the weights, orders and flags (infinite q written "inf").

        The terms of quality, carbon and water are always written; any other burden, and
        ``switching_cost``, only with a positive weight, so configurations saved before
        they existed stay equal."""
        out: dict[str, Any] = {}
        keep = [k for k, t in self.terms.items() if k in ("social", "carbon", "water") or t.mu > 0]
        for k in keep:
            out[f"mu_{k}"] = self.terms[k].mu
        for k in keep:
            q = self.terms[k].q
            out[f"q_{k}"] = "inf" if math.isinf(q) else q
        out["combined_environment"] = self.combined_environment
        out["social_average"] = self.social_average
        if self.energy_weight != 1.0:
            out["energy_weight"] = self.energy_weight
        if self.norm_sizes is not None:
            out["norm_sizes"] = list(self.norm_sizes)
        if self.switching_cost > 0:
            out["switching_cost"] = self.switching_cost
        return out

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Objective:
        """Inverse of :meth:`to_config`."""
        kw = dict(cfg)
        if kw.get("norm_sizes") is not None:
            kw["norm_sizes"] = tuple(kw["norm_sizes"])
        return cls(**kw)

    def size(self, name: str) -> int | None:
        """Length of burden ``name``'s regional vector under :attr:`norm_sizes`."""
        if self.norm_sizes is None:
            return None
        nj, nn = self.norm_sizes
        return nj if _burden(name).side == "region" else nn

    @classmethod
    def uniform(cls, q: float | str, **kw: Any) -> Objective:
        """One norm order ``q`` for every term; ``mu_<burden>=`` weights and flags in ``kw``."""
        qv = parse_q(q)
        qs: dict[str, Any] = {f"q_{name}": qv for name in BURDENS}
        return cls(**qs, **kw)

    @classmethod
    def normalized(cls, n_region: int, n_datacenter: int, **kw: Any) -> Objective:
        """Objective from per-unit weights, scaled by ``n ** (1 - 1/q)`` per term.

        ``mu_<burden>=`` keywords are per-unit weights (``mu_social`` [USD per unit of S],
        ``mu_carbon`` [USD/kg], ``mu_water`` [USD/L], ``mu_health`` [USD/USD]): what one unit
        of the burden is worth when it is spread evenly; a more uneven spread costs more for
        q > 1 (at q = inf, as if every region bore the worst region's burden). q = 1 gives
        the plain weighted total. ``terms=`` may give ``{burden: (mu_unit, q)}`` instead.
        """
        raw = cls(**kw)
        sizes = {"region": int(n_region), "datacenter": int(n_datacenter)}
        terms = {
            name: (t.mu * _norm_factor(sizes[_burden(name).side], t.q), t.q)
            for name, t in raw.terms.items()
        }
        flags = {**raw._flags(), "norm_sizes": (int(n_region), int(n_datacenter))}
        return cls(terms, **flags)

    def unit_weights(self) -> dict[str, float]:
        """Per-unit weights ``{"mu_<burden>": ...}`` (undoing :meth:`normalized`)."""
        out: dict[str, float] = {}
        for name, t in self.terms.items():
            n = self.size(name)
            out[f"mu_{name}"] = t.mu if n is None else t.mu / _norm_factor(n, t.q)
        return out

    def with_q(self, q: float | str) -> Objective:
        """The same objective with norm order ``q`` on every term (per-unit weights kept)."""
        qv = parse_q(q)
        return self.with_terms(**{f"q_{name}": qv for name in BURDENS})

    def with_terms(self, **changes: Any) -> Objective:
        """A copy with some of ``q_*`` / ``mu_*`` (or flags) changed; with
        :attr:`norm_sizes` the ``mu_*`` given and kept are per-unit weights."""
        if self.norm_sizes is None:
            return self.replace(**changes)
        unit: dict[str, Any] = {
            **self.unit_weights(),
            **{k: v for k, v in changes.items() if k.startswith("mu_")},
        }
        qs: dict[str, Any] = {f"q_{k}": t.q for k, t in self.terms.items()}
        qs.update({k: v for k, v in changes.items() if k.startswith("q_")})
        rest = {k: v for k, v in changes.items() if not k.startswith(("mu_", "q_"))}
        flags = {**self._flags(), **rest}
        sizes = flags.pop("norm_sizes")
        if sizes is None:
            return Objective(**unit, **qs, **flags)
        return Objective.normalized(sizes[0], sizes[1], **unit, **qs, **flags)

    def finite_surrogate(self, p: float, n_region: int, n_datacenter: int) -> Objective:
        """A smooth objective that is never above this one: a lower bound for q = inf.

        Every norm term of order q = inf becomes order ``p`` with its weight times
        ``n ** (-1/p)``, where ``n`` is the length of the term's vector (``n_region`` for
        regional burdens, ``n_datacenter`` for site burdens; under a combined environment
        the combinable terms follow ``q_carbon``). Because ``||v||_p <= n ** (1/p)
        ||v||_inf``, the surrogate's value of any dispatch is at most this objective's, so
        the certified lower bound of a solve at the surrogate [USD] is a valid lower bound
        of this objective's optimum, and the surrogate's dispatch is feasible here (the
        constraints are the same). Other terms are unchanged. The bound tightens as ``p``
        grows (docs/performance.md, the latency-limited year at q = inf). The weights of the
        result are absolute (no :attr:`norm_sizes`).
        """
        pv = float(p)
        if not (math.isfinite(pv) and pv >= 1.0):
            raise ValueError(f"p = {p!r}; give a finite norm order >= 1")
        sizes = {"region": int(n_region), "datacenter": int(n_datacenter)}
        if min(sizes.values()) < 1:
            raise ValueError(
                f"n_region = {n_region!r}, n_datacenter = {n_datacenter!r}; both must be >= 1"
            )
        terms: dict[str, tuple[float, float]] = {}
        for name, t in self.terms.items():
            b = _burden(name)
            q = self.q_carbon if self.combined_environment and b.combinable else t.q
            if math.isinf(q):
                terms[name] = (t.mu * float(sizes[b.side]) ** (-1.0 / pv), pv)
            else:
                terms[name] = (t.mu, t.q)
        flags = {**self._flags(), "norm_sizes": None}
        return Objective(terms, **flags)

    def active(self) -> list[tuple[str, Term]]:
        """The terms with a positive weight, in registry order."""
        return [(k, t) for k, t in self.terms.items() if t.mu > 0]

    @property
    def is_linear(self) -> bool:
        """True when every active norm has q in {1, inf}: the problem is an LP."""
        qs: list[float] = []
        for name, t in self.active():
            if self.combined_environment and _burden(name).combinable:
                continue
            qs.append(t.q)
        if self.combined_environment and any(
            t.mu > 0 for k, t in self.terms.items() if _burden(k).combinable
        ):
            qs.append(self.q_carbon)
        return all(q in (1.0, math.inf) for q in qs)

    def describe(self) -> str:
        def qs(q: float) -> str:
            return "inf" if math.isinf(q) else f"{q:g}"

        energy = "energy" if self.energy_weight == 1.0 else f"{self.energy_weight:g} energy"
        parts = [energy]
        combined = [k for k in self.terms if _burden(k).combinable]
        for name, t in self.terms.items():
            b = _burden(name)
            if self.combined_environment and b.combinable:
                if name == combined[0]:
                    inner = " + ".join(
                        f"{self.terms[c].mu:g} {_burden(c).symbol}" for c in combined
                    )
                    parts.append(f"||{inner}||_{qs(self.q_carbon)}")
                continue
            if t.mu > 0 or name in ("social", "carbon", "water"):
                parts.append(f"{t.mu:g} ||{b.symbol}||_{qs(t.q)}")
        if self.switching_cost > 0:
            parts.append(f"{self.switching_cost:g} USD/request x movement")
        return " + ".join(parts)


def _rebuild(terms: dict[str, Term], flags: dict[str, Any]) -> Objective:
    return Objective({k: (t[0], t[1]) for k, t in terms.items()}, **flags)


def _norm_factor(n: int, q: float) -> float:
    """``n ** (1 - 1/q)``: the L_q norm of an even vector of n ones is n ** (1/q)."""
    return float(n) ** (1.0 - (0.0 if math.isinf(q) else 1.0 / q))


class Coefficients:
    """Per-request cost coefficients of one scenario (read-only arrays).

    Attributes
    ----------
    energy_cost : array (time, datacenter, model) [USD/request]
    site : mapping burden -> array (time, datacenter, model)
        Per-request coefficient of every data-centre burden [unit/request]
        (``carbon`` [kg CO2/request], ``water`` [L/request], ``health`` [USD/request]).
    quality : array (region, model) quality loss per request in the unit of S [-/request]
    quality_loss : array (model,) normalised quality loss s[k] [-]
    social_average : bool

    ``coef.carbon``, ``coef.water``, ``coef.health`` read ``site``; :meth:`of` reads any
    burden's coefficient ((time, datacenter, model) or (region, model)).
    """

    __slots__ = ("energy_cost", "quality", "quality_loss", "site", "social_average")

    def __init__(
        self,
        energy_cost: np.ndarray,
        site: Mapping[str, np.ndarray],
        quality: np.ndarray,
        quality_loss: np.ndarray,
        social_average: bool = True,
    ) -> None:
        self.energy_cost = energy_cost
        self.site = MappingProxyType(dict(site))
        self.quality = quality
        self.quality_loss = quality_loss
        self.social_average = social_average

    def __getattr__(self, key: str) -> np.ndarray:
        site = object.__getattribute__(self, "site")
        if key in site:
            return site[key]
        raise AttributeError(f"'Coefficients' object has no attribute {key!r}")

    def of(self, name: str) -> np.ndarray:
        """Per-request coefficient of burden ``name`` [unit/request]."""
        return self.quality if _burden(name).side == "region" else self.site[name]


def site_coefficients(get: Any, eps: np.ndarray) -> dict[str, np.ndarray]:
    """``{burden: factor[..., i, None] * eps[i, k]}`` for every data-centre burden.

    ``get(field)`` returns a scenario field with leading axes (time, datacenter) or
    (datacenter,) for one slot; ``eps`` is (datacenter, model) [kWh/request]."""
    return {
        b.name: b.site_factor(get)[..., :, None] * eps
        for b in BURDENS.values()
        if b.side == "datacenter"
    }


def coefficients(sc: Scenario, *, social_average: bool = True) -> Coefficients:
    """Compute the per-request coefficients of ``sc`` (see the module docstring)."""
    return coefficients_of(lambda f: getattr(sc, f), social_average=social_average)


def coefficients_of(get: Callable[[str], Any], *, social_average: bool = True) -> Coefficients:
    """Per-request coefficients from scenario fields read by ``get(field)``.

    ``get`` returns :class:`~eqglb.scenario.Scenario` arrays or arrays of the same layout
    over any number of slots (a forecast window, one live slot): the signals of
    :data:`eqglb.fields.SITE_SIGNALS` as (time, datacenter), ``demand`` (time, region),
    ``energy_per_request`` (datacenter, model) and ``quality_loss`` (model,).
    """
    pue = np.asarray(get("pue"), dtype=float)  # (T, N)
    eps = np.asarray(get("energy_per_request"), dtype=float)  # (N, K)
    fac = pue * np.asarray(get("price"), dtype=float)  # USD/kWh of IT energy
    energy_cost = fac[:, :, None] * eps[None]
    site = site_coefficients(get, eps[None])
    s = np.asarray(get("quality_loss"), dtype=float)
    demand = np.asarray(get("demand"), dtype=float)
    if social_average:
        tot = demand.sum(axis=0)  # (J,)
        inv = np.divide(1.0, tot, out=np.zeros_like(tot), where=tot > 0)
        quality = inv[:, None] * s[None, :]
    else:
        quality = np.broadcast_to(s[None, :], (demand.shape[-1], s.shape[0])).copy()
    for a in [energy_cost, quality, *site.values()]:
        a.setflags(write=False)
    return Coefficients(energy_cost, site, quality, s, social_average)


class RegionalCosts:
    """Costs of a dispatch recomputed from its coefficients.

    Attributes
    ----------
    energy_cost : float [USD]
    vectors : mapping burden -> array
        Regional total of every burden: (datacenter,) for data-centre burdens
        (``carbon`` [kg CO2], ``water`` [L], ``health`` [USD]), (region,) for ``social``
        (quality loss, average per request [-] or total [requests]).

    ``rc.carbon``, ``rc.water``, ``rc.social``, ``rc.health`` read ``vectors``.
    """

    __slots__ = ("energy_cost", "vectors")

    def __init__(self, energy_cost: float, vectors: Mapping[str, np.ndarray]) -> None:
        self.energy_cost = energy_cost
        self.vectors = MappingProxyType(dict(vectors))

    def __getattr__(self, key: str) -> np.ndarray:
        vec = object.__getattribute__(self, "vectors")
        if key in vec:
            return vec[key]
        raise AttributeError(f"'RegionalCosts' object has no attribute {key!r}")


def regional_costs(coef: Coefficients, y: np.ndarray) -> RegionalCosts:
    """Energy cost and regional costs of ``y`` (time, datacenter, region, model)."""
    load = y.sum(axis=2)  # (T, N, K) requests
    energy = float(np.einsum("tnk,tnk->", coef.energy_cost, load))
    vectors: dict[str, np.ndarray] = {}
    per_jk = y.sum(axis=(0, 1))  # (J, K)
    for name, b in BURDENS.items():
        if b.side == "region":
            vectors[name] = np.einsum("jk,jk->j", coef.quality, per_jk)
        else:
            vectors[name] = np.einsum("tnk,tnk->n", coef.site[name], load)
    return RegionalCosts(energy, vectors)


def norm_terms(obj: Objective, rc: RegionalCosts) -> list[tuple[str, float, float, np.ndarray]]:
    """The norm terms of ``obj`` on ``rc``: ``(name, weight, q, vector)`` with a positive
    weight, each contributing ``weight * ||vector||_q`` [USD]. Names: the burdens, with
    ``"environment"`` (weight 1, vector ``mu_c C + mu_w W`` [USD], order ``q_carbon``) in
    place of the combinable burdens under a combined environmental norm."""
    terms: list[tuple[str, float, float, np.ndarray]] = []
    env_done = False
    for name, t in obj.terms.items():
        b = _burden(name)
        if obj.combined_environment and b.combinable:
            if env_done:
                continue
            env_done = True
            parts = [
                (obj.terms[k].mu, rc.vectors[k])
                for k in obj.terms
                if _burden(k).combinable and obj.terms[k].mu > 0
            ]
            if parts:
                vec = sum((mu * v for mu, v in parts), start=np.zeros_like(parts[0][1]))
                terms.append(("environment", 1.0, obj.q_carbon, np.asarray(vec)))
            continue
        if t.mu > 0:
            terms.append((name, t.mu, t.q, np.asarray(rc.vectors[name])))
    return [t for t in terms if t[1] > 0]


def objective_terms(obj: Objective, rc: RegionalCosts) -> dict[str, float]:
    """``energy`` and each norm term of :func:`norm_terms` [USD]; they sum to the
    objective."""
    out = {"energy": float(obj.energy_weight * rc.energy_cost)}
    for name, w, q, v in norm_terms(obj, rc):
        out[name] = float(w * lq_norm(v, q))
    return out


def objective_value(obj: Objective, rc: RegionalCosts) -> float:
    """Equitable objective [USD] from recomputed regional costs."""
    return float(sum(objective_terms(obj, rc).values()))
