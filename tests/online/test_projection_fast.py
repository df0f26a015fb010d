"""The fast dual projection (:func:`eqglb.online.projection.project_dual`) against its
reference, the formulation with :func:`scipy.optimize.brentq`: the same bits wherever
both find the multiplier by Brent's method (its iteration step for step scipy's), and
within 1e-12 where q = 2 with per-coordinate steps finds it by Newton's method.

The online policy's decisions depend on every bit of the prices (a resumed service must
decide what an uninterrupted one decides, and the service what ``simulate_online``
decides), so eqglb's own paths (Python floats and arrays) are compared with ``tobytes``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from eqglb.online.projection import _brentq, _project_dual_reference, project_dual

QS = [1.0, 1.2, 1.5, 2.0, 3.0, 4.0, 10.0, math.inf]


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return False


def _newton(q: float, eta: np.ndarray) -> bool:
    """Whether project_dual finds the multiplier by Newton's method (q = 2 with steps
    that differ), so that it matches the Brent reference to round-off, not bit for bit."""
    return q == 2.0 and bool(np.asarray(eta).min() != np.asarray(eta).max())


def _close(a: object, b: object, mu: float) -> bool:
    """Equal to 1e-12 of the radius (or the same exception)."""
    if isinstance(a, type) or isinstance(b, type):
        return a is b
    assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= 1e-12 * max(mu, 1e-300)))


def _outcome(f, *args):
    try:
        return f(*args)
    except Exception as exc:  # the same failure on both sides counts as the same outcome
        return type(exc)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 40),
    q=st.sampled_from(QS),
    uniform=st.booleans(),
    mag=st.floats(-12, 12),
    spread=st.floats(0, 6),
    mu_mag=st.floats(-8, 8),
)
def test_project_dual_bit_identical_to_the_brentq_reference(
    seed, n, q, uniform, mag, spread, mu_mag
):
    """Random points over many magnitudes (coordinates spread over 10^+-spread around
    10^mag), uniform and non-uniform metrics, radii 1e-8..1e8: the same bits (or the same
    exception) as the scipy-brentq formulation."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=n) * 10.0**mag * 10.0 ** rng.uniform(-spread, spread, n)
    if rng.random() < 0.2:
        v[rng.random(n) < 0.3] = 0.0
    eta = np.full(n, 10.0 ** rng.uniform(-6, 6)) if uniform else 10.0 ** rng.uniform(-6, 6, n)
    mu = 10.0**mu_mag
    new = _outcome(project_dual, v, eta, mu, q)
    ref = _outcome(_project_dual_reference, v, eta, mu, q)
    if isinstance(ref, type):
        assert new is ref
    elif _newton(q, eta):
        assert _close(new, ref, mu), (new, ref)
    else:
        assert _same(new, ref), (new, ref)


def test_project_dual_bit_identical_on_policy_like_inputs():
    """Points of the kind the online policy projects (AdaGrad steps, prices just outside
    the ball) at q = 2 and 3: the reference's bits (q = 3) or its values to 1e-12 of the
    radius (q = 2, Newton), and the projection is on the sphere."""
    rng = np.random.default_rng(7)
    hit = 0
    for t in range(400):
        n = 10
        q = 2.0 if t % 2 else 3.0
        p = q / (q - 1)
        mu = float(rng.uniform(0.01, 50.0))
        g = rng.dirichlet(np.ones(n)) ** (1 / p) * mu  # on the sphere
        eta = mu / np.sqrt(rng.uniform(1e-3, 1e3, n))
        v = g + eta * rng.uniform(0, 2, n) * rng.random(n)
        new, ref = project_dual(v, eta, mu, q), _project_dual_reference(v, eta, mu, q)
        assert _close(new, ref, mu) if _newton(q, eta) else _same(new, ref)
        if float(np.sum(np.clip(v, 0, None) ** p)) ** (1 / p) > mu:
            hit += 1
            assert float(np.sum(new**p)) ** (1 / p) == pytest.approx(mu, rel=1e-12)
    assert hit > 100  # most of them needed the root finding


def test_project_dual_nan_input_raises_as_the_reference():
    v = np.array([1.0, np.inf, 2.0])
    eta = np.array([0.5, 1.0, 2.0])
    assert _outcome(project_dual, v, eta, 1.0, 2.0) is _outcome(
        _project_dual_reference, v, eta, 1.0, 2.0
    )


