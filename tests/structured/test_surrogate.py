"""Objective.finite_surrogate: a finite-order objective never above a q = inf one, so that
the certified lower bound of a smooth solve is a lower bound of the q = inf optimum."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eqglb.costs import Objective, coefficients, objective_value, regional_costs
from eqglb.policies import EquitableOffline
from eqglb.structured import StructuredOffline
from eqglb.testing import random_scenario

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from instances import make_scenario  # noqa: E402


def _value(sc, obj, y):
    return objective_value(
        obj, regional_costs(coefficients(sc, social_average=obj.social_average), y)
    )


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    qs=st.lists(st.sampled_from([1.0, 2.0, 3.0, math.inf]), min_size=3, max_size=3),
    combined=st.booleans(),
    scale=st.sampled_from([1e-6, 1.0, 1e6]),
)
def test_surrogate_never_above_and_grows_with_p(seed, qs, combined, scale):
    rng = np.random.default_rng(seed)
    sc = random_scenario(rng, 3, 3, 4, 3)
    obj = Objective(
        q_social=qs[0],
        q_carbon=qs[1],
        q_water=qs[2],
        mu_social=scale * 3e4,
        mu_carbon=1.5,
        mu_water=0.06,
        combined_environment=combined,
    )
    # any nonnegative dispatch: the inequality is about the norms, not feasibility
    y = rng.random(sc.shape) ** 3 * scale
    v = _value(sc, obj, y)
    T, N, J, K = sc.shape
    prev = -math.inf
    for p in (1.0, 2.0, 8.0, 64.0):
        s = _value(sc, obj.finite_surrogate(p, J, N), y)
        assert s <= v * (1 + 1e-12) + 1e-300
        assert s >= prev * (1 - 1e-12)  # power means grow with the order
        prev = s
    # a term that is not q = inf is left exactly as it was
    if not any(math.isinf(q) for q in qs):
        assert obj.finite_surrogate(8.0, J, N).terms == obj.terms


def test_surrogate_terms_and_errors():
    obj = Objective.uniform("inf", mu_social=3e4, mu_carbon=1.5, mu_water=0.06)
    sur = obj.finite_surrogate(16, 1000, 100)
    assert sur.terms["social"].q == 16.0
    assert sur.terms["social"].mu == pytest.approx(3e4 * 1000 ** (-1 / 16))
    assert sur.terms["carbon"].mu == pytest.approx(1.5 * 100 ** (-1 / 16))
    assert sur.norm_sizes is None
    with pytest.raises(ValueError, match="finite norm order"):
        obj.finite_surrogate(math.inf, 10, 10)
    with pytest.raises(ValueError, match="finite norm order"):
        obj.finite_surrogate(0.5, 10, 10)
    with pytest.raises(ValueError, match="must be >= 1"):
        obj.finite_surrogate(4, 0, 10)
    # a normalised objective: the surrogate keeps the absolute weights
    nobj = Objective.normalized(7, 3, q_social="inf", mu_social=2.0)
    nsur = nobj.finite_surrogate(4, 7, 3)
    assert nsur.terms["social"].mu == pytest.approx(nobj.terms["social"].mu * 7**-0.25)


@pytest.mark.parametrize("seed", [3, 5])
def test_surrogate_bound_certifies_the_inf_optimum(seed):
    """The smooth solve's certified lower bound is at most the q = inf optimum (HiGHS LP),
    its dispatch at least that optimum, and the bound rises with p."""
    sc = make_scenario(4, 6, 3, 24, reach=2, seed=seed)
    obj = Objective.uniform("inf", mu_social=3e4, mu_carbon=1.5, mu_water=0.06)
    ref = EquitableOffline(obj).plan(sc)
    opt = _value(sc, obj, ref.y)
    T, N, J, K = sc.shape
    lows = []
    for p in (2.0, 8.0, 32.0):
        d = StructuredOffline(obj.finite_surrogate(p, J, N), tol=1e-9).plan(sc)
        low = float(d.info.dual_bound)
        assert low <= opt * (1 + 1e-9)
        assert _value(sc, obj, d.y) >= opt * (1 - 1e-7)
        lows.append(low)
    assert lows[0] <= lows[1] * (1 + 1e-7) <= lows[2] * (1 + 1e-6)
    assert lows[2] < opt  # a bound, not the optimum itself, at this size


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 300),
    w=st.sampled_from([1e-6, 1.0, 3e4, 1e9]),
    ps=st.lists(st.sampled_from([1.5, 2.0, 4.0, 8.0, 32.0, 128.0]), min_size=2, max_size=2),
)
def test_block_surrogate_value_below_and_prices_nest(seed, size, w, ps):
    """Block.surrogate (the streaming homotopy's stages): its term is never above the
    q = inf term, and prices feasible at order p are feasible at any larger order and at
    q = inf, so bounds carry from stage to stage."""
    from eqglb.metrics import lq_norm
    from eqglb.structured.coupling import Block

    rng = np.random.default_rng(seed)
    b = Block("social", w, math.inf, np.zeros(0, dtype=np.intp), size, np.zeros((1, 0)))
    lo, hi = sorted(ps)
    s_lo, s_hi = b.surrogate(lo), b.surrogate(hi)
    assert s_lo.q == lo and s_lo.weight == pytest.approx(w * size ** (-1 / lo), rel=1e-15)
    u = rng.random(size) ** 4 * rng.choice([1e-3, 1.0, 1e6])
    assert s_lo.norm(u) <= s_hi.norm(u) * (1 + 1e-12) <= b.norm(u) * (1 + 2e-12)
    # a price vector on the boundary of the order-lo ball
    g = s_lo.project(rng.random(size) ** 2 * 10 * w + 1e-300)
    for outer in (s_hi, b):
        assert np.allclose(outer.project(g), g, rtol=1e-12, atol=0)
    assert g.sum() <= w * (1 + 1e-12)
    assert lq_norm(g, hi / (hi - 1)) <= s_hi.weight * (1 + 1e-12)
    # finite blocks are left alone, and bad orders are refused
    assert s_lo.surrogate(hi) is s_lo
    with pytest.raises(ValueError, match="norm order"):
        b.surrogate(1.0)


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 300),
    w=st.sampled_from([1e-6, 1.0, 3e4, 1e9]),
    p=st.sampled_from([1.5, 2.0, 8.0, 128.0]),
    q=st.sampled_from([2.0, 3.0, math.inf]),
)
def test_block_lift_puts_feasible_prices_on_the_boundary(seed, size, w, p, q):
    """Block.lift: prices feasible for a surrogate (or anywhere inside the ball) grow,
    each by the same factor, onto the boundary of this block's dual ball; all-zero prices
    stay zero."""
    from eqglb.metrics import dual_exponent, lq_norm
    from eqglb.structured.coupling import Block

    rng = np.random.default_rng(seed)
    b = Block("social", w, q, np.zeros(0, dtype=np.intp), size, np.zeros((1, 0)))
    inner = b.surrogate(p) if math.isinf(q) else Block(b.name, 0.5 * w, q, b.index, size, b.coef)
    g = inner.project(rng.random(size) ** 3 * 10 * w + 1e-300)
    lifted = b.lift(g)
    assert lq_norm(lifted, dual_exponent(q)) == pytest.approx(w, rel=1e-12)
    assert np.all(lifted >= g * (1 - 1e-15))
    assert np.allclose(b.project(lifted), lifted, rtol=1e-12, atol=0)  # feasible
    ratio = lifted[g > 0] / g[g > 0]
    assert np.allclose(ratio, ratio[0], rtol=1e-12)
    assert np.array_equal(b.lift(np.zeros(size)), np.zeros(size))


@pytest.mark.parametrize("seed", [0, 3])
def test_lifted_prices_give_a_higher_valid_bound(seed):
    """The Lagrangian bound (sum of the compact slot LPs' certified bounds) at
    surrogate prices lifted onto the q = inf face is higher than at the prices
    themselves, and still below the q = inf optimum (the streaming homotopy's first
    q = inf pass, ``homotopy_lift``)."""
    from eqglb.structured.compact import CompactLP
    from eqglb.structured.coupling import Block, Coupling

    sc = make_scenario(4, 12, 3, 24, reach=2, seed=seed)
    obj = Objective.uniform(math.inf, mu_social=3e4, mu_carbon=1.5, mu_water=0.06)
    opt = StructuredOffline(obj, tol=1e-9).plan(sc).info.objective
    prob = CompactLP.of(sc, obj)
    cp = Coupling(
        np.zeros((1, 0)),
        tuple(
            Block(n, w, q, np.zeros(0, dtype=np.intp), size, np.zeros((1, 0)))
            for n, w, q, size in prob.terms.blocks
        ),
    )
    rng = np.random.default_rng(seed)
    sur = cp.surrogate(16.0)
    g = sur.project([rng.random(b.size) * b.weight for b in sur.blocks])
    # 16-surrogate prices sum to less than the weight unless uniform
    assert all(x.sum() < b.weight * (1 - 1e-3) for x, b in zip(g, cp.blocks, strict=True))

    def bound(gamma):
        prob.set_basis(None)
        flat = np.concatenate(gamma)
        return sum(prob.solve_slot(t, flat).bound for t in range(sc.n_time))

    low, high = bound(g), bound(cp.lift(g))
    assert low < high * (1 - 1e-6)
    assert high <= opt * (1 + 1e-9)
