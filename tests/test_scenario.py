"""Every bad-input class raises ScenarioError naming the variable, coordinate and fix."""

import numpy as np
import pandas as pd
import pytest

from eqglb import Dispatch, ScenarioError
from eqglb.testing import two_site_scenario


def base(**over):
    kw = dict(
        datacenters=["a", "b"],
        regions=["x", "y"],
        models=["s", "l"],
        time=pd.date_range("2022-09-22", periods=3, freq="h"),
        demand=np.full((3, 2), 4.0),
        price=np.full((3, 2), 0.1),
        carbon_intensity=np.full((3, 2), 0.4),
        wue=np.full((3, 2), 1.0),
        ewif=np.full((3, 2), 2.0),
        pue=[1.1, 1.2],
        energy_per_request=[1e-4, 5e-4],
        capacity_per_request=[1.0, 4.0],
        capacity=[40.0, 40.0],
        quality_loss=[0.1, 0.0],
        home=["a", "b"],
    )
    kw.update(over)
    return two_site_scenario(**kw)


def test_valid_base():
    sc = base()
    assert sc.shape == (3, 2, 2, 2)
    with pytest.raises(ValueError):
        sc.demand[0, 0] = 1.0  # read-only: nothing writes back into a Scenario


@pytest.mark.parametrize(
    "over, pattern",
    [
        (
            dict(demand=np.array([[4.0, 4.0], [np.nan, 4.0], [4.0, 4.0]])),
            r"demand has 1 NaN/inf.*slot 1 \(2022-09-22 01:00\), region 'x'.*fill or drop",
        ),
        (dict(price=np.array([[0.1, np.inf]] * 3)), r"price has 3 NaN/inf.*datacenter 'b'"),
        (
            dict(demand=np.array([[4.0, 4.0], [4.0, -1.0], [4.0, 4.0]])),
            r"demand has 1 negative.*slot 1.*region 'y'.*must be >= 0",
        ),
        (dict(capacity=[40.0, -2.0]), r"capacity has 3 negative.*datacenter 'b'"),
        (dict(energy_per_request=[-1e-4, 5e-4]), r"energy_per_request has 2 negative.*model 's'"),
        (dict(quality_loss=[1.2, 0.0]), r"quality_loss is 1.2 for model 's'.*\[0, 1\]"),
        (
            dict(
                time=pd.DatetimeIndex(["2022-09-22 00:00", "2022-09-22 02:00", "2022-09-22 01:00"])
            ),
            r"not strictly increasing at slot 2.*sort",
        ),
        (
            dict(
                time=pd.DatetimeIndex(["2022-09-22 00:00", "2022-09-22 01:00", "2022-09-22 03:00"])
            ),
            r"gap or uneven step at slot 2.*fill the missing",
        ),
        (dict(home=["a", "zz"]), r"home of region 'y' is 'zz', not a known datacenter"),
        (dict(regions=["x", "x"]), r"region name 'x' appears twice"),
        (
            dict(allowed=np.array([[True, False], [True, False]])),
            r"region 'y' has no allowed datacenter",
        ),
        (
            dict(demand=np.array([[4.0, 4.0], [4.0, 400.0], [4.0, 4.0]])),
            r"demand cannot be served in slot 1 \(2022-09-22 01:00\): region 'y'.*raise capacity",
        ),
        (
            dict(price=np.ones((3, 3))),
            r"price has shape \(3, 3\); expected \(time=3, datacenter=2\)",
        ),
        (dict(capacity_mode="pooled"), r"capacity_mode is 'pooled'"),
    ],
)
def test_bad_input(over, pattern):
    with pytest.raises(ScenarioError, match=pattern):
        base(**over)


def test_infeasible_with_routing_names_region():
    # region y may only use datacenter b, whose capacity 40 units cannot take 12 requests x 4
    # units when only the large model is hosted there for y.
    allowed = np.ones((2, 2, 2), dtype=bool)
    allowed[0, 1, :] = False
    allowed[1, 1, 0] = False
    with pytest.raises(ScenarioError, match=r"slot 0.*region 'y'"):
        base(allowed=allowed, demand=np.full((3, 2), 12.0))


