"""Pure fairness and size metrics of a regional cost vector (imports nothing of eqglb).

All functions take a 1-D array of non-negative regional costs ``v`` (any unit) and are
invariant under permuting its entries.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "dual_exponent",
    "gini",
    "jain",
    "lq_norm",
    "parse_q",
    "peak_to_average",
    "summarize",
]


def parse_q(q: float | str) -> float:
    """Norm order from a number or the strings ``"inf"``/``"max"`` [-]; must be >= 1."""
    if isinstance(q, str):
        s = q.strip().lower()
        value = math.inf if s in ("inf", "infinity", "max") else float(s)
    else:
        value = float(q)
    if not value >= 1:
        raise ValueError(f"norm order q = {q!r} is not >= 1; use a number >= 1 or 'inf'")
    return value


def dual_exponent(q: float) -> float:
    """Conjugate exponent p of q (1/p + 1/q = 1) [-]; inf for q = 1, 1 for q = inf.

    The dual norm of L_q is L_p: the prices of an L_q regulariser live in an L_p ball.
    """
    if q == 1.0:
        return math.inf
    if math.isinf(q):
        return 1.0
    return q / (q - 1.0)


def lq_norm(v: ArrayLike, q: float | str) -> float:
    """L_q norm ``(sum |v_r|^q)^(1/q)``; ``max |v_r|`` for q = inf [unit of v].

    Computed stably by scaling with ``max |v|`` so large q does not overflow.
    """
    a = np.abs(np.asarray(v, dtype=float)).ravel()
    qv = parse_q(q)
    if a.size == 0:
        return 0.0
    m = float(a.max())
    if m == 0.0 or math.isinf(qv):
        return m
    if qv == 1.0:
        return float(a.sum())
    return m * float(np.sum((a / m) ** qv) ** (1.0 / qv))


def peak_to_average(v: ArrayLike) -> float:
    """max / mean of v [-]; 1 means perfectly even, nan when the mean is 0."""
    a = np.asarray(v, dtype=float).ravel()
    mean = float(a.mean()) if a.size else 0.0
    return float(a.max()) / mean if mean > 0 else math.nan


def jain(v: ArrayLike) -> float:
    """Jain's fairness index ``(sum v)^2 / (n sum v^2)`` in [1/n, 1] [-]; 1 = even."""
    a = np.asarray(v, dtype=float).ravel()
    ss = float(np.sum(a * a))
    return float(a.sum()) ** 2 / (a.size * ss) if ss > 0 else 1.0


def gini(v: ArrayLike) -> float:
    """Gini coefficient of non-negative v in [0, 1 - 1/n] [-]; 0 = even.

    ``G = sum_i sum_j |v_i - v_j| / (2 n^2 mean)``, evaluated in O(n log n) from the
    sorted values.
    """
    a = np.sort(np.asarray(v, dtype=float).ravel())
    n = a.size
    total = float(a.sum())
    if n == 0 or total <= 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float(np.sum((2 * ranks - n - 1) * a)) / (n * total)


def summarize(v: ArrayLike, q: float | str = 2) -> dict[str, float]:
    """Total, max, mean, max/mean, L_q norm, Jain and Gini of one regional cost vector."""
    a = np.asarray(v, dtype=float).ravel()
    return {
        "total": float(a.sum()),
        "max": float(a.max()) if a.size else 0.0,
        "mean": float(a.mean()) if a.size else 0.0,
        "max_over_mean": peak_to_average(a),
        "lq_norm": lq_norm(a, q),
        "jain": jain(a),
        "gini": gini(a),
    }
