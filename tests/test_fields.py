"""eqglb.fields.signal_or_default: an optional signal a source lacks is not modelled (0)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from eqglb.fields import FIELDS, SIGNALS, signal_or_default
from eqglb.online.forecast import FORECAST_SIGNALS, SeasonalNaive


def test_present_signal_is_returned_as_is_and_at_picks_a_slot():
    price = np.arange(6.0).reshape(3, 2)
    calls = []
    view = SimpleNamespace(price=price)
    shape = lambda: calls.append(1) or (2,)  # noqa: E731
    assert signal_or_default(view, "price", shape) is price
    np.testing.assert_array_equal(signal_or_default(view, "price", shape, at=1), [2.0, 3.0])
    assert signal_or_default({"price": price}, "price", shape) is price
    assert calls == []  # the default's shape is asked only when the signal is missing


@pytest.mark.parametrize("source", [SimpleNamespace(price=np.ones((3, 2))), {"price": [1, 2]}])
def test_missing_optional_signal_reads_as_float_zeros(source):
    optional = [n for n in SIGNALS if FIELDS[n].optional]
    assert "health_cost" in optional
    for name in optional:
        z = signal_or_default(source, name, (3, 2))
        assert z.dtype == np.float64 and z.shape == (3, 2) and not z.any()
        assert signal_or_default(source, name, lambda: 4, at=7).shape == (4,)


def test_missing_required_signal_or_non_signal_field_raises_the_lookup_error():
    view = SimpleNamespace(price=np.ones((3, 2)))
    with pytest.raises(AttributeError, match="carbon_intensity"):
        signal_or_default(view, "carbon_intensity", (3, 2))
    with pytest.raises(KeyError, match="demand"):
        signal_or_default({"price": 1.0}, "demand", (3, 2))
    # optional, but not a signal: None means "no constraint", never zeros
    assert FIELDS["latency"].optional and not FIELDS["latency"].is_signal
    with pytest.raises(AttributeError):
        signal_or_default(view, "latency", (2, 2))
    with pytest.raises(KeyError):  # not a field at all: the source's own error
        signal_or_default({}, "energy_cost", (2,))


def test_seasonal_forecast_of_a_view_without_health_cost_is_zero():
    rng = np.random.default_rng(0)
    n, j, t = 2, 3, 4
    site = {s: rng.uniform(0.5, 2.0, (t + 1, n)) for s in FORECAST_SIGNALS if s != "demand"}
    site.pop("health_cost")
    view = SimpleNamespace(t=t, demand=rng.uniform(1, 5, (t + 1, j)), **site)
    fc = SeasonalNaive(period=2).forecast(view, 3)
    assert fc["health_cost"].shape == (3, n) and not fc["health_cost"].any()
    np.testing.assert_array_equal(fc["price"], view.price[[4, 3, 4]])