_FUNCS = [
    lambda c, s: lambda x: s * (x - c) ** 3 + 1e-3 * (x - c),
    lambda c, s: lambda x: s * (math.exp(min(x - c, 700.0)) - 1.0),
    lambda c, s: lambda x: s * math.atan(x - c) + 0.1 * math.sin(7 * x),
    lambda c, s: lambda x: s * ((x - c) ** 2 - 0.25),
    lambda c, s: lambda x: s * (1.0 / (1.0 + math.exp(-(x - c))) - 0.3),
]


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    kind=st.integers(0, len(_FUNCS) - 1),
    c=st.floats(-5, 5),
    s_mag=st.floats(-8, 8),
    sign=st.sampled_from([1.0, -1.0]),
    a=st.floats(-30, 0),
    b=st.floats(0.01, 30),
    tol=st.sampled_from([(1e-13, 1e-15), (2e-12, 4 * np.finfo(float).eps), (1e-6, 1e-10)]),
)
def test_brentq_is_scipys_step_for_step(kind, c, s_mag, sign, a, b, tol):
    """Same root (same float) as scipy.optimize.brentq, or the same kind of failure."""
    f = _FUNCS[kind](c, sign * 10.0**s_mag)
    fa, fb = f(a), f(b)
    xtol, rtol = tol
    ref = _outcome(lambda: brentq(f, a, b, xtol=xtol, rtol=rtol, maxiter=200))
    new = _outcome(lambda: _brentq(f, a, b, fa, fb, xtol, rtol, 200))
    if isinstance(ref, type):
        assert new is ref
    else:
        assert new == ref and isinstance(new, float)


def test_brentq_refuses_a_bracket_without_sign_change():
    with pytest.raises(ValueError, match="different signs"):
        _brentq(lambda x: x * x + 1.0, -1.0, 1.0, 2.0, 2.0)
    assert _brentq(lambda x: x, 0.0, 1.0, 0.0, 1.0) == 0.0  # a root at an end


def test_pairwise_sum_is_numpys_summation_order():
    """Python-float path of the q = 2 projection: numpy's pairwise order, every length up
    to the block (terms over 40 decades, where the order changes the last bits)."""
    from eqglb.online import projection as pr

    rng = np.random.default_rng(99)
    differs_from_sequential = 0
    for n in range(1, pr._PW_BLOCK + 1):
        for _ in range(5):
            x = rng.random(n) * 10.0 ** rng.uniform(-20, 20, n)
            got = pr._pairwise_sum(x.tolist())
            assert got == float(np.add.reduce(x)), n
            seq = 0.0
            for v in x.tolist():
                seq += v
            differs_from_sequential += seq != got
    assert differs_from_sequential > 50  # the test can tell the orders apart
    assert pr._pairwise_sum_is_numpys()


def test_project_dual_python_and_array_paths_agree(monkeypatch):
    """The q = 2 projection with the Python-float Newton root and with the array one
    (taken where the summation check fails) give the same bits, and match the Brent
    reference to 1e-12 of the radius."""
    from eqglb.online import projection as pr

    rng = np.random.default_rng(3)
    cases = []
    for _ in range(200):
        n = int(rng.integers(1, 60))
        mu = float(10.0 ** rng.uniform(-4, 4))
        cases.append(
            (
                rng.normal(size=n) * mu * 10.0 ** rng.uniform(-3, 3, n),
                10.0 ** rng.uniform(-5, 5, n),
                mu,
            )
        )
    fast = [_outcome(project_dual, v, e, mu, 2.0) for v, e, mu in cases]
    monkeypatch.setattr(pr, "_PW_CHECKED", [False])
    slow = [_outcome(project_dual, v, e, mu, 2.0) for v, e, mu in cases]
    for a, b, (v, e, mu) in zip(fast, slow, cases, strict=True):
        assert _same(a, b) or (isinstance(a, type) and a is b)
        assert _close(a, _outcome(_project_dual_reference, v, e, mu, 2.0), mu)


