"""Causal simulator, the online DMD policy, durable state and the registry hook."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eqglb import ScenarioError
from eqglb.costs import Objective
from eqglb.online import (
    CausalityError,
    OnlineDMD,
    PolicyError,
    SlotView,
    load_state,
    restore_policy,
    save_state,
    simulate_online,
)
from eqglb.policies import EquitableOffline, make_policy, policy_names
from eqglb.simulate import evaluate, run_policy
from eqglb.testing import random_scenario, two_site_scenario

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])

OBJECTIVES = [
    Objective(
        mu_social=2.0,
        mu_carbon=0.5,
        mu_water=0.05,
        q_social=math.inf,
        q_carbon=math.inf,
        q_water=math.inf,
    ),
    Objective(mu_social=1.0, mu_carbon=0.3, mu_water=0.02, q_social=3.0, q_carbon=2.0, q_water=1.5),
    Objective(
        mu_social=1.0,
        mu_carbon=0.3,
        mu_water=0.02,
        q_carbon=math.inf,
        combined_environment=True,
        social_average=False,
    ),
]


# --------------------------------------------------------------------------- causality
class _Recorder:
    """Policy that serves each region at its first allowed route and checks its view."""

    name = "recorder"

    def __init__(self, probe=None):
        self.probe = probe
        self.seen: list[int] = []
        self.slots_done = 0

    def decide(self, view: SlotView) -> np.ndarray:
        if self.probe is not None:
            self.probe(view)
        self.seen.append(view.t)
        y = np.zeros(view.shape)
        for j in range(view.shape[1]):
            i, k = np.argwhere(view.allowed[:, j, :])[0]
            y[i, j, k] = view.demand[view.t, j]
        self.slots_done += 1
        return y

    def state(self):
        return {"t": self.slots_done}

    def load_state(self, state):
        self.slots_done = int(state["t"])

    def reset(self):
        self.slots_done = 0
        self.seen = []


def _roomy(T: int = 5):
    """Two sites with room for every request at either; prices vary over time."""
    return two_site_scenario(
        time=[f"2022-01-01 {h:02d}:00" for h in range(T)],
        demand=[[10.0 + t] for t in range(T)],
        price=[[0.1 + 0.01 * t, 0.2 - 0.01 * t] for t in range(T)],
        carbon_intensity=[[0.5, 0.1]] * T,
        wue=[[0.0, 0.0]] * T,
        ewif=[[0.0, 0.0]] * T,
        capacity=[100.0, 100.0],
    )


def test_view_holds_only_the_past_and_present():
    sc = _roomy()
    checks = []

    def probe(view):
        t = view.t
        assert view.n_time == sc.n_time
        for name in (
            "demand",
            "price",
            "carbon_intensity",
            "wue",
            "ewif",
            "pue",
            "capacity",
            "energy_cost",
            "carbon",
            "water",
        ):
            a = getattr(view, name)
            assert a.shape[0] == t + 1, name
            assert not a.flags.writeable
            # even the buffer behind the slice knows nothing of later slots
            assert np.isnan(a.base[t + 1 :]).all(), name
        assert len(view.time) == t + 1
        np.testing.assert_array_equal(view.demand, sc.demand[: t + 1])
        np.testing.assert_array_equal(view.now("price"), sc.price[t])
        checks.append(t)

    simulate_online(sc, _Recorder(probe))
    assert checks == list(range(sc.n_time))


def test_reading_ahead_fails():
    sc = _roomy()

    def peek_index(view):
        view.demand[view.t + 1]  # the array has t + 1 rows

    def peek_at(view):
        view.at("price", view.t + 1)

    def peek_scenario(view):
        view.scenario  # noqa: B018

    with pytest.raises(IndexError):
        simulate_online(sc, _Recorder(peek_index))
    with pytest.raises(CausalityError, match="future"):
        simulate_online(sc, _Recorder(peek_at))
    with pytest.raises(AttributeError, match="never the scenario"):
        simulate_online(sc, _Recorder(peek_scenario))


def test_view_cannot_be_written():
    def scribble(view):
        view.demand[view.t, 0] = 0.0

    with pytest.raises(ValueError, match="read-only"):
        simulate_online(_roomy(), _Recorder(scribble))


def test_malformed_decisions_are_reported_with_the_slot():
    sc = _roomy()

    class Bad(_Recorder):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def decide(self, view):
            return self.fn(super().decide(view), view)

    with pytest.raises(PolicyError, match="shape"):
        simulate_online(sc, Bad(lambda y, v: y[:, :, :0]))
    with pytest.raises(PolicyError, match="slot 0"):
        simulate_online(sc, Bad(lambda y, v: 0.5 * y))
    with pytest.raises(PolicyError, match="NaN"):
        simulate_online(sc, Bad(lambda y, v: y * np.nan))
    with pytest.raises(TypeError, match="decide"):
        simulate_online(sc, EquitableOffline(Objective()))


def test_progress_and_partial_runs():
    sc = _roomy(6)
    calls = []
    pol = _Recorder()
    a = simulate_online(sc, pol, stop=4, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert a.y.shape == (4, 2, 1, 1)
    b = simulate_online(sc, pol)  # continues after slot 3
    assert pol.seen == list(range(6)) and b.y.shape[0] == 2
    assert b.info.extra["start"] == 4
    with pytest.raises(ValueError, match="start"):
        simulate_online(sc, pol, start=2)


# --------------------------------------------------------------------------- DMD
def test_first_decision_by_hand():
    """Two sites a, b, one region, 10 requests of 1 kWh; carbon 0.5 and 0.1 kg/kWh, prices
    0.10 and 0.20 USD/kWh, mu_c = 1 USD/kg, q = inf. Uniform initial prices are
    mu / N = 0.5 USD/kg at each site, so the first slot costs 0.10 + 0.5 * 0.5 = 0.35 USD
    per request at a and 0.20 + 0.5 * 0.1 = 0.25 at b: everything goes to b."""
    sc = two_site_scenario()
    d = simulate_online(sc, OnlineDMD(Objective(mu_carbon=1.0, q_carbon=math.inf)))
    assert d.y[0, :, 0, 0] == pytest.approx([0.0, 10.0])
    # with no initial prices the first decision is the Energy policy's: all at a
    d = simulate_online(sc, OnlineDMD(Objective(mu_carbon=1.0, q_carbon=math.inf), init="zero"))
    assert d.y[0, :, 0, 0] == pytest.approx([10.0, 0.0])


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    T=st.integers(1, 8),
    N=st.integers(1, 3),
    J=st.integers(1, 3),
    K=st.integers(1, 3),
    per_model=st.booleans(),
    which=st.integers(0, len(OBJECTIVES) - 1),
    variant=st.sampled_from(
        [
            dict(),
            dict(step="constant"),
            dict(step="sqrt"),
            dict(horizon_gain=0.0),
            dict(init="zero"),
        ]
    ),
)
def test_online_is_feasible_and_not_better_than_hindsight(
    seed, T, N, J, K, per_model, which, variant
):
    sc = random_scenario(np.random.default_rng(seed), T, N, J, K, per_model=per_model)
    obj = OBJECTIVES[which]
    d = simulate_online(sc, OnlineDMD(obj, **variant))
    ev = evaluate(sc, d, obj)
    assert ev.feasibility.ok(1e-6), ev.feasibility
    assert not ev.flagged
    # Clarabel's default tolerances can leave the hindsight optimum ~1e-6 above the true
    # one at q in {1.5, 3} (docs/performance.md); tighten them so it is a reference
    opts = (
        {}
        if obj.is_linear
        else dict(tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11, tol_ktratio=1e-9)
    )
    opt = evaluate(sc, EquitableOffline(obj, solver_options=opts).plan(sc), obj).objective
    assert opt <= ev.objective * (1 + 1e-6) + 1e-9


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), T=st.integers(1, 6), per_model=st.booleans())
def test_q1_with_known_demand_is_exact(seed, T, per_model):
    """With q = 1 the regulariser is linear, every price stays at mu and each slot's LP is
    the offline problem's slot: the online policy attains the hindsight optimum (the
    averaged quality cost needs the horizon's demand, given here)."""
    sc = random_scenario(np.random.default_rng(seed), T, 3, 3, 2, per_model=per_model)
    obj = Objective.uniform(1, mu_social=2.0, mu_carbon=0.5, mu_water=0.05)
    pol = OnlineDMD(obj, horizon_demand=np.asarray(sc.demand).sum(axis=0))
    online = evaluate(sc, simulate_online(sc, pol), obj).objective
    opt = evaluate(sc, EquitableOffline(obj).plan(sc), obj).objective
    assert online == pytest.approx(opt, rel=1e-7, abs=1e-9)


