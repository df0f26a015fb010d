"""The coupling structure of the offline equitable problem.

Writing the dispatch of slot t as a vector ``x_t`` over the allowed routes p = (datacenter i,
region j, model k), the offline problem of ``docs/model.md`` is

    minimise  sum_t c_t . x_t  +  sum_b w_b || u_b ||_{q_b}
    s.t.      u_b[r] = sum_t sum_{p: r_b(p) = r} g_b[t, p] x_t[p]     (regional totals)
              x_t in X_t  (demand, capacity; a polytope per slot)

where ``c_t`` is the energy cost [USD/request] plus the terms with q = 1 (a norm of a
non-negative vector with q = 1 is its sum, hence linear), and each *block* b is one
regional cost with q > 1, one per burden of :mod:`eqglb.burdens`: carbon ``C_i``
(g = carbon [kg/request], r = datacenter), water ``W_i`` (g = water [L/request]), health
``H_i`` (g = health [USD/request]), quality loss ``S_j`` (g = quality [-/request],
r = region), or the combined environmental cost ``mu_c C_i + mu_w W_i``
(g = mu_c carbon + mu_w water [USD/request], weight 1). Only these ``sum_b size_b``
totals (at most 3N + J) couple the slots.

Dual view: for prices ``gamma_b >= 0`` with ``||gamma_b||_{p_b} <= w_b`` (``p_b`` the
conjugate exponent of ``q_b``; the conjugate of a weighted norm is the indicator of that
dual-norm ball), the Lagrangian dual function is

    g(gamma) = sum_t min_{x in X_t} (c_t + sum_b gamma_b[r_b] g_b[t]) . x_t,

a lower bound on the optimum for every such gamma (weak duality), concave and piecewise
linear; its maximum equals the optimum (strong duality, all terms convex and finite).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from eqglb.burdens import burden
from eqglb.costs import Coefficients, Objective
from eqglb.metrics import dual_exponent, lq_norm

__all__ = ["Block", "Coupling", "coupling_of", "dual_exponent"]


@dataclass(frozen=True, eq=False)
class Block:
    """One coupling block: a regional cost vector entering the objective as ``w ||u||_q``.

    Attributes
    ----------
    name : str
        A burden's name (``"social"``, ``"carbon"``, ...) or ``"environment"``.
    weight : float
        w [USD per unit of u].
    q : float
        Norm order, > 1 (1 < q <= inf).
    index : int array (route,)
        Entry r_b(p) of u that route p contributes to (a datacenter or a region index).
    size : int
        Length of u (N or J).
    coef : array (time, route) or (1, route)
        Contribution of one request on route p in slot t to u [unit of u per request];
        one row when it does not depend on time (quality loss).
    """

    name: str
    weight: float
    q: float
    index: np.ndarray
    size: int
    coef: np.ndarray

    def rows(self, t: np.ndarray) -> np.ndarray:
        """Coefficient rows (batch, route) of slots ``t``."""
        if self.coef.shape[0] == 1:
            return np.broadcast_to(self.coef, (np.size(t), self.coef.shape[1]))
        return self.coef[t]

    def norm(self, u: np.ndarray) -> float:
        """``w ||u||_q`` [USD]."""
        return self.weight * lq_norm(u, self.q)

    def surrogate(self, p: float) -> Block:
        """This block, where ``q = inf``, as order ``p`` with weight ``w size ** (-1/p)``.

        ``||u||_p <= size ** (1/p) ||u||_inf``, so the surrogate term is never above this
        one (:meth:`eqglb.costs.Objective.finite_surrogate` at the block level), and its
        dual ball ``||g||_{p/(p-1)} <= w size ** (-1/p)`` lies inside this block's
        ``sum g <= w`` (Hölder): prices feasible for the surrogate are feasible here, and
        so are those of a surrogate of a smaller ``p``. Blocks of finite q are returned
        as they are.
        """
        if not math.isinf(self.q):
            return self
        pv = float(p)
        if not (math.isfinite(pv) and pv > 1.0):
            raise ValueError(f"p = {p!r}; give a finite norm order > 1")
        w = self.weight * float(self.size) ** (-1.0 / pv)
        return Block(self.name, w, pv, self.index, self.size, self.coef)

    def project(self, gamma: np.ndarray) -> np.ndarray:
        """Nearest-by-scaling point of ``{g >= 0, ||g||_p <= w}`` (feasible dual prices)."""
        g = np.clip(np.asarray(gamma, float), 0.0, None)
        n = lq_norm(g, dual_exponent(self.q)) if g.size else 0.0
        if n > self.weight > 0:
            g = g * (self.weight / n)
        elif self.weight == 0:
            g = np.zeros_like(g)
        return g

    def lift(self, gamma: np.ndarray) -> np.ndarray:
        """Feasible prices ``gamma`` scaled up onto the boundary ``||g||_p = w`` of the
        dual ball (unchanged where they are 0).

        Regional totals are non-negative, so the Lagrangian dual function (module
        docstring) does not fall when every price grows: at prices on the boundary it
        is at least its value at ``gamma``. At q = inf the boundary is the face
        ``sum g = w``, which prices of a surrogate (:meth:`surrogate`) never reach
        unless they are uniform.
        """
        g = self.project(gamma)
        n = lq_norm(g, dual_exponent(self.q)) if g.size else 0.0
        return g * (self.weight / n) if n > 0 else g


@dataclass(frozen=True, eq=False)
class Coupling:
    """Linear slot costs and coupling blocks of one (scenario, objective) pair.

    Attributes
    ----------
    linear : array (time, route)
        Slot cost per request: energy cost plus the q = 1 terms [USD/request].
    blocks : tuple of Block
        The blocks with q > 1 and a positive weight.
    """

    linear: np.ndarray
    blocks: tuple[Block, ...]

    @property
    def size(self) -> int:
        """Number of coupling totals ``sum_b size_b``."""
        return int(sum(b.size for b in self.blocks))

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum([b.size for b in self.blocks])]).astype(int)

    def prices(self, t: np.ndarray, gamma: list[np.ndarray]) -> np.ndarray:
        """Pricing costs (batch, route) of slots ``t`` at block prices ``gamma`` [USD/request]."""
        c = np.array(self.linear[t], dtype=float)
        for b, g in zip(self.blocks, gamma, strict=True):
            if b.coef.shape[0] == 1:
                c += (g[b.index] * b.coef[0])[None, :]
            else:
                c += g[b.index][None, :] * b.coef[t]
        return c

    def surrogate(self, p: float) -> Coupling:
        """The same coupling with every ``q = inf`` block replaced by
        :meth:`Block.surrogate` at order ``p`` (a lower-bounding smooth problem)."""
        return Coupling(self.linear, tuple(b.surrogate(p) for b in self.blocks))

    def project(self, gamma: list[np.ndarray]) -> list[np.ndarray]:
        return [b.project(g) for b, g in zip(self.blocks, gamma, strict=True)]

    def lift(self, gamma: list[np.ndarray]) -> list[np.ndarray]:
        """Every block's prices on its dual ball's boundary (:meth:`Block.lift`)."""
        return [b.lift(g) for b, g in zip(self.blocks, gamma, strict=True)]

    def regularizer(self, u: np.ndarray) -> float:
        """``sum_b w_b ||u_b||_q_b`` for stacked totals u (size,) [USD]."""
        off = self.offsets
        return float(sum(b.norm(u[off[n] : off[n + 1]]) for n, b in enumerate(self.blocks)))

    def split(self, v: np.ndarray) -> list[np.ndarray]:
        off = self.offsets
        return [np.asarray(v[off[n] : off[n + 1]], float) for n in range(len(self.blocks))]


def coupling_of(
    obj: Objective,
    coef: Coefficients,
    i: np.ndarray,
    j: np.ndarray,
    k: np.ndarray,
    n_datacenter: int,
    n_region: int,
) -> Coupling:
    """Split the objective into linear slot costs and coupling blocks.

    Parameters
    ----------
    obj : Objective
    coef : Coefficients
    i, j, k : int arrays (route,)
        Datacenter, region and model of each allowed route.
    n_datacenter, n_region : int
    """
    energy = np.asarray(coef.energy_cost)[:, i, k]
    linear = np.array(energy, dtype=float) * obj.energy_weight
    blocks: list[Block] = []

    def add(name: str, w: float, q: float, index: np.ndarray, size: int, g: np.ndarray) -> None:
        nonlocal linear
        if w <= 0 or not np.any(g):
            return  # no weight, or a cost that is 0 for every route: a constant 0 term
        if q == 1.0:
            linear = linear + w * g
        else:
            blocks.append(Block(name, float(w), float(q), index, size, np.ascontiguousarray(g)))

    env: np.ndarray | None = None
    for name, t in obj.terms.items():
        b = burden(name)
        if b.side == "region":
            add(name, t.mu, t.q, j, n_region, np.asarray(coef.of(name))[j, k][None, :])
            continue
        g = np.asarray(coef.of(name))[:, i, k]
        if obj.combined_environment and b.combinable:
            if t.mu > 0:
                env = t.mu * g if env is None else env + t.mu * g
            continue
        add(name, t.mu, t.q, i, n_datacenter, g)
    if env is not None:  # the combined environmental norm, weight 1, order q_carbon
        add("environment", 1.0, obj.q_carbon, i, n_datacenter, env)
    return Coupling(linear, tuple(blocks))
