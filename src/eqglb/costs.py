"""Per-request cost coefficients and the equitable objective's weights.

Every cost of docs/model.md is linear in the dispatch ``y[t, i, j, k]`` [requests/slot], so it is
fully described by per-request coefficients, computed once here and used by the solvers
and by the evaluator alike (the physics lives in one place):

* energy cost   ``energy_cost[t, i, k] = pue[t, i] * price[t, i] * eps[i, k]``  [USD/request]
* carbon        ``carbon[t, i, k] = ci[t, i] * pue[t, i] * eps[i, k]``          [kg CO2/request]
* water         ``water[t, i, k] = (wue[t, i] + pue[t, i] * ewif[t, i]) * eps[i, k]``  [L/request]
* quality loss  ``quality[j, k] = s[k] / sum_t demand[t, j]`` (average, the default) or
  ``s[k]`` (total)                                                              [-/request]

Regional costs: carbon ``C_i`` and water ``W_i`` are located at data centre i; quality loss
``S_j`` at user region j.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eqglb.metrics import lq_norm, parse_q
from eqglb.scenario import Scenario

__all__ = [
    "Coefficients",
    "Objective",
    "RegionalCosts",
    "coefficients",
    "norm_terms",
    "objective_terms",
    "objective_value",
    "regional_costs",
]


@dataclass(frozen=True)
class Objective:
    """Weights and norm orders of ``energy cost + mu_s ||S||_q + mu_c ||C||_q + mu_w ||W||_q``.

    Attributes
    ----------
    mu_social : float
        Weight of the quality-loss norm [USD per unit of S]; S is dimensionless when
        ``social_average`` (average loss per request), [requests] otherwise.
    mu_carbon : float
        Weight of the carbon norm [USD/kg CO2] (eGLB: 1500 USD/t = 1.5 USD/kg).
    mu_water : float
        Weight of the water norm [USD/L] (eGLB: 60 USD/m3 = 0.06 USD/L).
    q_social, q_carbon, q_water : float
        Norm orders >= 1; ``math.inf`` for the worst region.
    combined_environment : bool
        Replace the two environmental norms by one norm (order ``q_carbon``) of the
        combined regional cost ``mu_c C_i + mu_w W_i`` [USD].
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
    """

    mu_social: float = 0.0
    mu_carbon: float = 0.0
    mu_water: float = 0.0
    q_social: float = 2.0
    q_carbon: float = 2.0
    q_water: float = 2.0
    combined_environment: bool = False
    social_average: bool = True
    energy_weight: float = 1.0
    norm_sizes: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.norm_sizes is not None:
            sizes = tuple(int(n) for n in self.norm_sizes)
            if len(sizes) != 2 or min(sizes) < 1:
                raise ValueError(
                    f"norm_sizes = {self.norm_sizes!r}; give (regions, datacenters), both >= 1"
                )
            object.__setattr__(self, "norm_sizes", sizes)
        for name in ("q_social", "q_carbon", "q_water"):
            object.__setattr__(self, name, parse_q(getattr(self, name)))
        for name in ("mu_social", "mu_carbon", "mu_water", "energy_weight"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} = {v!r}; weights must be finite and >= 0")
            object.__setattr__(self, name, v)

    @classmethod
    def uniform(
        cls,
        q: float | str,
        mu_social: float = 0.0,
        mu_carbon: float = 0.0,
        mu_water: float = 0.0,
        **kw: Any,
    ) -> Objective:
        """One norm order ``q`` for every term."""
        qv = parse_q(q)
        return cls(
            mu_social=mu_social,
            mu_carbon=mu_carbon,
            mu_water=mu_water,
            q_social=qv,
            q_carbon=qv,
            q_water=qv,
            **kw,
        )

    @classmethod
    def normalized(
        cls,
        n_region: int,
        n_datacenter: int,
        *,
        mu_social: float = 0.0,
        mu_carbon: float = 0.0,
        mu_water: float = 0.0,
        q_social: float | str = 2.0,
        q_carbon: float | str = 2.0,
        q_water: float | str = 2.0,
        **kw: Any,
    ) -> Objective:
        """Objective from per-unit weights, scaled by ``n ** (1 - 1/q)`` per term.

        ``mu_social`` [USD per unit of S], ``mu_carbon`` [USD/kg], ``mu_water`` [USD/L] are
        what one unit of the burden is worth when the burden is spread evenly; a more
        uneven spread costs more for q > 1 (at q = inf, as if every region bore the
        worst region's burden). q = 1 gives the plain weighted total.
        """
        qs, qc, qw = parse_q(q_social), parse_q(q_carbon), parse_q(q_water)
        return cls(
            mu_social=float(mu_social) * _norm_factor(n_region, qs),
            mu_carbon=float(mu_carbon) * _norm_factor(n_datacenter, qc),
            mu_water=float(mu_water) * _norm_factor(n_datacenter, qw),
            q_social=qs,
            q_carbon=qc,
            q_water=qw,
            norm_sizes=(int(n_region), int(n_datacenter)),
            **kw,
        )

    def unit_weights(self) -> dict[str, float]:
        """Per-unit weights ``mu_social, mu_carbon, mu_water`` (undoing :meth:`normalized`)."""
        if self.norm_sizes is None:
            return {
                "mu_social": self.mu_social,
                "mu_carbon": self.mu_carbon,
                "mu_water": self.mu_water,
            }
        nj, nn = self.norm_sizes
        return {
            "mu_social": self.mu_social / _norm_factor(nj, self.q_social),
            "mu_carbon": self.mu_carbon / _norm_factor(nn, self.q_carbon),
            "mu_water": self.mu_water / _norm_factor(nn, self.q_water),
        }

    def with_q(self, q: float | str) -> Objective:
        """The same objective with norm order ``q`` on every term (per-unit weights kept)."""
        qv = parse_q(q)
        return self.with_terms(q_social=qv, q_carbon=qv, q_water=qv)

    def with_terms(self, **changes: Any) -> Objective:
        """A copy with some of ``q_*`` / ``mu_*`` changed; with :attr:`norm_sizes` the
        ``mu_*`` given and kept are per-unit weights."""
        if self.norm_sizes is None:
            return dataclasses.replace(self, **changes)
        unit: dict[str, Any] = {
            **self.unit_weights(),
            **{k: v for k, v in changes.items() if k.startswith("mu_")},
        }
        qs: dict[str, Any] = {
            "q_social": self.q_social,
            "q_carbon": self.q_carbon,
            "q_water": self.q_water,
            **{k: v for k, v in changes.items() if k.startswith("q_")},
        }
        rest = {k: v for k, v in changes.items() if not k.startswith(("mu_", "q_"))}
        base = dataclasses.replace(self, **rest)
        assert base.norm_sizes is not None
        nj, nn = base.norm_sizes
        return Objective.normalized(
            nj,
            nn,
            mu_social=unit["mu_social"],
            mu_carbon=unit["mu_carbon"],
            mu_water=unit["mu_water"],
            q_social=qs["q_social"],
            q_carbon=qs["q_carbon"],
            q_water=qs["q_water"],
            combined_environment=base.combined_environment,
            social_average=base.social_average,
            energy_weight=base.energy_weight,
        )

    @property
    def is_linear(self) -> bool:
        """True when every active norm has q in {1, inf}: the problem is an LP."""
        qs = [self.q_carbon] if self.combined_environment else [self.q_carbon, self.q_water]
        qs.append(self.q_social)
        mus = (
            [self.mu_carbon + self.mu_water]
            if self.combined_environment
            else [self.mu_carbon, self.mu_water]
        )
        mus.append(self.mu_social)
        return all(q in (1.0, math.inf) for q, mu in zip(qs, mus, strict=True) if mu > 0)

    def describe(self) -> str:
        def qs(q: float) -> str:
            return "inf" if math.isinf(q) else f"{q:g}"

        if self.combined_environment:
            env = f"||{self.mu_carbon:g} C + {self.mu_water:g} W||_{qs(self.q_carbon)}"
        else:
            env = (
                f"{self.mu_carbon:g} ||C||_{qs(self.q_carbon)} + "
                f"{self.mu_water:g} ||W||_{qs(self.q_water)}"
            )
        energy = "energy" if self.energy_weight == 1.0 else f"{self.energy_weight:g} energy"
        return f"{energy} + {self.mu_social:g} ||S||_{qs(self.q_social)} + {env}"


def _norm_factor(n: int, q: float) -> float:
    """``n ** (1 - 1/q)``: the L_q norm of an even vector of n ones is n ** (1/q)."""
    return float(n) ** (1.0 - (0.0 if math.isinf(q) else 1.0 / q))


@dataclass(frozen=True, eq=False)
class Coefficients:
    """Per-request cost coefficients of one scenario (read-only arrays).

    Attributes
    ----------
    energy_cost : array (time, datacenter, model) [USD/request]
    carbon : array (time, datacenter, model) [kg CO2/request]
    water : array (time, datacenter, model) [L/request]
    quality : array (region, model) quality loss per request in the unit of S [-/request]
    quality_loss : array (model,) normalised quality loss s[k] [-]
    social_average : bool
    """

    energy_cost: np.ndarray
    carbon: np.ndarray
    water: np.ndarray
    quality: np.ndarray
    quality_loss: np.ndarray
    social_average: bool = True
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def coefficients(sc: Scenario, *, social_average: bool = True) -> Coefficients:
    """Compute the per-request coefficients of ``sc`` (see the module docstring)."""
    pue = np.asarray(sc.pue)  # (T, N)
    eps = np.asarray(sc.energy_per_request)  # (N, K)
    fac = pue * np.asarray(sc.price)  # USD/kWh of IT energy
    energy_cost = fac[:, :, None] * eps[None]
    carbon = (np.asarray(sc.carbon_intensity) * pue)[:, :, None] * eps[None]
    water = (np.asarray(sc.wue) + pue * np.asarray(sc.ewif))[:, :, None] * eps[None]
    s = np.asarray(sc.quality_loss)
    if social_average:
        tot = np.asarray(sc.demand).sum(axis=0)  # (J,)
        inv = np.divide(1.0, tot, out=np.zeros_like(tot), where=tot > 0)
        quality = inv[:, None] * s[None, :]
    else:
        quality = np.broadcast_to(s[None, :], (len(sc.regions), len(sc.models))).copy()
    arrs = [energy_cost, carbon, water, quality]
    for a in arrs:
        a.setflags(write=False)
    return Coefficients(energy_cost, carbon, water, quality, s, social_average)


@dataclass(frozen=True, eq=False)
class RegionalCosts:
    """Costs of a dispatch recomputed from its coefficients.

    Attributes
    ----------
    energy_cost : float [USD]
    carbon : array (datacenter,) [kg CO2]
    water : array (datacenter,) [L]
    social : array (region,) quality loss, average per request [-] or total [requests]
    """

    energy_cost: float
    carbon: np.ndarray
    water: np.ndarray
    social: np.ndarray


def regional_costs(coef: Coefficients, y: np.ndarray) -> RegionalCosts:
    """Energy cost and regional costs of ``y`` (time, datacenter, region, model)."""
    load = y.sum(axis=2)  # (T, N, K) requests
    energy = float(np.einsum("tnk,tnk->", coef.energy_cost, load))
    carbon = np.einsum("tnk,tnk->n", coef.carbon, load)
    water = np.einsum("tnk,tnk->n", coef.water, load)
    per_jk = y.sum(axis=(0, 1))  # (J, K)
    social = np.einsum("jk,jk->j", coef.quality, per_jk)
    return RegionalCosts(energy, carbon, water, social)


def norm_terms(obj: Objective, rc: RegionalCosts) -> list[tuple[str, float, float, np.ndarray]]:
    """The norm terms of ``obj`` on ``rc``: ``(name, weight, q, vector)`` with a positive
    weight, each contributing ``weight * ||vector||_q`` [USD]. Names: ``"social"``,
    ``"carbon"``, ``"water"``, or ``"environment"`` (weight 1, vector
    ``mu_c C + mu_w W`` [USD]) with a combined environmental norm."""
    terms = [("social", obj.mu_social, obj.q_social, np.asarray(rc.social))]
    if obj.combined_environment:
        if obj.mu_carbon > 0 or obj.mu_water > 0:
            terms.append(
                (
                    "environment",
                    1.0,
                    obj.q_carbon,
                    obj.mu_carbon * rc.carbon + obj.mu_water * rc.water,
                )
            )
    else:
        terms += [
            ("carbon", obj.mu_carbon, obj.q_carbon, np.asarray(rc.carbon)),
            ("water", obj.mu_water, obj.q_water, np.asarray(rc.water)),
        ]
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
