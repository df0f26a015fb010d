"""Projections onto the dual ball of an L_q norm and the explicit auxiliary step of the
online dual mirror descent (:mod:`eqglb.online.dmd`).

The dual of ``mu ||z||_q`` restricted to ``z >= 0`` is the ball
``{gamma >= 0, ||gamma||_{q*} <= mu}`` with ``1/q + 1/q* = 1``; every DMD step projects its
prices onto it in the metric of its per-coordinate step sizes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from eqglb.metrics import dual_exponent

__all__ = ["aux_explicit", "project_dual", "project_dual_uniform"]

#: ``np.sum`` of an array is ``np.add.reduce(a, None)``; called directly (no wrapper).
_add_reduce = np.add.reduce


def _w_root(a: np.ndarray, p: float, iters: int = 60) -> np.ndarray:
    """Root w in (0, 1] of ``w + a w^(p-1) = 1`` for a >= 0, p > 1 (vectorised).

    For p >= 2 the left side is convex in w and Newton from w = 1 decreases monotonically
    to the root. For 1 < p < 2 the substitution s = w^(p-1) gives the convex
    ``s^(1/(p-1)) + a s = 1``, solved the same way from s = 1.
    """
    if p >= 2.0:
        # start right of the root: f(1) = a >= 0 and f(a^(-1/(p-1))) = a^(-1/(p-1)) > 0
        with np.errstate(divide="ignore"):
            w = np.minimum(1.0, a ** (-1.0 / (p - 1.0)))
        for _ in range(iters):
            wp = w ** (p - 2.0)
            f = w + a * wp * w - 1.0
            step = f / (1.0 + a * (p - 1.0) * wp)
            w = w - step
            if np.max(step, initial=0.0) <= 1e-13:  # monotone: steps are >= 0 until round-off
                break
        return np.clip(w, 0.0, 1.0)
    m = 1.0 / (p - 1.0)
    with np.errstate(divide="ignore"):
        s = np.minimum(1.0, 1.0 / a)  # psi(1/a) = a^(-m) > 0
    for _ in range(iters):
        sm = s ** (m - 1.0)
        f = sm * s + a * s - 1.0
        step = f / (m * sm + a)
        s = s - step
        if np.max(step, initial=0.0) <= 1e-13:
            break
    s = np.clip(s, 0.0, 1.0)
    return s**m


_POW_CHECKED: list[bool] = []


def _pow_fast_paths_are_numpys() -> bool:
    """Whether ``a ** 1.0`` is ``a`` and ``a ** 2.0`` is ``a * a`` for float64 arrays here
    (numpy's fast paths of ``**``; checked once per process on random values over 40
    decades), which :func:`_w_root_py` takes in Python floats."""
    if not _POW_CHECKED:
        rng = np.random.default_rng(54321)
        x = rng.random(4096) * 10.0 ** rng.uniform(-20, 20, 4096)
        _POW_CHECKED.append(
            bool((x**1.0).tobytes() == x.tobytes() and (x**2.0).tobytes() == (x * x).tobytes())
        )
    return _POW_CHECKED[0]


def _pow_list(x: list[float], e: float) -> list[float]:
    """``np.array(x) ** e`` as a list (1.0 and 2.0 in Python floats, the same bits where
    :func:`_pow_fast_paths_are_numpys`; any other exponent by numpy itself)."""
    if e == 1.0:
        return x
    if e == 2.0:
        return [v * v for v in x]
    return (np.array(x) ** e).tolist()  # type: ignore[no-any-return]


def _w_root_py(a: list[float], p: float, iters: int = 60) -> list[float] | None:
    """:func:`_w_root` element by element in Python floats, all elements stepped together
    (the same iterations, the same IEEE operations in the same order, the same stopping
    rule, NaN included), so the same bits without a dozen small array operations per
    Newton step. None where an ``a`` is not finite and > 0 (the array path decides).
    Powers other than ``** 1.0`` and ``** 2.0`` are numpy's (:func:`_pow_list`); the
    caller checks :func:`_pow_fast_paths_are_numpys`."""
    if not (sum(a) < math.inf and min(a) > 0.0):  # a NaN makes the sum NaN
        return None
    thr = 1e-13
    n = len(a)
    if p >= 2.0:
        e2 = p - 2.0
        p1 = p - 1.0
        # np.minimum(1.0, a ** (-1 / (p - 1))): a > 0 finite, so no NaN
        w = [v if v < 1.0 else 1.0 for v in _pow_list(a, -1.0 / (p - 1.0))]
        for _ in range(iters):
            wp = _pow_list(w, e2)
            done = True  # np.max(step, initial=0.0) <= thr: every step <= thr, no NaN
            for r in range(n):
                wi, wpi, ai = w[r], wp[r], a[r]
                st = (wi + ai * wpi * wi - 1.0) / (1.0 + ai * p1 * wpi)
                w[r] = wi - st
                if not st <= thr:
                    done = False
            if done:
                break
        return [0.0 if v < 0.0 else (1.0 if v > 1.0 else v) for v in w]  # np.clip
    m = 1.0 / (p - 1.0)
    em = m - 1.0
    s = [x if (x := 1.0 / v) < 1.0 else 1.0 for v in a]  # np.minimum(1.0, 1.0 / a)
    for _ in range(iters):
        done = True
        if em == 1.0:  # s ** 1.0 is s (q = 3)
            for r in range(n):
                si, ai = s[r], a[r]
                st = (si * si + ai * si - 1.0) / (m * si + ai)
                s[r] = si - st
                if not st <= thr:
                    done = False
        else:
            sm = _pow_list(s, em)
            for r in range(n):
                si, smi, ai = s[r], sm[r], a[r]
                st = (smi * si + ai * si - 1.0) / (m * smi + ai)
                s[r] = si - st
                if not st <= thr:
                    done = False
        if done:
            break
    return _pow_list([0.0 if v < 0.0 else (1.0 if v > 1.0 else v) for v in s], m)


#: Longest vector summed by :func:`_pairwise_sum` (numpy's block of 8-way unrolled sums).
_PW_BLOCK = 128
_PW_CHECKED: list[bool] = []


def _pairwise_sum(a: list[float]) -> float:
    """Sum of up to 128 floats in the order of numpy's float64 ``add.reduce`` of a
    contiguous array (its pairwise summation: below 8 terms one by one; up to 128, eight
    running sums combined as ``((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))``, then
    the remaining terms one by one). Checked against numpy before use
    (:func:`_pairwise_sum_is_numpys`)."""
    n = len(a)
    if n < 8:
        res = 0.0
        for x in a:
            res += x
        return res
    r0, r1, r2, r3, r4, r5, r6, r7 = a[:8]
    m = n - n % 8
    for i in range(8, m, 8):
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(m, n):
        res += a[i]
    return res


def _pairwise_sum_is_numpys() -> bool:
    """Whether :func:`_pairwise_sum` gives numpy's bits here (checked once per process on
    random vectors of every length up to 128 with terms spread over 40 decades; the
    array path is used otherwise)."""
    if not _PW_CHECKED:
        rng = np.random.default_rng(12345)
        ok = True
        for n in range(1, _PW_BLOCK + 1):
            for _ in range(3):
                x = rng.random(n) * 10.0 ** rng.uniform(-20, 20, n)
                if _pairwise_sum(x.tolist()) != float(_add_reduce(x, None)):
                    ok = False
        _PW_CHECKED.append(ok)
    return _PW_CHECKED[0]


def _brentq(
    f: Callable[[float], float],
    xa: float,
    xb: float,
    fa: float,
    fb: float,
    xtol: float = 1e-13,
    rtol: float = 1e-15,
    maxiter: int = 200,
) -> float:
    """Root of ``f`` in ``[xa, xb]`` by Brent's method, given ``fa = f(xa)``, ``fb = f(xb)``.

    Step for step the algorithm of :func:`scipy.optimize.brentq` (scipy's
    ``Zeros/brentq.c``: the same iterates, the same floating-point operations, the same
    stopping rule), so it returns the very same float; it only skips scipy's call
    overhead and the two end-point evaluations the caller has made already. Raises
    ``ValueError`` for a NaN value or a bracket without a sign change, ``RuntimeError``
    after ``maxiter`` iterations, as scipy does.
    """
    xpre, xcur, fpre, fcur = xa, xb, fa, fb
    if math.isnan(fpre) or math.isnan(fcur):
        x = xpre if math.isnan(fpre) else xcur
        raise ValueError(f"The function value at x={x:.6g} is NaN; solver cannot guarantee a root.")
    if fpre == 0:
        return xpre
    if fcur == 0:
        return xcur
    # past the checks above both values are non-zero and not NaN: signbit(f) is f < 0
    if (fpre < 0) == (fcur < 0):
        raise ValueError("f(a) and f(b) must have different signs")
    xblk = fblk = spre = scur = 0.0
    for _ in range(maxiter):
        if fpre != 0 and fcur != 0 and (fpre < 0) != (fcur < 0):
            xblk, fblk = xpre, fpre
            spre = scur = xcur - xpre
        if abs(fblk) < abs(fcur):
            xpre, xcur, xblk = xcur, xblk, xcur
            fpre, fcur, fblk = fcur, fblk, fcur
        delta = (xtol + rtol * abs(xcur)) / 2
        sbis = (xblk - xcur) / 2
        if fcur == 0 or abs(sbis) < delta:
            return xcur
        if abs(spre) > delta and abs(fcur) < abs(fpre):
            if xpre == xblk:  # interpolate
                stry = -fcur * (xcur - xpre) / (fcur - fpre)
            else:  # extrapolate (inverse quadratic)
                dpre = (fpre - fcur) / (xpre - xcur)
                dblk = (fblk - fcur) / (xblk - xcur)
                stry = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
            lim = 3 * abs(sbis) - delta
            if 2 * abs(stry) < (a if (a := abs(spre)) < lim else lim):  # good short step
                spre, scur = scur, stry
            else:  # bisect
                spre = scur = sbis
        else:  # bisect
            spre = scur = sbis
        xpre, fpre = xcur, fcur
        if abs(scur) > delta:
            xcur += scur
        else:
            xcur += delta if sbis > 0 else -delta
        fcur = f(xcur)
        if math.isnan(fcur):
            raise ValueError(
                f"The function value at x={xcur:.6g} is NaN; solver cannot guarantee a root."
            )
    raise RuntimeError(f"Failed to converge after {maxiter} iterations, value is {xcur}.")


def _theta2_next(th: float, inv: float, S: float, D: float) -> tuple[float, int]:
    """Newton's step of :func:`_theta2_py` from ``theta`` at the sums ``S`` and ``D``:
    (theta, state), state 1 settled, 0 go on, -1 not settled (a non-finite value)."""
    if not (0.0 < S < math.inf and 0.0 < D < math.inf):
        return th, -1
    nrm = math.sqrt(S)
    phi = 1.0 / nrm - inv
    if phi >= 0.0:
        return th, 1
    step = -phi * (S * nrm) / D  # phi' = D / (S ||x||)
    th += step
    if not th < math.inf:
        return th, -1
    return th, 1 if step <= 1e-15 * th else 0


def _theta2_py(pairs: list[tuple[float, float]], mu: float) -> float | None:
    """q = 2 projection multiplier in Python floats: theta >= 0 with
    ``sum_r (u_r / (1 + a_r theta))^2 = mu^2`` for the pairs (u_r > 0, a_r = 2 eta_r).

    Newton's method on ``phi(theta) = 1 / ||x(theta)|| - 1 / mu``, which is increasing and
    concave (the trust-region secular equation, Moré and Sorensen 1983), from theta = 0
    where phi < 0: the iterates rise monotonically to the root, quadratically near it
    (4 steps on average on the policy's inputs). Sums in numpy's pairwise order, so
    :func:`_theta2_array` gives the same bits. None where it does not settle (a value
    not finite and positive, or 100 steps): Brent's method decides then."""
    th, inv = 0.0, 1.0 / mu
    for _ in range(100):
        xs, ws = [], []
        for u_, a_ in pairs:
            den = 1.0 + a_ * th
            x = u_ / den
            xx = x * x
            xs.append(xx)
            ws.append(xx * a_ / den)
        th, state = _theta2_next(th, inv, _pairwise_sum(xs), _pairwise_sum(ws))
        if state:
            return th if state > 0 else None
    return None


def _theta2_array(up: np.ndarray, a: np.ndarray, mu: float) -> float | None:
    """:func:`_theta2_py` with array operations (the same operations in the same order)."""
    th, inv = 0.0, 1.0 / mu
    for _ in range(100):
        den = 1.0 + a * th
        x = up / den
        xx = x * x
        S, D = float(_add_reduce(xx, None)), float(_add_reduce(xx * a / den, None))
        th, state = _theta2_next(th, inv, S, D)
        if state:
            return th if state > 0 else None
    return None


def _root_log_theta(excess: Callable[[float], float]) -> float:
    """Root of the decreasing ``excess(log theta)``: bracketed from [-60, 0] upwards in
    steps of 10 (up to 700), then Brent's method (xtol 1e-13, rtol 1e-15)."""
    lo, hi = -60.0, 0.0
    flo: float | None = None
    fhi = excess(hi)
    while fhi > 0 and hi < 700:
        lo, flo = hi, fhi
        hi += 10.0
        fhi = excess(hi)
    if flo is None:
        flo = excess(lo)
    return _brentq(excess, lo, hi, flo, fhi)


def _project_inf(u: np.ndarray, eta: np.ndarray, mu: float) -> np.ndarray:
    """q = inf: projection of ``u >= 0`` onto the capped simplex ``{gamma >= 0, sum gamma
    <= mu}`` in the metric of ``eta`` (one sort; array operations)."""
    if u.sum() <= mu:
        return u
    pos = u > 0
    th = u[pos] / eta[pos]  # breakpoints theta_r = v_r / eta_r
    order = np.argsort(-th, kind="stable")
    cv = np.cumsum(u[pos][order])
    ce = np.cumsum(eta[pos][order])
    cand = (cv - mu) / ce  # theta if the top-k coordinates stay positive
    keep = np.flatnonzero(th[order] > cand)
    if not keep.size:
        # th > cand holds for the top coordinate in exact arithmetic (mu > 0); with mu
        # below the round-off of u_top they tie: the projection keeps the top
        # coordinate alone, at mu (u_top - eta_top theta = mu exactly)
        out = np.zeros_like(u)
        out[np.flatnonzero(pos)[order[0]]] = mu
        return out
    k = int(keep[-1])
    theta = cand[k]
    out = np.clip(u - eta * theta, 0.0, None)
    total = float(out.sum())
    if total > mu * (1.0 + 1e-9):  # cancellation (u_r far above mu): back into the ball
        out *= mu / total
    return out


def _project_inf_py(u: np.ndarray, eta: np.ndarray | float, mu: float) -> np.ndarray | None:
    """:func:`_project_inf` element by element in Python floats: the same IEEE operations
    in the same order (sums in numpy's pairwise order, cumulative sums left to right, a
    stable sort), so the same bits, without the per-call cost of a dozen small array
    operations (the online policy projects six short vectors per slot). None where the
    array path must decide (a NaN, or the round-off branch of :func:`_project_inf`).
    ``eta``: the step sizes, or one float for all."""
    ul = u.tolist()
    total = _pairwise_sum(ul)
    if total <= mu:
        return u
    if total != total:  # NaN: the array path's comparisons
        return None
    el = eta.tolist() if isinstance(eta, np.ndarray) else [float(eta)] * len(ul)
    # a stable sort of the positive coordinates' indices (ascending) by -theta_r: the
    # order of sorting the pairs (-theta_r, r); a NaN breakpoint goes to the array path
    neg = [-(a / b) if a > 0 else 0.0 for a, b in zip(ul, el, strict=True)]
    if (chk := sum(neg)) != chk:
        return None
    order = [r for r, a in enumerate(ul) if a > 0]
    order.sort(key=neg.__getitem__)
    cv = ce = 0.0
    theta = None
    for r in order:
        cv += ul[r]
        ce += el[r]
        cand = (cv - mu) / ce
        if -neg[r] > cand:
            theta = cand  # the last candidate below its breakpoint
    if theta is None:
        return None
    out = [x if (x := a - b * theta) > 0.0 else 0.0 for a, b in zip(ul, el, strict=True)]
    s = _pairwise_sum(out)
    if s > mu * (1.0 + 1e-9):
        f = mu / s
        out = [x * f for x in out]
    return np.array(out)


def project_dual(v: np.ndarray, eta: np.ndarray | float, mu: float, q: float) -> np.ndarray:
    """Projection of ``v`` onto ``C = {gamma >= 0, ||gamma||_{q*} <= mu}`` in the metric
    ``sum_r (gamma_r - v_r)^2 / eta_r``.

    Parameters
    ----------
    v : array (n,)
        Point to project [price unit, e.g. USD/kg].
    eta : array (n,) or float
        Positive step sizes (the metric's weights) [price unit / cost unit]; a float: the
        same for every coordinate (no array is made where the projection needs none).
    mu : float
        Radius of the dual ball: the norm's weight [price unit].
    q : float
        Order of the primal norm (1 <= q <= inf).

    Returns
    -------
    array (n,): the projection.

    For 1 < q < inf the multiplier is found in ``log theta`` by Brent's method
    (:func:`_brentq`, scipy's algorithm); each evaluation of the excess norm runs the same
    array operations in the same order as :func:`_project_dual_reference`, so both give
    the same bits (tested). At q = 2 with steps that differ it is found by Newton's method
    (:func:`_theta2_py`, about half the time of Brent's on the policy's inputs): within
    about 1e-13 of the reference, on the sphere to a few ulps, the same bits on the
    Python-float and the array path; Brent's method remains where Newton's does not settle.
    """
    u = np.maximum(v, 0.0)  # np.clip(v, 0.0, None)
    if q == 1.0:
        return np.minimum(u, mu)
    if math.isinf(q):
        if u.size <= _PW_BLOCK and _pairwise_sum_is_numpys():
            out_py = _project_inf_py(u, eta, mu)
            if out_py is not None:
                return out_py
        return _project_inf(u, np.broadcast_to(eta, u.shape), mu)
    p = dual_exponent(q)
    if float(_add_reduce(u**p, None)) ** (1.0 / p) <= mu:
        return u
    if p == 2.0 and (  # Euclidean metric, q = 2: radial scaling
        eta == eta if isinstance(eta, float) else eta.min() == eta.max()
    ):
        return u * (mu / float(np.sqrt(np.sum(u * u))))
    eta = np.broadcast_to(eta, u.shape)
    pos = u > 0
    up, ep = u[pos], eta[pos]
    buf = np.empty_like(up)
    if p == 2.0:  # w = 1 / (1 + a): no inner iteration
        ep2 = 2.0 * ep
        mu2 = mu * mu
        fast = up.size <= _PW_BLOCK and _pairwise_sum_is_numpys()
        if fast:
            pairs = list(zip(up.tolist(), ep2.tolist(), strict=True))
        th = _theta2_py(pairs, mu) if fast else _theta2_array(up, ep2, mu)
        if th is not None:  # Newton settled (else Brent's method in log theta below)
            out = np.zeros_like(u)
            out[pos] = up / (1.0 + ep2 * th)
            return out
        if fast:

            def excess2_py(log_theta: float) -> float:
                # the array version below, element by element in Python floats (the same
                # IEEE operations) and numpy's summation order
                e = math.exp(log_theta)
                return (
                    _pairwise_sum([(w := u_ * (1.0 / (1.0 + a_ * e))) * w for u_, a_ in pairs])
                    - mu2
                )

            lt = _root_log_theta(excess2_py)
            out = np.zeros_like(u)
            out[pos] = up / (1.0 + ep2 * math.exp(lt))
            return out

        def excess2(log_theta: float) -> float:
            # (up / (1 + 2 ep theta))^2 summed, as (up * w) ** 2 with w = 1 / (1 + ...)
            np.multiply(ep2, math.exp(log_theta), out=buf)
            np.add(buf, 1.0, out=buf)
            np.divide(1.0, buf, out=buf)
            np.multiply(up, buf, out=buf)
            np.square(buf, out=buf)
            return float(_add_reduce(buf, None)) - mu2

        lt = _root_log_theta(excess2)
        out = np.zeros_like(u)
        out[pos] = up / (1.0 + ep2 * math.exp(lt))
        return out
    base = ep * p * up ** (p - 2.0)
    mup = mu**p
    if up.size <= _PW_BLOCK and _pow_fast_paths_are_numpys():
        base_l = base.tolist()

        def w_at(log_theta: float) -> np.ndarray:
            # _w_root(base * exp(log_theta), p), Newton in Python floats (the same bits)
            e = math.exp(log_theta)
            w = _w_root_py([b * e for b in base_l], p)
            return _w_root(base * e, p) if w is None else np.array(w)

        def excess_py(log_theta: float) -> float:
            np.multiply(up, w_at(log_theta), out=buf)
            return float(_add_reduce(buf**p, None)) - mup

        log_theta = _root_log_theta(excess_py)
        out = np.zeros_like(u)
        out[pos] = up * w_at(log_theta)
        return out

    def excess(log_theta: float) -> float:
        w = _w_root(base * math.exp(log_theta), p)
        np.multiply(up, w, out=buf)
        return float(_add_reduce(buf**p, None)) - mup

    log_theta = _root_log_theta(excess)
    out = np.zeros_like(u)
    out[pos] = up * _w_root(base * math.exp(log_theta), p)
    return out


def project_dual_uniform(v: np.ndarray, eta: float, mu: float, q: float) -> np.ndarray:
    """:func:`project_dual` with every step size equal to ``eta`` (a float): the same bits
    as ``project_dual(v, np.full(v.shape, eta), mu, q)``."""
    return project_dual(v, float(eta), mu, q)


def _project_dual_reference(v: np.ndarray, eta: np.ndarray, mu: float, q: float) -> np.ndarray:
    """:func:`project_dual` as first written, with :func:`scipy.optimize.brentq`: the
    reference the fast path is tested against (bit for bit)."""
    from scipy.optimize import brentq

    u = np.clip(v, 0.0, None)
    if q == 1.0 or math.isinf(q):
        return project_dual(v, eta, mu, q)
    p = dual_exponent(q)
    if float(np.sum(u**p)) ** (1.0 / p) <= mu:
        return u
    if np.all(eta == eta[0]) and p == 2.0:  # Euclidean metric, q = 2: radial scaling
        return u * (mu / float(np.sqrt(np.sum(u * u))))
    pos = u > 0
    up, ep = u[pos], eta[pos]
    if p == 2.0:  # w = 1 / (1 + a): no inner iteration

        def excess2(log_theta: float) -> float:
            w = 1.0 / (1.0 + 2.0 * ep * math.exp(log_theta))
            return float(np.sum((up * w) ** 2)) - mu * mu

        lo, hi = -60.0, 0.0
        while excess2(hi) > 0 and hi < 700:
            lo, hi = hi, hi + 10.0
        lt = brentq(excess2, lo, hi, xtol=1e-13, rtol=1e-15, maxiter=200)
        out = np.zeros_like(u)
        out[pos] = up / (1.0 + 2.0 * ep * math.exp(lt))
        return out
    base = ep * p * up ** (p - 2.0)

    def excess(log_theta: float) -> float:
        w = _w_root(base * math.exp(log_theta), p)
        return float(np.sum((up * w) ** p)) - mu**p

    lo, hi = -60.0, 0.0
    while excess(hi) > 0 and hi < 700:
        lo, hi = hi, hi + 10.0
    log_theta = brentq(excess, lo, hi, xtol=1e-13, rtol=1e-15, maxiter=200)
    out = np.zeros_like(u)
    out[pos] = up * _w_root(base * math.exp(log_theta), p)
    return out


def aux_explicit(gamma: np.ndarray, mu: float, q: float, zmax: np.ndarray) -> np.ndarray:
    """``argmin_{0 <= z <= zmax} mu ||z||_q - gamma . z`` for q in {1, inf} (closed form).

    q = 1: ``z_r = zmax_r`` where ``gamma_r > mu``, else 0. q = inf: ``z_r = min(m, zmax_r)``
    with the level m the smallest of {0, zmax_r} where the slope
    ``mu - sum_{zmax_r > m} gamma_r`` is >= 0 (the objective is convex, piecewise linear in m).
    """
    if q == 1.0:
        return np.where(gamma > mu, zmax, 0.0)
    if not math.isinf(q):
        raise ValueError(
            f"explicit auxiliary step has closed forms for q in {{1, inf}}, not "
            f"q = {q:g}; use aux='proximal'"
        )
    levels = np.r_[0.0, np.sort(zmax)]
    for m in levels:
        if mu - float(gamma[zmax > m].sum()) >= 0.0:
            return np.minimum(m, zmax)
    return zmax.copy()