def test_explicit_auxiliary_step_runs_and_needs_linear_norms():
    sc = random_scenario(np.random.default_rng(5), 6, 3, 3, 2)
    obj = OBJECTIVES[0]
    d = simulate_online(sc, OnlineDMD(obj, aux="explicit"))
    assert evaluate(sc, d, obj).feasibility.ok(1e-6)
    d2 = simulate_online(
        sc, OnlineDMD(obj, aux="explicit", z_max={"carbon": 1.0, "water": 5.0, "social": 0.1})
    )
    assert evaluate(sc, d2, obj).feasibility.ok(1e-6)
    with pytest.raises(ValueError, match="proximal"):
        OnlineDMD(OBJECTIVES[1], aux="explicit")
    with pytest.raises(ValueError, match="explicit"):
        OnlineDMD(obj, z_max={"carbon": 1.0})
    with pytest.raises(ValueError, match="step"):
        OnlineDMD(obj, step="fast")


def test_prices_stay_in_the_dual_ball():
    """After every slot each group's prices satisfy gamma >= 0, ||gamma||_q* <= mu."""
    sc = random_scenario(np.random.default_rng(11), 10, 3, 3, 2)
    for obj in OBJECTIVES[:2]:
        pol = OnlineDMD(obj, eta=5.0)  # big steps: the projection must hold them
        for t in range(1, sc.n_time + 1):
            simulate_online(sc, pol, stop=t)
            for name, mu, q in (
                ("carbon", obj.mu_carbon, obj.q_carbon),
                ("water", obj.mu_water, obj.q_water),
                ("social", obj.mu_social, obj.q_social),
            ):
                for g in (pol.gamma[name], pol._prices[name]):
                    p = 1.0 if math.isinf(q) else (math.inf if q == 1 else q / (q - 1))
                    norm = np.max(g) if math.isinf(p) else np.sum(g**p) ** (1 / p)
                    assert (g >= 0).all() and norm <= mu * (1 + 1e-9)