def test_per_model_capacity_feasibility():
    ok = base(capacity_mode="per_model", capacity=[[5.0, 5.0], [5.0, 5.0]])
    assert ok.capacity.shape == (3, 2, 2)
    with pytest.raises(ScenarioError, match="cannot be served"):
        base(capacity_mode="per_model", capacity=[[1.0, 1.0], [1.0, 1.0]])


def test_dispatch_frame_round_trip_and_unknown_name():
    sc = base()
    y = np.zeros(sc.shape)
    y[:, 0, :, 1] = 4.0
    d = Dispatch(y, policy="p")
    back = Dispatch.from_frame(sc, d.to_frame(sc))
    np.testing.assert_allclose(back.y, y)
    f = d.to_frame(sc)
    f["region"] = f["region"].astype(str).replace({"x": "nowhere"})
    with pytest.raises(ScenarioError, match="unknown region 'nowhere'"):
        Dispatch.from_frame(sc, f)


def test_nearest_needs_latency_or_home():
    sc = base(home=None)
    with pytest.raises(ScenarioError, match="neither `latency` nor `home`"):
        sc.nearest_latency()


@pytest.mark.parametrize(
    "over, field, coordinate",
    [
        (
            dict(demand=np.array([[4.0, 4.0], [np.nan, 4.0], [4.0, 4.0]])),
            "demand",
            {"time": 1, "region": 0},
        ),
        (dict(capacity=[40.0, -2.0]), "capacity", {"time": 0, "datacenter": 1}),
        (
            dict(energy_per_request=[1e-4, -5e-4]),
            "energy_per_request",
            {"datacenter": 0, "model": 1},
        ),
        (dict(quality_loss=[0.1, 1.5]), "quality_loss", {"model": 1}),
        (dict(pue=[1.1, 0.0]), "pue", {"time": 0, "datacenter": 1}),
        (dict(home=["a", "zz"]), "home", {"region": 1}),
        (dict(allowed=np.array([[True, False], [True, False]])), "allowed", {"region": 1}),
        (
            dict(
                time=pd.DatetimeIndex(["2022-09-22 00:00", "2022-09-22 01:00", "2022-09-22 03:00"])
            ),
            "time",
            {"time": 2},
        ),
        (
            dict(demand=np.array([[4.0, 4.0], [4.0, 400.0], [4.0, 4.0]])),
            "demand",
            {"time": 1, "region": 1},
        ),
    ],
)
def test_errors_carry_field_and_coordinate_as_data(over, field, coordinate):
    """What a reader needs to locate the value is data on the error, not message text."""
    with pytest.raises(ScenarioError) as info:
        base(**over)
    assert info.value.field == field
    assert info.value.coordinate == coordinate


def test_infeasible_demand_has_its_own_class_and_fix():
    from eqglb.scenario import InfeasibleDemandError

    with pytest.raises(InfeasibleDemandError) as info:
        base(demand=np.array([[4.0, 4.0], [4.0, 400.0], [4.0, 4.0]]))
    assert info.value.fix is not None and str(info.value).endswith(info.value.fix)


def test_slice_time_skips_the_per_slot_rechecks_but_keeps_the_flags(monkeypatch):
    """A slice of a validated scenario is not re-checked slot by slot (feasibility and
    plausibility are per slot and were checked); a later replace() checks in full."""
    from eqglb.scenario import Scenario

    sc = two_site_scenario(
        time=pd.date_range("2022-01-01", periods=3, freq="h"),
        demand=[[10.0], [5.0], [8.0]],
        price=[[0.1, 0.2]] * 3,
        carbon_intensity=[[0.5, 0.1]] * 3,
        wue=[[0.0, 0.0]] * 3,
        ewif=[[0.0, 0.0]] * 3,
    )
    calls = []
    monkeypatch.setattr(Scenario, "_check_feasible", lambda self: calls.append(self.n_time))
    part = sc.slice_time(1, 3)
    assert part.n_time == 2 and calls == []
    assert part.validate_feasibility and part.plausibility_checks
    np.testing.assert_array_equal(part.demand, [[5.0], [8.0]])
    part.replace(demand=[[6.0], [7.0]])
    assert calls == [2]
