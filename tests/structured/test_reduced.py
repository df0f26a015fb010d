"""The reduced slot LP (no region rows, exact for a rank-one quality matrix) against the
compact slot LP solved by HiGHS (the reference): equal optimum to 1e-9 relative, on random
instances with route classes of one and of several regions, ties and unsorted quality
losses, shared and per-model capacity and extreme magnitudes; a feasible rebuilt split
and a bound that never exceeds the optimum."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from eqglb.costs import Objective
from eqglb.structured import StreamingOffline
from eqglb.structured.compact import CompactLP
from eqglb.testing import random_scenario


def classy_scenario(
    rng: np.random.Generator,
    T: int,
    N: int,
    J: int,
    K: int,
    patterns: int,
    per_model: bool = False,
    scale: float = 1.0,
    losses: np.ndarray | None = None,
):
    """Random feasible scenario whose regions share ``patterns`` allowed (site, model)
    sets (so route classes hold several regions), demand and capacity x ``scale``."""
    base = random_scenario(rng, T, N, J, K, per_model=per_model)
    pat = rng.random((patterns, N, K)) < 0.6
    for p in range(patterns):
        if not pat[p].any():
            pat[p, rng.integers(N), rng.integers(K)] = True
    of = rng.integers(patterns, size=J)
    allowed = pat[of].transpose(1, 0, 2)  # (N, J, K)
    y0 = rng.uniform(0.0, 10.0, (T, N, J, K)) * allowed[None] * scale
    y0[rng.random(y0.shape) < 0.3] = 0.0
    for t, j in zip(*np.nonzero(y0.sum(axis=(1, 3)) <= 0), strict=True):
        i, k = np.argwhere(allowed[:, j, :])[0]
        y0[t, i, j, k] = scale
    demand = y0.sum(axis=(1, 3))
    r = np.asarray(base.capacity_per_request)
    slack = rng.uniform(1.0, 1.3, (T, N, K) if per_model else (T, N))
    cap = (y0.sum(axis=2) if per_model else np.einsum("tnjk,k->tn", y0, r)) * slack
    cap = cap + 0.5 * scale
    if losses is None:
        losses = rng.uniform(0.0, 1.0, K)
    return base.replace(
        allowed=allowed, demand=demand, capacity=cap, quality_loss=np.asarray(losses, float)
    )


def _pair(sc, obj):
    ref = CompactLP.of(sc, obj, form="compact")
    red = CompactLP.of(sc, obj, form="reduced")
    assert ref.lp_form == "compact" and red.lp_form == "reduced"
    h = ref._solver()  # the reference at tight tolerances (HiGHS's defaults are 1e-7)
    h.setOptionValue("dual_feasibility_tolerance", 1e-10)
    h.setOptionValue("primal_feasibility_tolerance", 1e-10)
    return ref, red


def _check_slot(red, t, gamma, r_red, r_ref):
    T, N, J, K = red.shape
    exact = r_ref.value
    tol = 1e-9 * max(abs(exact), 1e-300)
    assert abs(r_red.value - exact) <= tol
    # certified by its own bound, and no bound exceeds the other path's optimum
    assert r_red.value - r_red.bound <= tol
    assert r_red.bound <= exact + tol and r_ref.bound <= r_red.value + tol
    alpha, beta = red.slot_costs(t, gamma)
    # the rebuilt split: non-negative, serves demand, matches the class totals of z
    assert np.all(r_red.y >= 0) and np.all(r_red.z >= 0)
    d = red.demand[t]
    dem = np.bincount(red.yj, r_red.y, minlength=J)
    np.testing.assert_allclose(dem, d, rtol=1e-9, atol=1e-9 * d.max())
    C = red.n_classes
    yc = np.bincount(red.region_class[red.yj] * K + red.yk, r_red.y, minlength=C * K)
    zc = np.bincount(red.zc * K + red.zk, r_red.z, minlength=C * K)
    np.testing.assert_allclose(yc, zc, rtol=1e-8, atol=1e-8 * d.max())
    # within capacity, and its cost is the value reported
    rows = red.zi if red.shared else red.zi * K + red.zk
    use = np.bincount(rows, red.cap_coef[red.zk] * r_red.z, minlength=red.capacity.shape[1])
    assert np.all(use <= red.capacity[t] * (1 + 1e-8) + 1e-9 * d.max())
    cost = beta[red.yj, red.yk] @ r_red.y + alpha[red.zi, red.zk] @ r_red.z
    assert cost == pytest.approx(r_red.value, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("per_model", [False, True])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e6])
@pytest.mark.parametrize("gscale", [1e-6, 1.0, 1e6])
def test_reduced_equals_compact_at_extreme_magnitudes(per_model, scale, gscale):
    rng = np.random.default_rng(
        [7, int(per_model), int(math.log10(scale) + 3), int(math.log10(gscale) + 6)]
    )
    sc = classy_scenario(rng, 4, 4, 9, 3, patterns=3, per_model=per_model, scale=scale)
    obj = Objective.uniform(2.0, mu_social=4.0 * gscale, mu_carbon=0.7, mu_water=0.03)
    ref, red = _pair(sc, obj)
    M = int(red.offsets[-1])
    ref.set_basis(None)
    red.set_basis(None)
    social = np.zeros(M, dtype=bool)  # the quality block's prices, scaled
    n = red.block_names.index("social")
    social[red.offsets[n] : red.offsets[n + 1]] = True
    for t in range(sc.n_time):  # warm-started sequence, like a block
        gamma = rng.uniform(0.0, 2.0, M) * np.where(social, gscale, 1.0)
        _check_slot(red, t, gamma, red.solve_slot(t, gamma), ref.solve_slot(t, gamma))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    T=st.integers(1, 3),
    N=st.integers(1, 4),
    J=st.integers(1, 8),
    K=st.integers(1, 4),
    patterns=st.integers(1, 4),
    per_model=st.booleans(),
    ties=st.booleans(),
    mu=st.sampled_from([1e-4, 1.0, 30.0, 1e5]),
)
def test_reduced_equals_compact_property(seed, T, N, J, K, patterns, per_model, ties, mu):
    rng = np.random.default_rng(seed)
    losses = rng.choice([0.0, 0.5, 1.0], K) if ties else rng.uniform(0.0, 1.0, K)
    sc = classy_scenario(rng, T, N, J, K, patterns, per_model=per_model, losses=losses)
    obj = Objective.uniform(2.0, mu_social=mu, mu_carbon=0.7, mu_water=0.03)
    ref, red = _pair(sc, obj)
    M = int(red.offsets[-1])
    for t in range(sc.n_time):
        gamma = rng.uniform(0.0, 2.0, M)
        for warm in (False, True):
            if not warm:
                ref.set_basis(None)
                red.set_basis(None)
            _check_slot(red, t, gamma, red.solve_slot(t, gamma), ref.solve_slot(t, gamma))


def test_not_rank_one_falls_back_to_compact():
    rng = np.random.default_rng(5)
    sc = classy_scenario(rng, 2, 3, 6, 3, patterns=2)
    obj = Objective.uniform(2.0, mu_social=4.0, mu_carbon=0.7, mu_water=0.03)
    lp = CompactLP.of(sc, obj)
    assert lp.lp_form == "reduced"
    kw = {f.name: getattr(lp, f.name) for f in dataclasses.fields(lp) if f.init}
    kw.pop("_highs")
    q = lp.quality.copy()
    q[0, 0] += 0.1 * np.abs(q).max() + 1e-3
    assert CompactLP(**{**kw, "quality": q}).lp_form == "compact"
    with pytest.raises(ValueError, match="rank-one"):
        CompactLP(**{**kw, "quality": q, "form": "reduced"})
    with pytest.raises(ValueError, match="form"):
        CompactLP(**{**kw, "form": "bogus"})


@pytest.mark.parametrize("q", [2.0, math.inf])
def test_streaming_same_optimum_in_both_forms(q):
    rng = np.random.default_rng(9)
    sc = classy_scenario(rng, 12, 4, 10, 3, patterns=3)
    obj = Objective.uniform(q, mu_social=30.0, mu_carbon=0.7, mu_water=0.03)
    out = {}
    for form in ("compact", "reduced"):
        res = StreamingOffline(
            obj, tol=1e-7, block_slots=4, backend="serial", slot_form=form
        ).solve(sc)
        assert res.status == "optimal"
        assert res.dual_bound <= res.objective + 1e-9 * abs(res.objective)
        out[form] = res.objective
    assert out["reduced"] == pytest.approx(out["compact"], rel=1e-6)


def test_first_pass_chains_blocks_and_replays_them():
    from eqglb.structured import stream

    assert stream._chains(5, 2, [None] * 5) == [[0], [1], [2, 3], [4]]
    assert stream._chains(8, 1, [None] * 8) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert stream._chains(3, 2, [(np.zeros(1), np.zeros(1))] * 3) == [[0], [1], [2]]
    rng = np.random.default_rng(4)
    sc = classy_scenario(rng, 9, 3, 6, 3, patterns=2)
    obj = Objective.uniform(2.0, mu_social=30.0, mu_carbon=0.7, mu_water=0.03)
    lp = CompactLP.of(sc, obj)
    stream._init_worker(lp, worker=False)
    gamma = rng.uniform(0.0, 2.0, int(lp.offsets[-1]))
    cols = stream.price_chain(([0, 1, 2], 3, gamma, [None, None, None], [None, None, None]))
    assert cols[0].start is None and cols[1].start is not None
    for c in cols:  # each block replays from its recorded start to the same values
        sols = stream.replay_block((c.block, 3, gamma, c.start, sc.n_time, None, False))
        assert sum(s.bound for s in sols) == pytest.approx(c.bound, rel=1e-12)
        energy = sum(s.energy for s in sols)
        assert energy == pytest.approx(c.energy, rel=1e-12)


# ---------------------------------------------------------------------------- windows
def _windowed(sc, obj, window):
    lp = CompactLP.of(sc, obj, form="reduced", window=window)
    assert lp._red is not None and lp._red.n_win > 0, "the instance must have a windowed class"
    return lp


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    J=st.integers(7, 40),
    K=st.integers(2, 4),
    patterns=st.integers(1, 2),
    window=st.integers(1, 3),
    per_model=st.booleans(),
    ties=st.booleans(),
    mu=st.sampled_from([1e-4, 1.0, 30.0, 1e5]),
    scale=st.sampled_from([1e-3, 1.0, 1e6]),
)
def test_windowed_equals_compact_property(seed, J, K, patterns, window, per_model, ties, mu, scale):
    """Classes of many regions solved through windows of 1 to 3 columns per level (so
    that windows move and the fallback runs), demand and capacity from 1e-3 to 1e6: the
    same optimum as the compact LP."""
    rng = np.random.default_rng(seed)
    losses = rng.choice([0.0, 0.5, 1.0], K) if ties else rng.uniform(0.0, 1.0, K)
    sc = classy_scenario(rng, 5, 3, J, K, patterns, per_model=per_model, losses=losses, scale=scale)
    obj = Objective.uniform(2.0, mu_social=mu * scale, mu_carbon=0.7, mu_water=0.03)
    win = CompactLP.of(sc, obj, form="reduced", window=window)
    # a class of more than 2 x window regions hosting two models or more
    assume(win._red is not None and win._red.n_win > 0)
    ref = _pair(sc, obj)[0]
    M = int(win.offsets[-1])
    gamma = rng.uniform(0.0, 2.0, M)
    for t in range(sc.n_time):  # one price vector, warm-started: a block of a pass
        if t == 3:
            gamma = rng.uniform(0.0, 2.0, M)  # a new price vector mid-sequence
        _check_slot(win, t, gamma, win.solve_slot(t, gamma), ref.solve_slot(t, gamma))


@pytest.mark.parametrize("rounds", [1, 8])
def test_windows_move_and_fall_back_exactly(monkeypatch, rounds):
    """Windows of 2 columns on a class of 60 regions over 12 slots: they move, the
    fallback (the LP without windows) runs where they do not settle, and every slot's
    optimum equals the compact LP's."""
    from eqglb.structured import compact

    monkeypatch.setattr(compact, "_WINDOW_ROUNDS", rounds)
    rng = np.random.default_rng(21)
    sc = classy_scenario(rng, 12, 3, 60, 4, patterns=1)
    obj = Objective.uniform(2.0, mu_social=30.0, mu_carbon=0.7, mu_water=0.03)
    ref = _pair(sc, obj)[0]
    win = _windowed(sc, obj, 2)
    assert win.lp_size[1] < CompactLP.of(sc, obj, form="reduced", window=0).lp_size[1]
    gamma = rng.uniform(0.0, 2.0, int(win.offsets[-1]))
    starts = set()
    for t in range(sc.n_time):
        _check_slot(win, t, gamma, win.solve_slot(t, gamma), ref.solve_slot(t, gamma))
        starts.add(tuple(win._wstart.tolist()))
    assert len(starts) > 1  # the windows moved
    if rounds == 1:
        assert win.window_fallbacks > 0


def test_windowed_basis_replays_the_same_solves():
    """get_basis carries the windows' positions: a sequence restarted from a saved
    basis solves to the same values as the first time."""
    rng = np.random.default_rng(8)
    sc = classy_scenario(rng, 10, 3, 50, 3, patterns=1)
    obj = Objective.uniform(2.0, mu_social=30.0, mu_carbon=0.7, mu_water=0.03)
    lp = _windowed(sc, obj, 3)
    gamma = rng.uniform(0.0, 2.0, int(lp.offsets[-1]))
    lp.set_basis(None)
    for t in range(4):
        lp.solve_slot(t, gamma)
    saved = lp.get_basis()
    assert len(saved) == 3 and np.array_equal(saved[2], lp._wstart)
    first = [lp.solve_slot(t, gamma) for t in range(4, 10)]
    other = lp.replica()
    other.set_basis(saved)
    again = [other.solve_slot(t, gamma) for t in range(4, 10)]
    for a, b in zip(first, again, strict=True):
        assert a.value == b.value and np.array_equal(a.z, b.z) and a.bound == b.bound
    with pytest.raises(ValueError, match="window"):
        CompactLP.of(sc, obj, window=-1)