# --------------------------------------------------------------------------- state
@pytest.mark.parametrize("which", [0, 1, 2])
def test_resume_from_json_state_repeats_the_run_exactly(tmp_path, which):
    sc = random_scenario(np.random.default_rng(20 + which), 12, 3, 4, 3)
    obj = OBJECTIVES[which]
    full = simulate_online(sc, OnlineDMD(obj))
    first = OnlineDMD(obj)
    a = simulate_online(sc, first, stop=5)
    path = save_state(first, tmp_path / "state.json")
    state = load_state(path)
    assert state["t"] == 5 and json.loads(path.read_text())["policy"] == "OnlineDMD"
    again = restore_policy(state)  # a fresh object, as after a restart
    b = simulate_online(sc, again, state=state)
    assert b.info.extra["start"] == 5
    np.testing.assert_array_equal(np.concatenate([a.y, b.y]), full.y)


def test_state_from_another_scenario_is_refused(tmp_path):
    sc = random_scenario(np.random.default_rng(1), 6, 2, 2, 1)
    other = random_scenario(np.random.default_rng(2), 6, 3, 2, 1)
    pol = OnlineDMD(OBJECTIVES[0])
    simulate_online(sc, pol, stop=3)
    state = load_state(save_state(pol, tmp_path / "s.json"))
    with pytest.raises(ScenarioError, match="scenario"):
        simulate_online(other, OnlineDMD(OBJECTIVES[0]), state=state)
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(ScenarioError, match="format"):
        load_state(tmp_path / "bad.json")
    with pytest.raises(ScenarioError, match="no such state file"):
        load_state(tmp_path / "missing.json")


# --------------------------------------------------------------------------- registry
def test_online_policies_are_registered_and_run_through_run_policy():
    assert {"online", "receding"} <= set(policy_names())
    sc = random_scenario(np.random.default_rng(4), 5, 2, 2, 2)
    obj = OBJECTIVES[0]
    pol = make_policy("online", obj)
    assert isinstance(pol, OnlineDMD)
    d, ev = run_policy(sc, pol, obj)
    assert d.y.shape == sc.shape and ev.feasibility.ok(1e-6)
    assert d.info.extra["online"] and d.info.extra["slots"] == 5
    d2, _ = run_policy(sc, make_policy("receding", obj, window=3), obj)
    assert d2.y.shape == sc.shape
