import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eqglb.metrics import gini, jain, lq_norm, parse_q, peak_to_average, summarize

vecs = st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=12)


def test_known_values():
    v = [3.0, 4.0]
    assert lq_norm(v, 2) == pytest.approx(5.0)
    assert lq_norm(v, 1) == pytest.approx(7.0)
    assert lq_norm(v, "inf") == 4.0
    assert peak_to_average(v) == pytest.approx(4 / 3.5)
    assert jain([1, 1, 1, 1]) == pytest.approx(1.0)
    assert jain([1, 0, 0, 0]) == pytest.approx(0.25)
    # Gini of (0, 0, 0, 1): sum |vi - vj| = 6, / (2 n^2 mean) = 6 / (2*16*0.25) = 0.75
    assert gini([0, 0, 0, 1]) == pytest.approx(0.75)
    assert gini([2, 2, 2]) == 0.0


def test_parse_q_rejects_below_one():
    with pytest.raises(ValueError, match=">= 1"):
        parse_q(0.5)
    assert math.isinf(parse_q("inf"))


@given(vecs)
def test_lq_norm_non_increasing_in_q(v):
    qs = [1, 1.5, 2, 3, 8, 50, math.inf]
    norms = [lq_norm(v, q) for q in qs]
    for a, b in zip(norms, norms[1:], strict=False):
        assert b <= a * (1 + 1e-12) + 1e-12


@given(vecs, st.randoms())
def test_metrics_invariant_under_permutation(v, rnd):
    w = list(v)
    rnd.shuffle(w)
    a, b = summarize(v, 3), summarize(w, 3)
    for key in a:
        if math.isnan(a[key]):
            assert math.isnan(b[key])
        else:
            assert b[key] == pytest.approx(a[key], rel=1e-9, abs=1e-9)


@given(vecs)
def test_gini_matches_pairwise_definition(v):
    a = np.asarray(v)
    if a.sum() == 0:
        return
    # n^2 mean written as n sum: the mean of subnormal values underflows to 0
    pair = np.abs(a[:, None] - a[None, :]).sum() / (2 * a.size * a.sum())
    assert gini(a) == pytest.approx(pair, rel=1e-9, abs=1e-12)