def test_max_norm_projection_when_the_radius_is_below_round_off() -> None:
    """q = inf with mu far below the round-off of the largest price: the top coordinate
    alone stays, at mu (it used to raise IndexError); random extreme cases stay in the
    dual ball."""
    import math

    from eqglb.online.projection import project_dual as pd_

    g = pd_(np.array([3.0, 1e12, 2.0]), np.array([1.0, 2.0, 1.0]), 1e-8, math.inf)
    assert g.tolist() == [0.0, 1e-8, 0.0]
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 8))
        v = 10.0 ** rng.uniform(-8, 12, n) * rng.choice([-1.0, 1.0, 1.0], n)
        eta = 10.0 ** rng.uniform(-6, 6, n)
        mu = 10.0 ** rng.uniform(-9, 3)
        out = pd_(v, eta, mu, math.inf)
        assert np.all(out >= 0) and out.sum() <= mu * (1 + 1e-9)
        assert np.all(out <= np.maximum(v, 0.0))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 40),
    q=st.sampled_from(QS),
    mag=st.floats(-12, 12),
    spread=st.floats(0, 6),
    mu_mag=st.floats(-8, 8),
)
def test_uniform_step_projection_bit_identical_to_the_array_one(seed, n, q, mag, spread, mu_mag):
    """project_dual_uniform (one step size as a float, the online policy's price and
    constant-step projections) gives the same bits, or the same exception, as
    project_dual with the step size repeated in an array."""
    from eqglb.online.projection import project_dual_uniform

    rng = np.random.default_rng(seed)
    v = rng.normal(size=n) * 10.0**mag * 10.0 ** rng.uniform(-spread, spread, n)
    if rng.random() < 0.2:
        v[rng.random(n) < 0.3] = 0.0
    eta = float(10.0 ** rng.uniform(-6, 6))
    mu = 10.0**mu_mag
    new = _outcome(project_dual_uniform, v, eta, mu, q)
    ref = _outcome(project_dual, v, np.full(n, eta), mu, q)
    assert _same(new, ref) or (isinstance(new, type) and new is ref)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 40),
    p=st.sampled_from([1.25, 1.5, 2.0, 3.0, 4.0, 10.0]),
    mag=st.floats(-10, 10),
)
def test_python_float_newton_root_bit_identical_to_numpy(seed, n, p, mag):
    """The inner Newton root of the q-norm projection in Python floats (_w_root_py) and
    in numpy arrays (_w_root): the same bits for positive finite inputs, None (the array
    path decides) for any other."""
    from eqglb.online.projection import _pow_fast_paths_are_numpys, _w_root, _w_root_py

    assert _pow_fast_paths_are_numpys()  # on this platform the fast path is taken
    rng = np.random.default_rng(seed)
    a = 10.0 ** (mag + rng.uniform(-3, 3, n))
    py = _w_root_py(a.tolist(), p)
    assert py is not None
    assert np.array(py).tobytes() == _w_root(a, p).tobytes()
    bad = a.copy()
    bad[rng.integers(n)] = rng.choice([0.0, -1.0, np.inf, np.nan])
    assert _w_root_py(bad.tolist(), p) is None


def test_q2_newton_falls_back_to_brent_with_the_reference_bits(monkeypatch):
    """Where Newton's method does not settle (forced here), the q = 2 projection takes
    Brent's method in log theta: the reference's bits again, on both paths."""
    from eqglb.online import projection as pr

    monkeypatch.setattr(pr, "_theta2_py", lambda pairs, mu: None)
    monkeypatch.setattr(pr, "_theta2_array", lambda up, a, mu: None)
    rng = np.random.default_rng(11)
    for _ in range(100):
        n = int(rng.integers(2, 30))
        mu = float(10.0 ** rng.uniform(-3, 3))
        v = rng.normal(size=n) * mu * 10.0 ** rng.uniform(-2, 2, n)
        e = 10.0 ** rng.uniform(-4, 4, n)
        assert _same(project_dual(v, e, mu, 2.0), _project_dual_reference(v, e, mu, 2.0))


def test_q2_newton_root_is_on_the_sphere_and_more_exact_than_brent():
    """The Newton multiplier puts the projection on the sphere ||gamma||_2 = mu to a few
    ulps, at least as closely as the Brent reference (xtol 1e-13 in log theta)."""
    rng = np.random.default_rng(12)
    worse = 0
    for _ in range(300):
        n = int(rng.integers(2, 40))
        mu = float(10.0 ** rng.uniform(-6, 6))
        v = np.abs(rng.normal(size=n)) * mu * 10.0 ** rng.uniform(-1, 3, n)
        e = 10.0 ** rng.uniform(-5, 5, n)
        if float(np.linalg.norm(v)) <= mu:
            continue
        new, ref = project_dual(v, e, mu, 2.0), _project_dual_reference(v, e, mu, 2.0)
        err_new = abs(float(np.linalg.norm(new)) / mu - 1.0)
        err_ref = abs(float(np.linalg.norm(ref)) / mu - 1.0)
        assert err_new <= 1e-14
        worse += err_new > err_ref + 1e-15
    assert worse == 0
